"""Which model reads a document: (apiVersion, kind) -> model class, and what to do with everything else.

Users pass whole example files (Deployments, RBAC, EnvoyProxy, ...) as they are, so a kind we do not know
is skipped, not an error. A kind we do know at an apiVersion we do not is an error: the manifest is meant
for us but we would misread it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from controlplane.resources.aigateway import (
    AIGatewayRoute,
    AIServiceBackend,
    BackendSecurityPolicy,
    GatewayConfig,
    MCPRoute,
    QuotaPolicy,
)
from controlplane.resources.core import ConfigMap, EndpointSlice, Pod, Secret, Service
from controlplane.resources.envoy_gateway import Backend, BackendTrafficPolicy
from controlplane.resources.gateway_api import BackendTLSPolicy, Gateway, GatewayClass, ReferenceGrant
from controlplane.resources.inference import (
    InferenceModel,
    InferenceModelRewrite,
    InferenceObjective,
    InferencePool,
    InferencePoolV1Alpha2,
)
from controlplane.resources.meta import Resource, api_version, split_api_version

MODELS: tuple[type[Resource], ...] = (
    AIGatewayRoute,
    AIServiceBackend,
    BackendSecurityPolicy,
    MCPRoute,
    GatewayConfig,
    QuotaPolicy,
    Gateway,
    GatewayClass,
    BackendTLSPolicy,
    ReferenceGrant,
    Backend,
    BackendTrafficPolicy,
    InferencePool,
    InferencePoolV1Alpha2,
    InferenceModel,
    InferenceObjective,
    InferenceModelRewrite,
    Service,
    EndpointSlice,
    Secret,
    ConfigMap,
    Pod,
)

_BY_GROUP_KIND: dict[tuple[str, str], type[Resource]] = {(m.api_group, m.api_kind): m for m in MODELS}


@dataclass(frozen=True, slots=True)
class Known:
    model: type[Resource]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A kind this control plane does not read (a Deployment, but also an HTTPRoute or another gateway's
    routing kinds); the loader reports it at info level and moves on."""

    reason: str


@dataclass(frozen=True, slots=True)
class UnknownVersion:
    """A kind we read, at a version we do not; the loader reports it as an error on ``apiVersion``."""

    reason: str


Lookup = Known | Skipped | UnknownVersion


@functools.lru_cache(maxsize=1024)
def lookup(api_version_value: str, kind: str) -> Lookup:
    """The model for ``kind`` at ``api_version_value``, or why there is none. Remembered: every document of
    a load asks, and they name the same few kinds."""
    group, version = split_api_version(api_version_value)
    model = _BY_GROUP_KIND.get((group, kind))
    if model is None:
        return Skipped(f"skipped: kind {kind} ({api_version_value}) is not one this control plane reads")
    if version not in model.api_versions:
        served = ", ".join(api_version(group, v) for v in model.api_versions)
        return UnknownVersion(
            f"{kind} is not supported at apiVersion {api_version_value} (supported: {served})"
        )
    return Known(model)
