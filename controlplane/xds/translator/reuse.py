"""Envoy resources carried over from one translation to the next: unchanged IR, unchanged resource.

Each Envoy resource is a pure function of one IR node (``fragments``), and IR nodes are immutable values
that compare by content. So a translation looks every node up in what the previous one built: a node equal
to last time's gives back the very same ``XdsResource`` (same message, bytes and version, no serialising or
hashing again), and only new or changed nodes are translated; nodes that the incremental ``build_ir``
reused are the very same objects as last time and are found by identity, without hashing them. What the
cache and the streams then see is exactly what changed: Delta sends only those resources, SotW only their
types. Resources the last translation did not use are dropped in a sweep once they outnumber an eighth of
those in use, so little outlives the configuration that produced it and no change pays for a full sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from controlplane import ir
from controlplane.xds.resource import TYPE_URLS, XdsResource
from controlplane.xds.translator import fragments
from controlplane.xds.translator.cluster import SYSTEM_CA_FILE

_Translate = Callable[[Any], Any]
_ByIdentity = dict[_Translate, dict[int, tuple[Hashable, XdsResource]]]
_SLACK = 8
"""Resources of earlier calls no longer used are forgotten once they exceed 1/_SLACK of those in use: a
sweep costs a pass over everything, so it happens every few hundred small changes, not on each."""


class ReusingTranslator:
    """IR -> ``XdsResource`` by type URL, translating only the IR nodes the previous call did not have."""

    def __init__(self, *, system_ca_file: str = SYSTEM_CA_FILE) -> None:
        self._system_ca_file = system_ca_file
        self._by_value: dict[tuple[_Translate, Hashable], XdsResource] = {}
        self._by_identity: _ByIdentity = {}
        """By function, then by ``id`` of the IR node; each entry keeps its node alive, so the id cannot be
        reused."""
        self.translated = 0
        """How many resources the last call had to translate (the rest were reused)."""

    def resources(self, infra: ir.Infra) -> dict[str, list[XdsResource]]:
        previous = self._by_identity
        by_identity: _ByIdentity = {}
        by_type: dict[str, list[XdsResource]] = {type_url: [] for type_url in TYPE_URLS}
        translated = in_use = 0
        function: _Translate | None = None
        known: dict[int, tuple[Hashable, XdsResource]] = {}
        kept: dict[int, tuple[Hashable, XdsResource]] = {}
        for type_url, translate, node in fragments(infra, system_ca_file=self._system_ca_file):
            if translate is not function:  # fragments come grouped by function
                function = translate
                known = previous.get(translate, {})
                kept = by_identity.setdefault(translate, {})
            same = known.get(id(node))
            if same is None or same[0] is not node:
                key = (translate, node)
                found = self._by_value.get(key)
                if found is None:
                    found = self._by_value[key] = XdsResource.build(type_url, translate(node))
                    translated += 1
                same = (node, found)
            kept[id(node)] = same
            by_type[type_url].append(same[1])
            in_use += 1
        self._by_identity = by_identity
        self.translated = translated
        if len(self._by_value) > in_use + in_use // _SLACK:
            self._forget_unused()
        return by_type

    def _forget_unused(self) -> None:
        """Drops what the last call did not use (hashing only those nodes, to find their entries)."""
        used = {id(resource) for kept in self._by_identity.values() for _, resource in kept.values()}
        for key in [key for key, resource in self._by_value.items() if id(resource) not in used]:
            del self._by_value[key]
