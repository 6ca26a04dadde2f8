"""The intermediate representation between user resources and Envoy messages.

The Gateway-API side (``controlplane.gatewayapi``) resolves references, defaults and conflicts and
produces this IR; the Envoy side (``controlplane.xds.translator``) turns it into xDS messages without
knowing anything about Kubernetes. Keeping the seam explicit lets each half be tested (and golden-tested)
alone, as Envoy Gateway does.

Every collection is a tuple sorted by name so that equal inputs give byte-identical snapshots.

Shape of the data path for one AIGatewayRoute rule::

    listener (per port) -> route (per rule match) -> rule cluster (priorities x weights)
        -> per-backendRef internal listener (model override, credential, headers, path prefix)
        -> upstream cluster (per Backend / Service / pool) -> real endpoints

A backendRef whose hop does nothing per attempt (``BackendHop.works_per_attempt``) costs no internal
listener: the translator puts its upstream's endpoints in the rule cluster (``xds.translator.data_path``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from controlplane.ir import cost_expression as cost_expression
from controlplane.ir.failover import CircuitBreaker as CircuitBreaker
from controlplane.ir.failover import OutlierPolicy as OutlierPolicy
from controlplane.ir.failover import RetryPolicy as RetryPolicy
from controlplane.ir.providers import MODEL_IN_PATH as MODEL_IN_PATH
from controlplane.ir.providers import AwsKeys as AwsKeys
from controlplane.ir.providers import AwsSigning as AwsSigning
from controlplane.ir.providers import Credential as Credential
from controlplane.ir.providers import CredentialOverride as CredentialOverride
from controlplane.ir.providers import CredentialSecret as CredentialSecret
from controlplane.ir.providers import LlmApi as LlmApi
from controlplane.ir.providers import ModelPath as ModelPath
from controlplane.ir.providers import ProviderApi as ProviderApi
from controlplane.ir.providers import ProviderPath as ProviderPath
from controlplane.ir.providers import Transcoding as Transcoding


def _remember_hash(node: object, fields: tuple[object, ...]) -> None:
    """Listeners, virtual hosts and routes keep their hash: ``xds.translator.reuse`` looks a new listener up
    by value on every translation, and with each route's hash kept, hashing one of thousands of routes costs
    one step per route rather than a walk through all their contents."""
    object.__setattr__(node, "_hash", hash(fields))


MODEL_HEADER = "x-ai-eg-model"
"""The header rules match on to select a model; Envoy fills it from the request body's ``model``."""
OPENAI_PATH_PREFIX = "/v1"
"""Where clients send OpenAI-compatible requests; also a backend's path prefix when its schema names none."""
ANTHROPIC_CLIENT_PATH = "/anthropic/v1/messages"
"""Where clients of Anthropic's own Messages API call (upstream's ``/anthropic`` endpoint prefix)."""
COHERE_RERANK_PATH = "/cohere/v2/rerank"
"""Where clients of Cohere's Rerank API v2 call (upstream's ``/cohere`` endpoint prefix)."""


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: str
    value: str
    regex: bool = False


class PathMatchType(StrEnum):
    PREFIX = "PathPrefix"
    EXACT = "Exact"
    REGEX = "RegularExpression"


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: PathMatchType = PathMatchType.PREFIX
    value: str = "/"


@dataclass(frozen=True, slots=True)
class PathRewrite:
    """Either replace the whole path or the matched prefix (Gateway API URLRewrite semantics)."""

    full_path: str | None = None
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    set: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def merged_over(self, base: HeaderEdits) -> HeaderEdits:
        """``self`` wins on conflicts (a backendRef's mutation beats its AIServiceBackend's)."""
        if not (self.set or self.remove or base.set or base.remove):
            return self  # most hops: nothing over nothing
        names = {name.lower() for name, _ in self.set} | {name.lower() for name in self.remove}
        kept_set = tuple(item for item in base.set if item[0].lower() not in names)
        kept_remove = tuple(name for name in base.remove if name.lower() not in names)
        return HeaderEdits(
            set=tuple(sorted(kept_set + self.set)), remove=tuple(sorted(kept_remove + self.remove))
        )


NO_HEADER_EDITS = HeaderEdits()
"""Most backends' and backendRefs' edits: one shared value rather than one made for each."""


@dataclass(frozen=True, slots=True)
class Forward:
    cluster: str
    timeout_seconds: float
    """The whole request, every retry included (``timeouts.request``); 0: none."""
    idle_timeout_seconds: float | None = None
    """How long the stream may carry nothing either way (Envoy's route idle timeout); 0: none."""
    retry: RetryPolicy | None = None
    path_rewrite: PathRewrite | None = None
    hostname_rewrite: str | None = None
    request_headers: HeaderEdits = HeaderEdits()
    model_override: str | None = None
    """The model of the rule's first choice of backend: the route rewrites the body's model and the model
    header once, before the first attempt; a backend that wants another rewrites it again in its hop."""


@dataclass(frozen=True, slots=True)
class DirectResponse:
    """Answered by Envoy. An error status wraps the message in the same OpenAI-style error JSON as Envoy's
    own errors; a success status sends it as is, as JSON (the model list)."""

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class ListedModel:
    """One entry of the ``GET /v1/models`` list (OpenAI's model object)."""

    id: str
    created: int
    """Unix seconds."""
    owned_by: str


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    path: PathMatch
    headers: tuple[HeaderMatch, ...]
    action: Forward | DirectResponse
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _remember_hash(self, (self.name, self.path, self.headers, self.action))

    def __hash__(self) -> int:
        return self._hash

    @property
    def matches_model(self) -> bool:
        """Whether the route matches on the request's model (which the listener reads from the body)."""
        return any(header.name == MODEL_HEADER for header in self.headers)


@dataclass(frozen=True, slots=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _remember_hash(self, (self.name, self.domains, self.routes))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class TokenCost:
    """One ``llmRequestCosts`` entry: what each response costs, computed from the OpenAI response's
    ``usage`` and published as dynamic metadata (namespace ``io.envoy.ai_gateway``) under the user's key."""

    metadata_key: str
    expression: cost_expression.Expression
    """A count type's is the bare count variable (``input_tokens`` ...), a ``CEL`` cost's the parsed CEL."""


@dataclass(frozen=True, slots=True)
class HttpListener:
    """One Envoy listener per address:port; virtual hosts carry the Gateway listeners' hostnames."""

    name: str
    address: str
    port: int
    route_config: str
    virtual_hosts: tuple[VirtualHost, ...]
    token_costs: tuple[TokenCost, ...] = ()
    """Every cost of the routes on this listener (sorted): each response's usage sets all of them."""
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _remember_hash(
            self,
            (self.name, self.address, self.port, self.route_config, self.virtual_hosts, self.token_costs),
        )

    def __hash__(self) -> int:
        return self._hash

    @property
    def overrides_model(self) -> bool:
        """Whether a route rewrites the model for its first choice of backend (``Forward.model_override``)."""
        return any(
            isinstance(route.action, Forward) and route.action.model_override is not None
            for vhost in self.virtual_hosts
            for route in vhost.routes
        )

    @property
    def reads_body(self) -> bool:
        """Whether the listener reads each request's model and ``stream`` from the body (and refuses a JSON
        body that does not parse) before it picks a route: a route matches on the model, or forwards to
        backends, whose token usage is counted per model and whose streams are asked for their usage."""
        return any(
            isinstance(route.action, Forward) or route.matches_model
            for vhost in self.virtual_hosts
            for route in vhost.routes
        )


@dataclass(frozen=True, slots=True)
class SocketEndpoint:
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class InternalEndpoint:
    listener: str


@dataclass(frozen=True, slots=True)
class WeightedEndpoint:
    target: SocketEndpoint | InternalEndpoint
    weight: int
    priority: int
    backend: str | None = None
    """``name.namespace`` of the backendRef, for the route's CEL costs that read ``backend`` (else None)."""


@dataclass(frozen=True, slots=True)
class RuleCluster:
    """All backendRefs of one rule: priority levels, weights within a level (EDS-delivered)."""

    name: str
    endpoints: tuple[WeightedEndpoint, ...]
    outlier: OutlierPolicy | None = None
    circuit_breaker: CircuitBreaker | None = None
    """None: our default (concurrent retries bounded only by each request's retry count)."""


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    sni: str
    verify_hostname: str | None
    ca_secret: str | None
    """SDS name of a validation context; None means the system trust store."""
    verify: bool = True
    """False: encrypt without checking the certificate (an endpoint picker's self-signed one)."""


class DiscoveryType(StrEnum):
    DNS = "dns"
    EDS = "eds"


class Balancing(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_REQUEST = "least_request"


@dataclass(frozen=True, slots=True)
class UpstreamCluster:
    """A real destination: an EG Backend, a Kubernetes Service port or an InferencePool's endpoints."""

    name: str
    discovery: DiscoveryType
    endpoints: tuple[SocketEndpoint, ...]
    tls: UpstreamTls | None = None
    connect_timeout_seconds: float = 10.0
    balancing: Balancing = Balancing.ROUND_ROBIN
    picked_endpoint: bool = False
    """Send each request to the endpoint an endpoint picker named, if it is one of ``endpoints``; otherwise
    (no pick, a pick outside the cluster, an unhealthy pick) balance by ``balancing``."""
    outlier: OutlierPolicy | None = None
    http2: bool = False
    """Speak HTTP/2 only (a gRPC service such as an endpoint picker)."""


@dataclass(frozen=True, slots=True)
class EndpointPicker:
    """An InferencePool's endpoint picker, asked by Envoy about every request (endpoint picker protocol)."""

    cluster: str
    """The picker's gRPC cluster."""
    authority: str
    """``<service>.<namespace>:<port>``, the ``:authority`` of the picker's gRPC calls."""
    withheld_headers: tuple[str, ...] = ()
    """Request headers the picker is not sent (the client's credentials: it needs none to choose)."""


@dataclass(frozen=True, slots=True)
class BackendHop:
    """The per-backendRef step that runs once per attempt, after the rule cluster picked this backend."""

    name: str
    upstream_cluster: str
    model_override: str | None = None
    credential: Credential | AwsSigning | None = None
    request_headers: HeaderEdits = HeaderEdits()
    path_prefix: str = OPENAI_PATH_PREFIX
    host_rewrite: str | None = None
    picker: EndpointPicker | None = None
    """Ask this endpoint picker which of the upstream cluster's endpoints serves each attempt."""
    provider_api: ProviderApi | None = None
    """The provider's own paths instead of ``path_prefix`` (the model may be part of the path)."""
    transcoding: Transcoding | None = None
    """None: the backend speaks OpenAI's API, and the request goes as sent (``path_prefix`` aside)."""

    @property
    def works_per_attempt(self) -> bool:
        """Whether the hop changes anything about an attempt; one that does not is left out of the data
        path. Per-backend work added to a hop must be named here too."""
        return (
            self.model_override is not None
            or self.credential is not None
            or self.request_headers != NO_HEADER_EDITS
            or self.path_prefix != OPENAI_PATH_PREFIX
            or self.host_rewrite is not None
            or self.picker is not None
            or self.provider_api is not None
            or self.transcoding is not None
        )

    @property
    def routes_on_stream(self) -> bool:
        """Whether the hop picks the provider's path by the body's ``stream`` (streams have their own)."""
        return self.transcoding is not None and self.transcoding.model_path is not None


@dataclass(frozen=True, slots=True)
class CaBundle:
    name: str
    pem: str


@dataclass(frozen=True, slots=True)
class Infra:
    """Everything the Envoy side needs; tuples sorted by name."""

    listeners: tuple[HttpListener, ...] = ()
    rule_clusters: tuple[RuleCluster, ...] = ()
    hops: tuple[BackendHop, ...] = ()
    upstreams: tuple[UpstreamCluster, ...] = ()
    credentials: tuple[CredentialSecret, ...] = ()
    ca_bundles: tuple[CaBundle, ...] = ()
