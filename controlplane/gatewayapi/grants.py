"""Cross-namespace references need the target namespace's consent (Gateway API ReferenceGrant).

Without this check a route in one namespace could send its traffic through another team's AIServiceBackend,
and so through that team's credential. Envoy AI Gateway requires the same grant for cross-namespace
backendRefs; the rule here is Gateway API's: a ReferenceGrant in the *target* namespace naming the
referring kind and namespace in ``from`` and the target kind (optionally one name) in ``to``.
"""

from __future__ import annotations

from controlplane.resources.meta import Resource
from controlplane.resources.resource_set import ResourceSet


def reference_allowed(
    resources: ResourceSet,
    *,
    source: Resource,
    target_group: str,
    target_kind: str,
    namespace: str,
    name: str,
) -> bool:
    if namespace == source.namespace:
        return True
    return any(
        any(
            entry.group == source.api_group
            and entry.kind == source.api_kind
            and entry.namespace == source.namespace
            for entry in grant.spec.from_
        )
        and any(
            entry.group == target_group and entry.kind == target_kind and entry.name in (None, name)
            for entry in grant.spec.to
        )
        for grant in resources.reference_grants()
        if grant.namespace == namespace
    )


def denied_message(*, kind: str, namespace: str, name: str) -> str:
    return (
        f"{kind} {namespace}/{name} is in another namespace and no ReferenceGrant there allows this reference"
    )
