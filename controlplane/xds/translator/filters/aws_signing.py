"""Sign each attempt to an AWS backend with Signature V4 (BackendSecurityPolicy AWSCredentials), in Envoy.

Verdicts from the 1.40 binary, which decide where the signer sits:

- ``envoy.filters.http.aws_request_signing`` signs the request as it sees it. As a downstream filter of the
  hop it would sign the path and Host before the hop's route rewrites them (the router applies
  ``regex_rewrite`` and ``host_rewrite_literal`` after every downstream filter), and AWS would refuse the
  signature. As an *upstream* filter it sees the final request; the hop's router carries it in
  ``upstream_http_filters`` (used for any cluster that names none of its own; ours never do), so it is per hop
  (per backendRef, per attempt), not per upstream cluster, which several backends with different keys share.
- ``use_unsigned_payload`` stays false: Bedrock wants the body hashed, so the filter buffers it (up to the
  connection buffer limit; more is a 413) and signs the body as finally sent, model override included.
- Only ``content-type`` is signed besides what SigV4 always signs (host, x-amz-date, x-amz-content-sha256,
  x-amz-security-token): a header an egress proxy adds or changes must not break the signature.
- Keys travel as ``inline_credential``: 1.40 reads AWS keys from inline config, a file, the environment or
  the cloud's metadata services, never from SDS; so the temporary keys minted for an OIDC exchange reach
  Envoy as a new version of the hop's listener, which Envoy swaps in while the old one drains its
  in-flight requests. Envoy's config dump redacts ``secret_access_key`` and
  ``session_token`` (they are marked sensitive), and ``controlplane translate`` redacts the whole credential
  (``controlplane.render``). A policy with no key source gets Envoy's default credential chain instead.
"""

from __future__ import annotations

from typing import Any

from envoy.extensions.common.aws.v3 import credential_provider_pb2
from envoy.extensions.filters.http.aws_request_signing.v3 import aws_request_signing_pb2
from envoy.extensions.filters.http.upstream_codec.v3 import upstream_codec_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.type.matcher.v3 import string_pb2

from controlplane import ir
from controlplane.xds.translator.messages import pack

_SIGNED_HEADERS = ("content-type",)
"""Signed besides what SigV4 always signs (see the module docstring)."""


def aws_signing_upstream_filters(signing: ir.AwsSigning) -> list[Any]:
    """The hop router's upstream filter chain: sign, then the codec that every upstream chain ends with."""
    config = aws_request_signing_pb2.AwsRequestSigning(
        service_name=signing.service,
        region=signing.region,
        use_unsigned_payload=False,
        match_included_headers=[string_pb2.StringMatcher(exact=header) for header in _SIGNED_HEADERS],
    )
    if signing.keys is not None:
        config.credential_provider.CopyFrom(
            credential_provider_pb2.AwsCredentialProvider(
                inline_credential=credential_provider_pb2.InlineCredentialProvider(
                    access_key_id=signing.keys.access_key_id,
                    secret_access_key=signing.keys.secret_access_key,
                    session_token=signing.keys.session_token,
                )
            )
        )
    return [
        hcm.HttpFilter(name="envoy.filters.http.aws_request_signing", typed_config=pack(config)),
        hcm.HttpFilter(
            name="envoy.filters.http.upstream_codec", typed_config=pack(upstream_codec_pb2.UpstreamCodec())
        ),
    ]
