"""SDS secrets: injected credentials and CA bundles for upstream TLS validation."""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from controlplane import ir


def credential_secret(secret: ir.CredentialSecret) -> Any:
    return secret_pb2.Secret(
        name=secret.name,
        generic_secret=secret_pb2.GenericSecret(
            secret=base_pb2.DataSource(inline_string=secret.header_value)
        ),
    )


def ca_secret(bundle: ir.CaBundle) -> Any:
    return secret_pb2.Secret(
        name=bundle.name,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_string=bundle.pem)
        ),
    )
