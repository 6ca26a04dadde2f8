"""Envoy Gateway kinds (``gateway.envoyproxy.io/v1alpha1``) that AI Gateway manifests use: Backend (where an
AIServiceBackend's traffic goes) and BackendTrafficPolicy (retries and outlier detection, the upstream way
to get provider failover).

Only the BackendTrafficPolicy fields that failover needs are modelled in detail; its many other fields are
declared loosely and marked unimplemented, so a user's policy loads and what we ignore is reported.
Facts: envoyproxy/gateway ``api/v1alpha1`` (backend_types.go, backendtrafficpolicy_types.go,
retry_types.go, healthcheck_types.go, timeout_types.go).
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from controlplane.resources.fieldtypes import (
    DNS_SUBDOMAIN,
    INT32_MAX,
    UINT32_MAX,
    Duration,
    PositiveDuration,
)
from controlplane.resources.gateway_api import (
    LocalObjectReference,
    LocalPolicyTargetReferenceWithSectionName,
    PortNumber,
    SecretObjectReference,
)
from controlplane.resources.groups import ENVOY_GATEWAY_GROUP
from controlplane.resources.meta import Loose, Model, Resource
from controlplane.resources.notes import UNIMPLEMENTED, FieldNote, FieldState

HTTPStatus = Annotated[int, Field(ge=100, le=599)]
RetryTrigger = Literal[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
]
Percent = Annotated[int, Field(ge=0, le=100)]
Unimplemented = Annotated[Loose | None, UNIMPLEMENTED]
CONNECTION_LEVEL = FieldNote(
    FieldState.UNIMPLEMENTED,
    "not implemented: a backend's connections are shared by every route using it, so a route's policy "
    "does not set them",
)
UnimplementedList = Annotated[list[Loose] | None, UNIMPLEMENTED]

# --- Backend ------------------------------------------------------------------------------------------


# Upstream's pattern; it lets through some strings that are no address ("1:2"), which the check below refuses
# (Envoy would NACK them as malformed).
_IP_PATTERN = (
    r"^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$"
    r"|^(([0-9a-fA-F]{1,4}:){1,7}[0-9a-fA-F]{1,4}|::|(([0-9a-fA-F]{1,4}:){0,5})?(:[0-9a-fA-F]{1,4}){1,2})$"
)


class FQDNEndpoint(Model):
    hostname: str = Field(min_length=1, max_length=253, pattern=rf"^{DNS_SUBDOMAIN}$")
    port: PortNumber


class IPEndpoint(Model):
    address: str = Field(min_length=3, max_length=45, pattern=_IP_PATTERN)
    port: PortNumber

    @field_validator("address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if not _is_ip_address(value):
            raise PydanticCustomError("ip_address", "must be an IPv4 or IPv6 address")
        return value


@functools.lru_cache(maxsize=4096)
def _is_ip_address(value: str) -> bool:
    # Remembered: a load of thousands of Backends names the same few addresses, and ``ipaddress`` parses
    # each in Python (about 4 us).
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class UnixSocket(Model):
    path: str = Field(min_length=1, max_length=108)
    """A socket path's limit (``sun_path``); upstream states it as a CEL rule."""


class BackendEndpoint(Model):
    fqdn: FQDNEndpoint | None = None
    ip: IPEndpoint | None = None
    unix: UnixSocket | None = None
    zone: str | None = None
    hostname: str | None = None

    @model_validator(mode="after")
    def _exactly_one_address(self) -> BackendEndpoint:
        if sum(kind is not None for kind in (self.fqdn, self.ip, self.unix)) != 1:
            raise PydanticCustomError("endpoint_kind", "exactly one of fqdn, ip or unix must be set")
        return self


class BackendTLSSettings(Model):
    ca_certificate_refs: list[LocalObjectReference] = Field(default_factory=list)
    well_known_ca_certificates: Literal["System"] | None = Field(
        default=None, alias="wellKnownCACertificates"
    )
    insecure_skip_verify: bool = False
    sni: str | None = None
    auto_sni_from_endpoint_hostname: bool | None = Field(default=None, alias="autoSNIFromEndpointHostname")
    client_certificate_ref: SecretObjectReference | None = None
    min_version: str | None = None
    max_version: str | None = None
    ciphers: list[str] = Field(default_factory=list)
    ecdh_curves: list[str] = Field(default_factory=list)
    signature_algorithms: list[str] = Field(default_factory=list)
    alpn_protocols: list[str] = Field(default_factory=list)
    fingerprints: list[str] = Field(default_factory=list)


class BackendSpec(Model):
    type: Literal["Endpoints", "DynamicResolver"] = "Endpoints"
    endpoints: list[BackendEndpoint] = Field(default_factory=list)
    app_protocols: list[str] = Field(default_factory=list)
    fallback: bool | None = None
    tls: BackendTLSSettings | None = None

    @model_validator(mode="after")
    def _fqdn_not_mixed(self) -> BackendSpec:
        # Upstream CEL: one DNS cluster cannot also hold static addresses.
        kinds = {endpoint.fqdn is not None for endpoint in self.endpoints}
        if len(kinds) > 1:
            raise PydanticCustomError(
                "endpoint_mix", "fqdn endpoints cannot be mixed with ip or unix endpoints"
            )
        return self


class Backend(Resource):
    api_group = ENVOY_GATEWAY_GROUP
    api_kind = "Backend"
    api_versions = ("v1alpha1",)

    spec: BackendSpec


# --- BackendTrafficPolicy -----------------------------------------------------------------------------


class RetryOn(Model):
    triggers: list[RetryTrigger] = Field(default_factory=list)
    http_status_codes: list[HTTPStatus] = Field(default_factory=list)


class BackOffPolicy(Model):
    base_interval: PositiveDuration | None = None
    max_interval: PositiveDuration | None = None
    """10 times ``base_interval`` when not set, as upstream documents (and Envoy does)."""

    @model_validator(mode="after")
    def _max_not_below_base(self) -> BackOffPolicy:
        if self.base_interval and self.max_interval and self.max_interval < self.base_interval:
            raise PydanticCustomError("back_off_order", "maxInterval must not be shorter than baseInterval")
        return self


class PerRetryPolicy(Model):
    timeout: Duration | None = None
    back_off: BackOffPolicy | None = None


class Retry(Model):
    num_retries: int = Field(default=2, ge=0, le=INT32_MAX)
    num_attempts_per_priority: int | None = Field(default=None, ge=0, le=INT32_MAX)
    retry_on: RetryOn | None = None
    per_retry: PerRetryPolicy | None = None


class PassiveHealthCheck(Model):
    split_external_local_origin_errors: bool = False
    interval: PositiveDuration = timedelta(seconds=3)
    consecutive_local_origin_failures: int = Field(default=5, ge=0, le=UINT32_MAX)
    consecutive_gateway_errors: int | None = Field(default=None, ge=0, le=UINT32_MAX)
    consecutive_5xx_errors: int = Field(default=5, ge=0, le=UINT32_MAX, alias="consecutive5XxErrors")
    base_ejection_time: PositiveDuration = timedelta(seconds=30)
    max_ejection_percent: Percent = 10
    failure_percentage_threshold: Percent | None = None
    always_eject_one_endpoint: bool = False


class ActiveHealthCheckPayload(Model):
    type: Literal["Text", "Binary"]
    text: str | None = None
    binary: str | None = None


class HTTPActiveHealthChecker(Model):
    hostname: str | None = None
    path: str = Field(min_length=1)
    method: str | None = None
    expected_statuses: list[HTTPStatus] = Field(default_factory=list)
    retriable_statuses: list[HTTPStatus] = Field(default_factory=list)
    expected_response: ActiveHealthCheckPayload | None = None
    request_body: ActiveHealthCheckPayload | None = None


class TCPActiveHealthChecker(Model):
    send: ActiveHealthCheckPayload | None = None
    receive: ActiveHealthCheckPayload | None = None


class GRPCActiveHealthChecker(Model):
    service: str | None = None


class ActiveHealthCheck(Model):
    timeout: Duration = timedelta(seconds=1)
    interval: Duration = timedelta(seconds=3)
    initial_jitter: Duration | None = None
    unhealthy_threshold: int = Field(default=3, ge=1)
    healthy_threshold: int = Field(default=1, ge=1)
    type: Literal["HTTP", "TCP", "GRPC"]
    http: HTTPActiveHealthChecker | None = None
    tcp: TCPActiveHealthChecker | None = None
    grpc: GRPCActiveHealthChecker | None = None
    overrides: Unimplemented = None
    health_check_log: Unimplemented = None


class HealthCheck(Model):
    active: ActiveHealthCheck | None = None
    passive: PassiveHealthCheck | None = None
    panic_threshold: Percent | None = None


class PerEndpointCircuitBreakers(Model):
    max_connections: int = Field(default=1024, ge=0, le=4294967295)


class CircuitBreaker(Model):
    """Envoy Gateway's circuit breaker; every limit defaults to 1024, as there."""

    max_connections: int = Field(default=1024, ge=0, le=4294967295)
    max_pending_requests: int = Field(default=1024, ge=0, le=4294967295)
    max_parallel_requests: int = Field(default=1024, ge=0, le=4294967295)
    max_parallel_retries: int = Field(default=1024, ge=0, le=4294967295)
    max_requests_per_connection: int | None = Field(default=None, ge=0, le=4294967295)
    per_endpoint: PerEndpointCircuitBreakers | None = None


class TCPTimeout(Model):
    connect_timeout: Annotated[Duration | None, CONNECTION_LEVEL] = None


class HTTPTimeout(Model):
    connection_idle_timeout: Annotated[Duration | None, CONNECTION_LEVEL] = None
    max_connection_duration: Annotated[Duration | None, CONNECTION_LEVEL] = None
    request_timeout: Duration | None = None
    """The route's timeout when the rule sets no ``timeouts.request`` (the rule's wins, as in Envoy
    Gateway, where Gateway API timeouts take precedence)."""
    max_stream_duration: Annotated[Duration | None, UNIMPLEMENTED] = None
    stream_idle_timeout: Annotated[Duration | None, UNIMPLEMENTED] = None


class Timeout(Model):
    tcp: TCPTimeout | None = None
    http: HTTPTimeout | None = None


class BackendTrafficPolicySpec(Model):
    target_ref: LocalPolicyTargetReferenceWithSectionName | None = None
    target_refs: list[LocalPolicyTargetReferenceWithSectionName] = Field(default_factory=list)
    target_selectors: UnimplementedList = None
    retry: Retry | None = None
    health_check: HealthCheck | None = None
    timeout: Timeout | None = None
    load_balancer: Unimplemented = None
    proxy_protocol: Unimplemented = None
    tcp_keepalive: Unimplemented = None
    circuit_breaker: CircuitBreaker | None = None
    connection: Unimplemented = None
    dns: Unimplemented = None
    http2: Unimplemented = None
    initial_stream_window_size: Annotated[Any, UNIMPLEMENTED] = None
    merge_type: Annotated[str | None, UNIMPLEMENTED] = None
    rate_limit: Unimplemented = None
    bandwidth_limit: Unimplemented = None
    fault_injection: Unimplemented = None
    admission_control: Unimplemented = None
    use_client_protocol: Annotated[bool | None, UNIMPLEMENTED] = None
    compression: UnimplementedList = None
    compressor: UnimplementedList = None
    response_override: UnimplementedList = None
    http_upgrade: UnimplementedList = None
    request_buffer: Unimplemented = None
    telemetry: Unimplemented = None
    routing_type: Annotated[str | None, UNIMPLEMENTED] = None

    @property
    def all_target_refs(self) -> list[LocalPolicyTargetReferenceWithSectionName]:
        """``targetRef`` (the older single form) and ``targetRefs`` together."""
        single = [self.target_ref] if self.target_ref is not None else []
        return [*single, *self.target_refs]


class BackendTrafficPolicy(Resource):
    api_group = ENVOY_GATEWAY_GROUP
    api_kind = "BackendTrafficPolicy"
    api_versions = ("v1alpha1",)

    spec: BackendTrafficPolicySpec
