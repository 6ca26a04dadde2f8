"""Gateway API (``gateway.networking.k8s.io``) types: the shared references the AI Gateway API embeds, and
the Gateway, GatewayClass, BackendTLSPolicy and ReferenceGrant kinds.

Field names and defaults follow kubernetes-sigs/gateway-api ``apis/v1`` (and ``v1alpha3`` for the older
BackendTLSPolicy, which has the same fields).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from controlplane.resources.cel import cel, x_validations
from controlplane.resources.fieldtypes import (
    AbsolutePath,
    Duration,
    Group,
    HeaderName,
    HeaderNameToRemove,
    HeaderValue,
    Kind,
    Namespace,
    ObjectName,
    PreciseHostname,
    SectionName,
    validate_absolute_path,
)
from controlplane.resources.groups import GATEWAY_API_GROUP
from controlplane.resources.meta import Loose, Model, Resource
from controlplane.resources.regex import re2_problem

PortNumber = Annotated[int, Field(ge=1, le=65535, strict=True)]
"""Strict, as the API server is: ``"8080"`` (a string) is refused, not read as a number."""


class ParentReference(Model):
    group: Group = GATEWAY_API_GROUP
    kind: Kind = "Gateway"
    namespace: Namespace | None = None
    name: ObjectName
    section_name: SectionName | None = None
    port: PortNumber | None = None


class BackendObjectReference(Model):
    group: Group = ""
    kind: Kind = "Service"
    name: ObjectName
    namespace: Namespace | None = None
    port: PortNumber | None = None


class SecretObjectReference(Model):
    group: Group = ""
    kind: Kind = "Secret"
    name: ObjectName
    namespace: Namespace | None = None


class LocalObjectReference(Model):
    group: Group
    kind: Kind
    name: ObjectName


class LocalPolicyTargetReference(Model):
    group: Group
    kind: Kind
    name: ObjectName


class LocalPolicyTargetReferenceWithSectionName(LocalPolicyTargetReference):
    section_name: SectionName | None = None


class HTTPHeader(Model):
    name: HeaderName
    value: HeaderValue


def _envoy_regex(value: str, info: ValidationInfo) -> str:
    """A ``RegularExpression`` match's value must compile as Envoy compiles it (see ``regex``)."""
    if info.data.get("type") == "RegularExpression" and (problem := re2_problem(value)):
        raise PydanticCustomError("regex", problem)
    return value


def _path_or_regex(value: str, info: ValidationInfo) -> str:
    if info.data.get("type", "PathPrefix") != "RegularExpression":
        return validate_absolute_path(value)
    return _envoy_regex(value, info)


class HTTPHeaderMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: HeaderValue

    _regex = field_validator("value")(_envoy_regex)


class HTTPPathMatch(Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = Field(default="/", min_length=1, max_length=1024)

    _path = field_validator("value")(_path_or_regex)


class HTTPPathModifier(Model):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: AbsolutePath | None = None
    replace_prefix_match: AbsolutePath | None = None


class HTTPURLRewriteFilter(Model):
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None


class HTTPHeaderFilter(Model):
    set: list[HTTPHeader] = Field(default_factory=list)
    add: list[HTTPHeader] = Field(default_factory=list)
    remove: list[HeaderNameToRemove] = Field(default_factory=list)


class HTTPRouteFilter(Model):
    """The subset of Gateway API's HTTPRouteFilter that an AI route can use (see AIGatewayRouteRule)."""

    type: Literal["URLRewrite", "RequestHeaderModifier"]
    url_rewrite: HTTPURLRewriteFilter | None = Field(default=None, alias="urlRewrite")
    request_header_modifier: HTTPHeaderFilter | None = None


class HTTPRouteTimeouts(Model):
    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel(
                "!(has(self.request) && has(self.backendRequest) && duration(self.request) != duration('0s')"
                " && duration(self.backendRequest) > duration(self.request))",
                "backendRequest timeout cannot be longer than request timeout",
            )
        )
    )

    request: Duration | None = None
    backend_request: Duration | None = None

    @model_validator(mode="after")
    def _backend_request_within_request(self) -> HTTPRouteTimeouts:
        # Zero means no timeout, so any backendRequest fits in it.
        request, backend_request = self.request, self.backend_request
        if request and backend_request is not None and backend_request > request:
            raise PydanticCustomError(
                "timeouts_order", "backendRequest timeout cannot be longer than request timeout"
            )
        return self


# --- Gateway and GatewayClass -------------------------------------------------------------------------


class RouteNamespaces(Model):
    from_: Literal["All", "Same", "Selector", "None"] = Field(default="Same", alias="from")
    selector: Loose | None = None


class RouteGroupKind(Model):
    group: str = GATEWAY_API_GROUP
    kind: str


class AllowedRoutes(Model):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: list[RouteGroupKind] = Field(default_factory=list)


class ListenerTLSConfig(Model):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: list[SecretObjectReference] = Field(default_factory=list)
    options: dict[str, str] = Field(default_factory=dict)
    frontend_validation: Loose | None = None


class Listener(Model):
    name: str = Field(min_length=1)
    hostname: str | None = None
    port: PortNumber
    protocol: str = Field(min_length=1)
    tls: ListenerTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)


class GatewaySpecAddress(Model):
    type: str = "IPAddress"
    value: str = ""


class GatewaySpec(Model):
    gateway_class_name: str = Field(min_length=1)
    listeners: list[Listener] = Field(min_length=1)
    addresses: list[GatewaySpecAddress] = Field(default_factory=list)
    infrastructure: Loose | None = None
    allowed_listeners: Loose | None = None
    tls: Loose | None = None
    backend_tls: Loose | None = Field(default=None, alias="backendTLS")
    default_scope: str | None = None


class Gateway(Resource):
    api_group = GATEWAY_API_GROUP
    api_kind = "Gateway"
    api_versions = ("v1", "v1beta1")

    spec: GatewaySpec


class GatewayClassSpec(Model):
    controller_name: str = Field(min_length=1)
    parameters_ref: Loose | None = None
    description: str | None = None


class GatewayClass(Resource):
    api_group = GATEWAY_API_GROUP
    api_kind = "GatewayClass"
    api_versions = ("v1", "v1beta1")
    cluster_scoped = True

    spec: GatewayClassSpec


# --- BackendTLSPolicy ---------------------------------------------------------------------------------


class SubjectAltName(Model):
    type: Literal["Hostname", "URI"]
    hostname: str = ""
    uri: str = ""


class BackendTLSPolicyValidation(Model):
    ca_certificate_refs: list[LocalObjectReference] = Field(default_factory=list)
    well_known_ca_certificates: Literal["System"] | None = Field(
        default=None, alias="wellKnownCACertificates"
    )
    hostname: str = Field(min_length=1)
    subject_alt_names: list[SubjectAltName] = Field(default_factory=list)


class BackendTLSPolicySpec(Model):
    target_refs: list[LocalPolicyTargetReferenceWithSectionName] = Field(min_length=1)
    validation: BackendTLSPolicyValidation
    options: dict[str, str] = Field(default_factory=dict)


class BackendTLSPolicy(Resource):
    api_group = GATEWAY_API_GROUP
    api_kind = "BackendTLSPolicy"
    api_versions = ("v1", "v1alpha3")

    spec: BackendTLSPolicySpec


# --- ReferenceGrant -----------------------------------------------------------------------------------


class ReferenceGrantFrom(Model):
    group: str
    kind: str
    namespace: str = Field(min_length=1)


class ReferenceGrantTo(Model):
    group: str
    kind: str
    name: str | None = None


class ReferenceGrantSpec(Model):
    from_: list[ReferenceGrantFrom] = Field(min_length=1, alias="from")
    to: list[ReferenceGrantTo] = Field(min_length=1)


class ReferenceGrant(Resource):
    api_group = GATEWAY_API_GROUP
    api_kind = "ReferenceGrant"
    api_versions = ("v1", "v1beta1")

    spec: ReferenceGrantSpec
