"""Envoy AI Gateway kinds (``aigateway.envoyproxy.io`` v1alpha1 and v1beta1): AIGatewayRoute,
AIServiceBackend, BackendSecurityPolicy, plus the kinds we recognise without translating them.

Both versions share one schema upstream (only a deprecation marker differs), so one model serves both.
Fields removed upstream but still found in users' v1alpha1 manifests are accepted and marked deprecated;
``targetRefs`` is turned into ``parentRefs`` at load time so the translator sees a single shape.
Facts: envoyproxy/ai-gateway ``api/v1beta1`` at v1.1.0 and ``api/v1alpha1`` at v0.1.5 to v0.5.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from controlplane.ir import OPENAI_PATH_PREFIX
from controlplane.resources.cel import cel, x_validations
from controlplane.resources.fieldtypes import (
    INT32_MAX,
    Duration,
    Group,
    HeaderNameToRemove,
    Hostname,
    KindOrEmpty,
    ModelName,
    Namespace,
)
from controlplane.resources.gateway_api import (
    BackendObjectReference,
    HTTPHeader,
    HTTPHeaderMatch,
    HTTPPathMatch,
    HTTPRouteFilter,
    HTTPRouteTimeouts,
    LocalObjectReference,
    LocalPolicyTargetReferenceWithSectionName,
    ParentReference,
)
from controlplane.resources.groups import AIGATEWAY_GROUP, INFERENCE_POOL_KIND
from controlplane.resources.listtypes import LIST_SET, list_map
from controlplane.resources.meta import Loose, LooseResource, Model, Resource
from controlplane.resources.notes import UNIMPLEMENTED, deprecated
from controlplane.resources.security import BackendSecurityPolicySpec

AIGATEWAY_VERSIONS = ("v1alpha1", "v1beta1")
DEFAULT_REQUEST_TIMEOUT = timedelta(seconds=60)
"""AI Gateway's default for ``rules[].timeouts.request`` (Envoy Gateway's own default is 15s)."""

APISchemaName = Literal[
    "OpenAI",
    "Cohere",
    "AWSBedrock",
    "AzureOpenAI",
    "GCPVertexAI",
    "GCPAnthropic",
    "Anthropic",
    "AWSAnthropic",
]


class VersionedAPISchema(Model):
    """The API a backend speaks."""

    name: APISchemaName
    version: str | None = None
    """The provider's API version (Azure OpenAI's api-version); for OpenAI before v0.5, its path prefix."""
    prefix: str | None = None
    """Where the API lives on the backend (``/v1`` when not set)."""

    @property
    def path_prefix(self) -> str:
        """Where the provider's API lives.

        ``prefix``; else, for OpenAI manifests older than v0.5, ``version`` (``v1`` gives ``/v1``); else
        ``/v1``. Always one leading slash and no trailing slash (a prefix of ``/`` gives the empty string).
        """
        if self.prefix is not None:
            chosen = self.prefix
        elif self.name == "OpenAI" and self.version:
            chosen = self.version
        else:
            chosen = OPENAI_PATH_PREFIX
        stripped = chosen.strip("/")
        return f"/{stripped}" if stripped else ""


MAX_MUTATIONS = 16
"""Upstream's limit on each of a header or body mutation's ``set`` and ``remove`` lists."""


class HTTPHeaderMutation(Model):
    set: Annotated[list[HTTPHeader], list_map("name")] = Field(default_factory=list, max_length=MAX_MUTATIONS)
    remove: Annotated[list[HeaderNameToRemove], LIST_SET] = Field(
        default_factory=list, max_length=MAX_MUTATIONS
    )


class HTTPBodyField(Model):
    path: str = Field(min_length=1)
    value: str


class HTTPBodyMutation(Model):
    set: Annotated[list[HTTPBodyField], list_map("path")] = Field(
        default_factory=list, max_length=MAX_MUTATIONS
    )
    remove: Annotated[list[str], LIST_SET] = Field(default_factory=list, max_length=MAX_MUTATIONS)


class LLMRequestCost(Model):
    metadata_key: str = Field(min_length=1)
    type: Literal[
        "InputToken",
        "CachedInputToken",
        "CacheCreationInputToken",
        "OutputToken",
        "ReasoningToken",
        "TotalToken",
        "CEL",
    ]
    cel: str | None = None


# --- AIGatewayRoute -----------------------------------------------------------------------------------

_ONLY_GATEWAYS = "only Gateway is supported"


MAX_BACKEND_WEIGHT = 1_000_000
"""Upstream documents the weight as exactly Gateway API's BackendRef weight, whose CRD caps it here; it also
keeps a priority level's summed weights (at most 128 refs) within Envoy's uint32."""


class AIGatewayRouteRuleBackendRef(Model):
    """A backend of a rule: an AIServiceBackend, or an InferencePool when kind says so."""

    name: str = Field(min_length=1)
    namespace: Namespace | None = None
    """The backend's namespace (the route's when not set; another needs a ReferenceGrant there)."""
    group: Group | None = None
    kind: KindOrEmpty | None = None
    """``InferencePool`` for a pool; an AIServiceBackend when not set."""
    model_name_override: ModelName = ""
    """The model name sent to this backend instead of the client's (body and x-ai-eg-model header)."""
    header_mutation: HTTPHeaderMutation | None = None
    body_mutation: Annotated[HTTPBodyMutation | None, UNIMPLEMENTED] = None
    weight: int = Field(default=1, ge=0, le=MAX_BACKEND_WEIGHT, strict=True)
    """This backend's share of its priority level's traffic."""
    priority: int = Field(default=0, ge=0, le=INT32_MAX, strict=True)
    """Lower levels are tried first; the next level takes over when a level fails."""

    @property
    def is_inference_pool(self) -> bool:
        """True for an InferencePool ref, with or without a group (v0.2 manifests set only the kind)."""
        return self.kind == INFERENCE_POOL_KIND


class AIGatewayRouteRuleMatch(Model):
    """What a request must carry for its rule to apply (every condition of one match)."""

    headers: Annotated[list[HTTPHeaderMatch], list_map("name")] = Field(default_factory=list, max_length=16)
    path: HTTPPathMatch | None = None
    """Extension: Gateway API's HTTPRouteMatch.path, which upstream fixes to its root prefix. Lets one
    gateway expose a model behind its own path (seed 003's ``/model``)."""


class AIGatewayRouteRule(Model):
    """Where matching requests go."""

    name: str | None = None
    backend_refs: list[AIGatewayRouteRuleBackendRef] = Field(default_factory=list, max_length=128)
    matches: list[AIGatewayRouteRuleMatch] = Field(default_factory=list, max_length=128)
    """Any one of these selects the rule; none means every request."""
    filters: list[HTTPRouteFilter] = Field(default_factory=list)
    """Extension: Gateway API's HTTPRouteRule.filters (URLRewrite, RequestHeaderModifier), with
    HTTPRoute's field names, for paths and headers upstream can only change with an extra HTTPRoute."""
    timeouts: HTTPRouteTimeouts | None = None
    """``request`` defaults to 60s; ``0s`` means none."""
    stream_idle_timeout: Duration | None = None
    """How long the backend may send nothing before the attempt is abandoned (and retried elsewhere):
    Envoy's per-try idle timeout, as Envoy AI Gateway v1.1 sets it (per its API notes; v1.1 is not on the
    Go module proxy to read). ``0s`` means none."""
    models_owned_by: str = "Envoy AI Gateway"
    """``owned_by`` of the models this rule declares on ``GET /v1/models``."""
    models_created_at: datetime | None = None
    """``created`` of the models this rule declares (default: the route's creation time)."""

    @property
    def request_timeout(self) -> timedelta:
        """``timeouts.request``, defaulting to AI Gateway's 60s; zero means no timeout (Gateway API).

        With ``request`` unset, a longer ``backendRequest`` is the limit, as upstream: Envoy Gateway makes
        ``backendRequest`` the route's timeout, so 60s never cuts a backend allowed longer.
        """
        timeouts = self.timeouts
        if timeouts is not None and timeouts.request is not None:
            return timeouts.request
        if timeouts is not None and timeouts.backend_request is not None:
            return max(DEFAULT_REQUEST_TIMEOUT, timeouts.backend_request)
        return DEFAULT_REQUEST_TIMEOUT

    @property
    def backend_request_timeout(self) -> timedelta | None:
        """``timeouts.backendRequest``: the limit of each attempt; None when unset or ``0s`` (none)."""
        backend = self.timeouts.backend_request if self.timeouts is not None else None
        return backend if backend else None


class AIGatewayRouteSpec(Model):
    # Declared before parent_refs: the parent_refs validator reads it.
    target_refs: Annotated[
        list[LocalPolicyTargetReferenceWithSectionName] | None,
        deprecated("v1alpha1 field removed in v0.4; read as parentRefs"),
    ] = None
    parent_refs: list[ParentReference] = Field(
        default_factory=list,
        validate_default=True,
        max_length=16,
        json_schema_extra=x_validations(
            cel("self.all(ref, ref.kind == 'Gateway')", _ONLY_GATEWAYS),
        ),
    )
    """The Gateways whose listeners serve this route."""
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    """Host headers the route answers (every host of its listeners when empty)."""
    rules: list[AIGatewayRouteRule] = Field(max_length=15)
    """Matched as HTTPRoute rules are; the body's ``model`` is matchable as header ``x-ai-eg-model``."""
    llm_request_costs: Annotated[list[LLMRequestCost], Field(max_length=36)] | None = None
    """Token counts of each response, or a CEL expression over them, published as dynamic metadata in
    io.envoy.ai_gateway under metadataKey."""
    api_schema: Annotated[
        VersionedAPISchema | None, deprecated("v1alpha1 field removed in v0.4; ignored (always OpenAI)")
    ] = Field(default=None, alias="schema")
    filter_config: Annotated[Loose | None, deprecated("v1alpha1 field removed in v0.6; ignored")] = None

    @field_validator("parent_refs")
    @classmethod
    def _gateway_parents(cls, value: list[ParentReference], info: ValidationInfo) -> list[ParentReference]:
        legacy = info.data.get("target_refs")
        if legacy and value:
            raise PydanticCustomError(
                "legacy_conflict", "cannot be set together with the deprecated targetRefs"
            )
        if any(ref.kind != "Gateway" for ref in value):
            raise PydanticCustomError("parent_kind", _ONLY_GATEWAYS)
        if not legacy:
            return value
        return [
            ParentReference.model_validate(
                {"group": ref.group, "kind": ref.kind, "name": ref.name, "sectionName": ref.section_name}
            )
            for ref in legacy
        ]


class AIGatewayRoute(Resource):
    """Routes OpenAI-compatible requests on a Gateway to AI backends by model, header or path."""

    api_group = AIGATEWAY_GROUP
    api_kind = "AIGatewayRoute"
    api_versions = AIGATEWAY_VERSIONS

    spec: AIGatewayRouteSpec


# --- AIServiceBackend ---------------------------------------------------------------------------------


class AIServiceBackendSpec(Model):
    api_schema: VersionedAPISchema = Field(alias="schema")
    """The API the backend speaks."""
    backend_ref: BackendObjectReference
    """Where it is: an Envoy Gateway Backend, or (an extension) a core Service with its port."""
    header_mutation: HTTPHeaderMutation | None = None
    body_mutation: Annotated[HTTPBodyMutation | None, UNIMPLEMENTED] = None
    backend_security_policy_ref: Annotated[
        LocalObjectReference | None,
        deprecated(
            "v1alpha1 field removed in v0.4; honoured as if the policy's targetRefs named this backend"
        ),
    ] = None
    timeouts: Annotated[
        HTTPRouteTimeouts | None, deprecated("v1alpha1 field deprecated in v0.2; ignored")
    ] = None


class AIServiceBackend(Resource):
    """One AI provider or model server a route can send to, and the API it speaks."""

    api_group = AIGATEWAY_GROUP
    api_kind = "AIServiceBackend"
    api_versions = AIGATEWAY_VERSIONS

    spec: AIServiceBackendSpec


# --- BackendSecurityPolicy ----------------------------------------------------------------------------


class BackendSecurityPolicy(Resource):
    """The credential requests to the targeted AIServiceBackends or InferencePools carry."""

    api_group = AIGATEWAY_GROUP
    api_kind = "BackendSecurityPolicy"
    api_versions = AIGATEWAY_VERSIONS

    spec: BackendSecurityPolicySpec


# --- Recognised, not translated -----------------------------------------------------------------------


class MCPRoute(LooseResource):
    api_group = AIGATEWAY_GROUP
    api_kind = "MCPRoute"
    api_versions = AIGATEWAY_VERSIONS


class GatewayConfig(LooseResource):
    api_group = AIGATEWAY_GROUP
    api_kind = "GatewayConfig"
    api_versions = AIGATEWAY_VERSIONS


class QuotaPolicy(LooseResource):
    api_group = AIGATEWAY_GROUP
    api_kind = "QuotaPolicy"
    api_versions = ("v1alpha1",)
