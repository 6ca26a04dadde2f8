"""Which kinds the Kubernetes source watches, where they live in the API, and how each is watched.

One table, read by the source (what to watch), by status writing (which kinds' status is ours) and by the
Helm chart's RBAC test (what the ServiceAccount must be allowed to read), so the three cannot drift.
Secrets and ConfigMaps are not watched wholesale: a cluster's Secrets are not ours to cache, so only the
ones a policy references are watched, each by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from controlplane.resources.aigateway import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy
from controlplane.resources.core import ConfigMap, EndpointSlice, Pod, Secret, Service
from controlplane.resources.envoy_gateway import Backend, BackendTrafficPolicy
from controlplane.resources.gateway_api import BackendTLSPolicy, Gateway, GatewayClass, ReferenceGrant
from controlplane.resources.inference import InferencePool, InferencePoolV1Alpha2
from controlplane.resources.meta import Resource
from controlplane.sources.kubernetes.api import ApiResource, KubeApi


class Scope(Enum):
    ALL = "all"
    """Every object of the kind in the watched namespaces."""
    REFERENCED = "referenced"
    """Only objects some other object references, each watched by name."""


@dataclass(frozen=True, slots=True)
class WatchedKind:
    model: type[Resource]
    plural: str
    scope: Scope = Scope.ALL
    status_is_ours: bool = False
    """The control plane writes this kind's status (and ignores status-only changes to it)."""
    status_parents_field: str | None = None
    """The control plane writes its own entries of this per-Gateway status list (another kind's status, so
    other controllers' entries stay) and ignores status-only changes to it."""
    inference_extension: bool = False
    """Watched only with the Inference Extension switched on."""

    @property
    def writes_status(self) -> bool:
        return self.status_is_ours or self.status_parents_field is not None

    @property
    def group(self) -> str:
        return self.model.api_group

    @property
    def kind(self) -> str:
        return self.model.api_kind

    @property
    def namespaced(self) -> bool:
        return not self.model.cluster_scoped

    def resolve(self, api: KubeApi) -> ApiResource | None:
        """The version to watch: the group's preferred one if we read it and it has this kind, else the
        first we read that has it, in the order the model lists them. None when no served version has it
        (a group's versions need not all carry every kind: Gateway API's v1 has no ReferenceGrant)."""
        served, preferred = api.discover(self.group)
        ours = [version for version in self.model.api_versions if version in served]
        ours.sort(key=lambda version: version != preferred)
        for version in ours:
            if any(entry.get("name") == self.plural for entry in api.resources(self.group, version)):
                return ApiResource(self.group, version, self.plural, self.kind, namespaced=self.namespaced)
        return None


WATCHED_KINDS: tuple[WatchedKind, ...] = (
    WatchedKind(AIGatewayRoute, "aigatewayroutes", status_is_ours=True),
    WatchedKind(AIServiceBackend, "aiservicebackends", status_is_ours=True),
    WatchedKind(BackendSecurityPolicy, "backendsecuritypolicies", status_is_ours=True),
    WatchedKind(GatewayClass, "gatewayclasses"),
    WatchedKind(Gateway, "gateways"),
    WatchedKind(BackendTLSPolicy, "backendtlspolicies"),
    WatchedKind(ReferenceGrant, "referencegrants"),
    WatchedKind(Backend, "backends"),
    WatchedKind(BackendTrafficPolicy, "backendtrafficpolicies"),
    WatchedKind(Service, "services"),
    WatchedKind(EndpointSlice, "endpointslices"),
    WatchedKind(Secret, "secrets", scope=Scope.REFERENCED),
    WatchedKind(ConfigMap, "configmaps", scope=Scope.REFERENCED),
    WatchedKind(InferencePool, "inferencepools", status_parents_field="parents", inference_extension=True),
    WatchedKind(
        InferencePoolV1Alpha2, "inferencepools", status_parents_field="parent", inference_extension=True
    ),
    WatchedKind(Pod, "pods", inference_extension=True),
)

CRDS = ApiResource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)
"""Watched so that a kind whose CRD is installed later is picked up at once."""


def watched_kinds(*, inference_extension: bool) -> tuple[WatchedKind, ...]:
    return tuple(kind for kind in WATCHED_KINDS if inference_extension or not kind.inference_extension)
