"""A BackendSecurityPolicy's ``credentialOverride`` -> the per-request credential a hop takes from a header.

Upstream facts (envoyproxy/ai-gateway ``api/v1beta1/backendsecurity_policy.go`` and its controller's
``resolveCredentialOverride``): ``fromRequestHeaders`` names the header a trusted filter put the caller's
credential in (lower-cased; by default ``x-aigw-api-key``, ``x-aigw-anthropic-api-key``,
``x-aigw-azure-api-key``, ``x-aigw-azure-access-token`` or ``x-aigw-gcp-access-token`` per type); the value
goes where the configured credential would (``Authorization: Bearer``, ``api-key``, ``x-api-key``), the
header itself is stripped before the backend sees it, and without it ``fallbackToConfigured`` (default true)
uses the configured credential, else the request gets 401 and is not forwarded. Headers of the
``x-ai-eg-`` family are the gateway's own and never taken.

Not honoured, and reported with the reason:

- AWSCredentials (three headers or a metadata struct of keys): Envoy 1.40's ``aws_request_signing`` takes
  keys only from its configuration, files, the environment or the cloud's metadata services, never from the
  request, so per-request keys would need an external processor. The policy is refused rather than signing
  a caller's request with the configured keys.
- ``fromDynamicMetadata``: no filter of this gateway writes dynamic metadata for it (Envoy Gateway's
  ext_authz is not translated), and a hop is its own internal listener, which the public listener's
  metadata does not reach. With ``fallbackToConfigured`` the configured credential is what upstream would
  use every time, so it is used, with a warning; without it every request would get 401, so it is refused.
"""

from __future__ import annotations

import re
from typing import Final

from controlplane import ir
from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import BackendSecurityPolicy

DEFAULT_HEADERS: Final = {
    "APIKey": "x-aigw-api-key",
    "AnthropicAPIKey": "x-aigw-anthropic-api-key",
    "AzureAPIKey": "x-aigw-azure-api-key",
    "AzureCredentials": "x-aigw-azure-access-token",
    "GCPCredentials": "x-aigw-gcp-access-token",
}
"""Per policy type, the header ``fromRequestHeaders`` reads when it names none (upstream's defaults)."""
_RESERVED_PREFIX: Final = "x-ai-eg-"
_HEADER_NAME: Final = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
"""An HTTP header field name (RFC 9110 token), lower case."""
_PATH: Final = "spec.credentialOverride"


class OverrideRefused:
    """Marker: the policy's override cannot be honoured (reported on the policy)."""


REFUSED: Final = OverrideRefused()


def override_for(
    policy: BackendSecurityPolicy, *, target_header: str, prefix: str, report: Report
) -> ir.CredentialOverride | OverrideRefused | None:
    """How a hop applying ``policy``'s credential (sent in ``target_header`` as ``prefix`` + value) takes it
    from the request instead; None when the policy overrides nothing (or only what can never be set)."""
    override = policy.spec.credential_override
    if override is None:
        return None
    if override.from_dynamic_metadata is not None:
        source = override.from_dynamic_metadata
        path = f"{_PATH}.fromDynamicMetadata"
        why = (
            "no filter of this gateway writes dynamic metadata for a backend's hop (Envoy Gateway's "
            "ext_authz is not translated)"
        )
        if source.fallback_to_configured:
            report.warn(
                policy, path, f"{why}, so the configured credential is always used", reason="UnsupportedValue"
            )
            return None
        report.reject(
            policy,
            path,
            f"{why}; with fallbackToConfigured false every request would be refused",
            reason="UnsupportedValue",
        )
        return REFUSED
    source_headers = override.from_request_headers
    assert source_headers is not None  # the model requires exactly one source
    path = f"{_PATH}.fromRequestHeaders.header"
    header = (source_headers.header or DEFAULT_HEADERS[policy.spec.type]).lower()
    problem = None
    if not _HEADER_NAME.fullmatch(header):
        problem = f"{header!r} is not an HTTP header name"
    elif header.startswith(_RESERVED_PREFIX):
        problem = f"{header} is one of the gateway's own {_RESERVED_PREFIX}* headers"
    elif header in ("host", target_header.lower()):
        problem = f"{header} is where the request's host or credential travels; name another header"
    if problem is not None:
        report.reject(policy, path, problem)
        return REFUSED
    return ir.CredentialOverride(header=header, prefix=prefix, fallback=source_headers.fallback_to_configured)


def refuse_aws_override(policy: BackendSecurityPolicy, *, report: Report) -> OverrideRefused | None:
    """AWSCredentials with ``credentialOverride``: refused (see the module docstring)."""
    if policy.spec.credential_override is None:
        return None
    report.reject(
        policy,
        _PATH,
        "per-request AWS keys are not supported: Envoy's aws_request_signing signs only with keys from its "
        "configuration, files, environment or the cloud's metadata services, never from the request",
        reason="UnsupportedValue",
    )
    return REFUSED
