"""Which input object an Envoy resource comes from, read off the resource's name.

The builders in this package name what they make ``<what>/<namespace>/<name>/...`` after the object it
is made for (``route/`` an AIGatewayRoute's rules and hops, ``gateway/`` a Gateway's listeners,
``backend/`` an Envoy Gateway Backend, ``service/`` a Service port, ``credential/`` a
BackendSecurityPolicy's key, ``inferencepool/`` a pool, ``endpointpicker/`` the picker's Service). When a
proxy refuses a resource, this is how the refusal reaches the status of the object users wrote. The
kind alone decides nothing about the API group (InferencePool has two), so an owner is looked up among
the objects the translation judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controlplane.resources.problems import ObjectKey

_KIND_OF_PREFIX: Mapping[str, str] = {
    "route": "AIGatewayRoute",
    "gateway": "Gateway",
    "backend": "Backend",
    "service": "Service",
    "credential": "BackendSecurityPolicy",
    "inferencepool": "InferencePool",
    "endpointpicker": "Service",
}


class Owners:
    """Finds the judged object behind an Envoy resource name (None: a name no object owns, such as the
    listener made when no Gateway is given)."""

    def __init__(self, judged: Iterable[ObjectKey]) -> None:
        self._by_name = {(key.kind, key.namespace, key.name): key for key in judged}

    def owner_of(self, resource_name: str) -> ObjectKey | None:
        parts = resource_name.split("/")
        if len(parts) < 3 or parts[0] not in _KIND_OF_PREFIX:
            return None
        return self._by_name.get((_KIND_OF_PREFIX[parts[0]], parts[1], parts[2]))
