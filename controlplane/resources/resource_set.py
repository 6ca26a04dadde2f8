"""The translator's input: an immutable, key-indexed collection of accepted objects with typed accessors.

Lists come back sorted by ObjectKey so that everything built from them is deterministic; lookups resolve
references the way Kubernetes does (by group, kind, namespace and name), and ``source`` gives back where
an object came from so the translator can locate its own problems.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from controlplane.replaced import replaced_by
from controlplane.resources.aigateway import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy
from controlplane.resources.core import ConfigMap, EndpointSlice, Pod, Secret, Service
from controlplane.resources.envoy_gateway import Backend, BackendTrafficPolicy
from controlplane.resources.gateway_api import BackendTLSPolicy, Gateway, GatewayClass, ReferenceGrant
from controlplane.resources.groups import INFERENCE_GROUP, INFERENCE_X_GROUP
from controlplane.resources.inference import InferencePool, InferencePoolBase, InferencePoolV1Alpha2
from controlplane.resources.meta import Resource
from controlplane.resources.problems import ObjectKey
from controlplane.tokens.state import OFFLINE_TOKEN

if TYPE_CHECKING:
    from controlplane.resources.parse import Loaded
    from controlplane.tokens.state import Tokens, TokenState

R = TypeVar("R", bound=Resource)
_ORDER = attrgetter("order")
"""Sorts ``Loaded`` entries by key (``ObjectKey.order``) without a Python call per entry."""


@dataclass(frozen=True, slots=True)
class Changes:
    """Which keys differ from an earlier set: added, removed, or given another ``Loaded`` (an unchanged
    file or watched object keeps its ``Loaded``, so identity tells; an equal copy counts as changed)."""

    since: object
    """The earlier set's ``generation``."""
    keys: frozenset[ObjectKey]


def _order(obj: Resource) -> str:
    return obj.key.order()


def _key(entry: Loaded) -> ObjectKey:
    return entry.key


def _replaced_in_place(before: list[Loaded], after: list[Loaded]) -> list[Loaded] | None:
    """The entries of ``after`` that are not the very entry at their place in ``before`` but have its key;
    None when keys were added, removed or moved. Unchanged entries are the same objects in the same order
    (a source hands over a new load with what did not change kept), so this costs a pointer comparison
    per entry where indexing would hash every key."""
    return replaced_by(before, after, identity=_key)


class ResourceSet:
    def __init__(self, loaded: Iterable[Loaded] = (), *, previous: ResourceSet | None = None) -> None:
        """``previous``: the set the same source gave last, to tell ``changes`` from it and to take its
        order and per-class lists where nothing was added or removed (no sorting everything again)."""
        items = list(loaded)
        self._given = items
        """The entries as given, in that order: the next set compares its own with them by position."""
        self.generation = object()
        """Shared by this set's copies (``with_tokens``, recording views): what ``Changes.since`` names."""
        self.changes: Changes | None = None
        """What differs from ``previous``; None without one."""
        self._by_class: dict[type, list[Resource]] | None = None
        """Objects by their exact class, in key order: built on the first ``of_type``, so each kind's
        list costs one pass over the set, not one per call."""
        self._tokens: Tokens | None = None
        """The minted access tokens (``serve``); None: nothing is minted (``translate``)."""
        if previous is not None:
            replaced = _replaced_in_place(previous._given, items)
            if replaced is not None:
                # The same keys in the same places (a file or object changed, none added or removed): no
                # need to index every entry again, nor to look for duplicates.
                self._follow(previous, {item.key: item for item in replaced})
                return
        index = {item.key: item for item in items}
        if len(index) != len(items):
            seen: set[ObjectKey] = set()
            for item in items:
                if item.key in seen:
                    raise ValueError(f"duplicate object {item.key}")
                seen.add(item.key)
        if previous is not None:
            earlier = previous._index
            changed = {key: item for key, item in index.items() if earlier.get(key) is not item}
            if len(index) == len(earlier) and all(key in earlier for key in changed):
                self._follow(previous, changed)  # the same keys, given in another order
                return
            self.changes = Changes(
                previous.generation, frozenset(changed.keys() | (earlier.keys() - index.keys()))
            )
        self._index: MappingProxyType[ObjectKey, Loaded] = MappingProxyType(
            {item.key: item for item in sorted(index.values(), key=_ORDER)}
        )

    def _follow(self, previous: ResourceSet, changed: dict[ObjectKey, Loaded]) -> None:
        """Sets ``changes`` to the ``changed`` entries (keys ``previous`` has, given other entries) and takes
        the order and class lists of ``previous``, with those entries put in."""
        self.changes = Changes(previous.generation, frozenset(changed))
        merged = previous._index.copy()  # a plain dict: copied at once, and looked up faster than the proxy
        by_class = previous._by_class
        if by_class is not None and any(
            type(item.object) is not type(merged[key].object) for key, item in changed.items()
        ):
            by_class = None
        merged.update(changed)  # the keys are there: the order stays
        self._index = MappingProxyType(merged)
        if by_class is None:
            self._by_class = self._classes()
            return
        # Built now, not on the first ``of_type``: the next set takes them from this one. A changed
        # object is put where its key sorts in its class's list (which is in key order).
        self._by_class = dict(by_class)
        for key, item in changed.items():
            obj = item.object
            objects = self._by_class[type(obj)]
            if objects is by_class[type(obj)]:
                objects = self._by_class[type(obj)] = list(objects)
            objects[bisect_left(objects, key.order(), key=_order)] = obj

    def _classes(self) -> dict[type, list[Resource]]:
        by_class: dict[type, list[Resource]] = {}
        for item in self._index.values():
            by_class.setdefault(type(item.object), []).append(item.object)
        return by_class

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[Loaded]:
        return iter(self._index.values())

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __repr__(self) -> str:
        # Keys only: object contents include Secrets.
        return f"ResourceSet({', '.join(str(key) for key in self._index)})"

    def get(self, key: ObjectKey) -> Resource | None:
        found = self._index.get(key)
        return None if found is None else found.object

    def source(self, key: ObjectKey) -> Loaded | None:
        """The loaded entry (file, document index) for ``key``, to attach problems to it."""
        return self._index.get(key)

    def of_type(self, model: type[R]) -> list[R]:
        """Every object of ``model`` (including subclasses), sorted by key."""
        if self._by_class is None:
            self._by_class = self._classes()
        found = [objects for cls, objects in self._by_class.items() if issubclass(cls, model)]
        if len(found) == 1:
            return list(found[0])  # type: ignore[arg-type]
        return sorted((obj for objects in found for obj in objects), key=lambda obj: obj.key.order())  # type: ignore[misc]

    def with_tokens(self, tokens: Tokens) -> ResourceSet:
        """The same objects, with the access tokens minted so far as one more input."""
        if self._by_class is None:
            # Built here, once for both: the translation needs it, and the next load's set takes it from
            # this one (``previous``), which would otherwise index every object again.
            self._by_class = self._classes()
        copy = ResourceSet()
        copy._index, copy._given = self._index, self._given
        copy._by_class = self._by_class
        copy.generation, copy.changes = self.generation, self.changes
        copy._tokens = tokens
        return copy

    @property
    def minting(self) -> bool:
        """Whether tokens are minted for this input (``serve``) or taken as minted (``translate``)."""
        return self._tokens is not None

    def tokens(self) -> Tokens:
        return self._tokens or {}

    def token(self, policy: ObjectKey) -> TokenState | None:
        """The access token minted for ``policy``; None while it is being minted. Without minting
        (``translate``) every token is taken as minted (``tokens.state.OFFLINE_TOKEN``)."""
        if self._tokens is None:
            return OFFLINE_TOKEN
        return self._tokens.get(policy)

    def uses_all(self, model: type[Resource]) -> None:
        """Says that what the caller computes depends on every ``model`` object (it consults something
        built from all of them); a recording view (``gatewayapi.memo``) notes it, this one ignores it."""

    def by_kind(self, kind: str, *, group: str | None = None) -> list[Resource]:
        return [
            item.object
            for key, item in self._index.items()
            if key.kind == kind and (group is None or key.group == group)
        ]

    def find(self, model: type[R], namespace: str, name: str) -> R | None:
        """The ``model`` object at ``namespace``/``name`` (namespace ignored for cluster-scoped kinds)."""
        found = self.get(model.key_for(namespace, name))
        return found if isinstance(found, model) else None

    # --- collections ---

    def routes(self) -> list[AIGatewayRoute]:
        return self.of_type(AIGatewayRoute)

    def backends(self) -> list[AIServiceBackend]:
        return self.of_type(AIServiceBackend)

    def security_policies(self) -> list[BackendSecurityPolicy]:
        return self.of_type(BackendSecurityPolicy)

    def gateways(self) -> list[Gateway]:
        return self.of_type(Gateway)

    def gateway_classes(self) -> list[GatewayClass]:
        return self.of_type(GatewayClass)

    def gateway_class(self, name: str) -> GatewayClass | None:
        return next((item for item in self.gateway_classes() if item.name == name), None)

    def eg_backends(self) -> list[Backend]:
        """Envoy Gateway ``Backend`` objects (not AIServiceBackends)."""
        return self.of_type(Backend)

    def backend_tls_policies(self) -> list[BackendTLSPolicy]:
        return self.of_type(BackendTLSPolicy)

    def backend_traffic_policies(self) -> list[BackendTrafficPolicy]:
        return self.of_type(BackendTrafficPolicy)

    def reference_grants(self) -> list[ReferenceGrant]:
        return self.of_type(ReferenceGrant)

    def inference_pools(self) -> list[InferencePoolBase]:
        """Both InferencePool versions, through their common view."""
        # By class, not by scanning every object; the base is abstract, which ``of_type`` does not mind.
        return self.of_type(InferencePoolBase)  # type: ignore[type-abstract]

    def services(self) -> list[Service]:
        return self.of_type(Service)

    def endpoint_slices(self) -> list[EndpointSlice]:
        return self.of_type(EndpointSlice)

    def pods(self) -> list[Pod]:
        return self.of_type(Pod)

    # --- lookups by reference ---

    def backend(self, namespace: str, name: str) -> AIServiceBackend | None:
        return self.find(AIServiceBackend, namespace, name)

    def eg_backend(self, namespace: str, name: str) -> Backend | None:
        return self.find(Backend, namespace, name)

    def service(self, namespace: str, name: str) -> Service | None:
        return self.find(Service, namespace, name)

    def secret(self, namespace: str, name: str) -> Secret | None:
        return self.find(Secret, namespace, name)

    def config_map(self, namespace: str, name: str) -> ConfigMap | None:
        return self.find(ConfigMap, namespace, name)

    def gateway(self, namespace: str, name: str) -> Gateway | None:
        return self.find(Gateway, namespace, name)

    def inference_pool(
        self, namespace: str, name: str, *, group: str | None = None
    ) -> InferencePoolBase | None:
        """The pool a backendRef names. Without a group (AI Gateway v0.2 refs set only the kind) the v1 pool
        is preferred, then the v1alpha2 one."""
        v1 = self.find(InferencePool, namespace, name) if group in (None, INFERENCE_GROUP) else None
        if v1 is not None:
            return v1
        return (
            self.find(InferencePoolV1Alpha2, namespace, name) if group in (None, INFERENCE_X_GROUP) else None
        )

    def endpoint_slices_for(self, namespace: str, service_name: str) -> list[EndpointSlice]:
        """The EndpointSlices of a Service (by their ``kubernetes.io/service-name`` label), sorted by name."""
        return [
            s for s in self.endpoint_slices() if s.namespace == namespace and s.service_name == service_name
        ]
