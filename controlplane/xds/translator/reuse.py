"""Envoy resources carried over from one translation to the next: unchanged IR, unchanged resource.

Each Envoy resource is a pure function of one IR node (``fragments``), and IR nodes are immutable values
that compare by content. So a translation looks every node up in what the previous one built: a node equal
to last time's gives back the very same ``XdsResource`` (same message, bytes and version, no serialising or
hashing again), and only new or changed nodes are translated. The incremental ``build_ir`` gives back the
very same objects for what it did not change, and so does ``data_path`` here for rules whose cluster, hops
and upstreams are unchanged: a whole table of nodes (every rule cluster, say) that is the same objects as
last time is passed over in one comparison, and within a changed table a node is found by identity without
hashing it. What the cache and the streams then see is exactly what changed: Delta sends only those
resources, SotW only their types. Resources the last translation did not use are dropped in a sweep once
they outnumber an eighth of those in use, so little outlives the configuration that produced it and no
change pays for a full sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from controlplane import ir
from controlplane.heap import release_gradually
from controlplane.replaced import replaced_positions
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import TYPE_URLS, References
from controlplane.xds.translator import fragments
from controlplane.xds.translator.cluster import SYSTEM_CA_FILE
from controlplane.xds.translator.data_path import DataPaths
from controlplane.xds.translator.route_bytes import RouteConfigurationBytes

_Translate = Callable[[Any], Any]
_Declare = Callable[[Any], References] | None
_SLACK = 8
"""Resources of earlier calls no longer used are forgotten once they exceed 1/_SLACK of those in use: a
sweep costs a pass over everything, so it happens every few hundred small changes, not on each."""


@dataclass(frozen=True, slots=True)
class _Table:
    """One function's IR nodes in the last call and the resources they gave, in the same order."""

    nodes: tuple[Hashable, ...]
    resources: tuple[XdsResource, ...]


class ReusingTranslator:
    """IR -> ``XdsResource`` by type URL, translating only the IR nodes the previous call did not have."""

    def __init__(self, *, system_ca_file: str = SYSTEM_CA_FILE) -> None:
        self._system_ca_file = system_ca_file
        self._by_value: dict[tuple[_Translate, Hashable], XdsResource] = {}
        self._tables: dict[_Translate, _Table] = {}
        """By function; each table keeps its nodes alive, so their ids cannot be reused meanwhile."""
        self._data_paths = DataPaths()
        self._route_configurations = RouteConfigurationBytes()
        self.translated = 0
        """How many resources the last call had to translate (the rest were reused)."""

    def resources(self, infra: ir.Infra) -> dict[str, list[XdsResource]]:
        by_type: dict[str, list[XdsResource]] = {type_url: [] for type_url in TYPE_URLS}
        tables: dict[_Translate, _Table] = {}
        self.translated = 0
        path = self._data_paths(infra)
        for type_url, translate, declare, nodes in fragments(
            infra,
            system_ca_file=self._system_ca_file,
            path=path,
            route_configurations=self._route_configurations,
        ):
            table = self._tables.get(translate)
            # Tuples compare item by item, identity first: the same objects cost a pointer comparison each.
            if table is None or table.nodes != nodes:
                table = self._table(type_url, translate, declare, nodes, previous=table)
            tables[translate] = table
            by_type[type_url].extend(table.resources)
        self._tables = tables
        self._route_configurations.keep_only({listener.route_config for listener in infra.listeners})
        in_use = sum(len(table.resources) for table in tables.values())
        if len(self._by_value) > in_use + in_use // _SLACK:
            self._forget_unused()
        return by_type

    def release(self) -> None:
        """Forgets every resource and IR node, one at a time (``heap.release_gradually``): for a translator
        no call follows, whose IR would otherwise all be freed in one go (tens of milliseconds holding the
        GIL at 5,000 routes)."""
        self._data_paths.release()
        self._route_configurations.release()
        release_gradually(self._tables, self._by_value)

    def _table(
        self,
        type_url: str,
        translate: _Translate,
        declare: _Declare,
        nodes: tuple[Hashable, ...],
        *,
        previous: _Table | None,
    ) -> _Table:
        if previous is None:
            # The first call: nothing is known yet, so there is nothing to look up (hashing every node).
            return _Table(
                nodes, tuple(self._translated(type_url, translate, declare, node) for node in nodes)
            )
        if len(previous.nodes) == len(nodes):
            # Usually a few nodes replaced in place: the others are found at the same position.
            resources = list(previous.resources)
            for index in replaced_positions(previous.nodes, nodes):
                resources[index] = self._resource(type_url, translate, declare, nodes[index])
            return _Table(nodes, tuple(resources))
        known = {
            id(node): (node, made) for node, made in zip(previous.nodes, previous.resources, strict=True)
        }
        resources = []
        for node in nodes:
            same = known.get(id(node))
            resources.append(
                same[1]
                if same is not None and same[0] is node
                else self._resource(type_url, translate, declare, node)
            )
        return _Table(nodes, tuple(resources))

    def _resource(
        self, type_url: str, translate: _Translate, declare: _Declare, node: Hashable
    ) -> XdsResource:
        """The resource of a node that is not last call's object: an equal node's, or translated now."""
        found = self._by_value.get((translate, node))
        return found if found is not None else self._translated(type_url, translate, declare, node)

    def _translated(
        self, type_url: str, translate: _Translate, declare: _Declare, node: Hashable
    ) -> XdsResource:
        references = declare(node) if declare is not None else None
        made = self._by_value[(translate, node)] = XdsResource.build(
            type_url, translate(node), references=references
        )
        self.translated += 1
        return made

    def _forget_unused(self) -> None:
        """Drops what the last call did not use (hashing only those nodes, to find their entries)."""
        used = {id(resource) for table in self._tables.values() for resource in table.resources}
        for key in [key for key, resource in self._by_value.items() if id(resource) not in used]:
            del self._by_value[key]
