"""Envoy resources carried over from one translation to the next: unchanged IR, unchanged resource.

Each Envoy resource is a pure function of one IR node (``fragments``), and IR nodes are immutable values
that compare by content. So a translation looks every node up in what the previous one built: a node equal
to last time's gives back the very same ``XdsResource`` (same message, bytes and version, no serialising or
hashing again), and only new or changed nodes are translated; nodes that the incremental ``build_ir``
reused are the very same objects as last time and are found by identity, without hashing them. What the
cache and the streams then see is exactly what changed: Delta sends only those resources, SotW only their
types. Only the last translation's resources are kept, so nothing outlives the configuration that
produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from controlplane import ir
from controlplane.xds.resource import TYPE_URLS, XdsResource
from controlplane.xds.translator import fragments
from controlplane.xds.translator.cluster import SYSTEM_CA_FILE

_Identity = tuple[int, Callable[[Any], Any]]


class ReusingTranslator:
    """IR -> ``XdsResource`` by type URL, translating only the IR nodes the previous call did not have."""

    def __init__(self, *, system_ca_file: str = SYSTEM_CA_FILE) -> None:
        self._system_ca_file = system_ca_file
        self._by_value: dict[tuple[Callable[[Any], Any], Hashable], XdsResource] = {}
        self._by_identity: dict[_Identity, tuple[Hashable, XdsResource]] = {}
        """By ``id`` of the IR node (and the function); each entry keeps its node alive, so the id cannot
        be reused."""
        self.translated = 0
        """How many resources the last call had to translate (the rest were reused)."""

    def resources(self, infra: ir.Infra) -> dict[str, list[XdsResource]]:
        by_identity: dict[_Identity, tuple[Hashable, XdsResource]] = {}
        by_type: dict[str, list[XdsResource]] = {type_url: [] for type_url in TYPE_URLS}
        translated = 0
        for type_url, translate, node in fragments(infra, system_ca_file=self._system_ca_file):
            identity = (id(node), translate)
            same = self._by_identity.get(identity)
            if same is not None and same[0] is node:
                resource = same[1]
            else:
                key = (translate, node)
                found = self._by_value.get(key)
                if found is None:
                    found = self._by_value[key] = XdsResource.build(type_url, translate(node))
                    translated += 1
                resource = found
            by_identity[identity] = (node, resource)
            by_type[type_url].append(resource)
        # Forget what this translation did not use (hashing only those nodes, to find their entries).
        used = {id(resource) for _, resource in by_identity.values()}
        for key in [key for key, resource in self._by_value.items() if id(resource) not in used]:
            del self._by_value[key]
        self._by_identity = by_identity
        self.translated = translated
        return by_type
