"""Inject a backend's credential (BackendSecurityPolicy APIKey) as a header, replacing the client's.

The value reaches Envoy as an SDS generic secret over ADS, so it is not part of any listener, never shown by
``translate`` and redacted by Envoy's own config dump; rotating the Secret is one SDS push, no restart.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import extension_pb2
from envoy.extensions.filters.http.credential_injector.v3 import credential_injector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.http.injected_credentials.generic.v3 import generic_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from controlplane.xds.translator.messages import ads_source, pack


def credential_filter(*, secret_name: str, header: str) -> Any:
    generic = generic_pb2.Generic(
        credential=secret_pb2.SdsSecretConfig(name=secret_name, sds_config=ads_source()), header=header
    )
    config = credential_injector_pb2.CredentialInjector(
        overwrite=True,
        credential=extension_pb2.TypedExtensionConfig(
            name="envoy.http.injected_credentials.generic", typed_config=pack(generic)
        ),
    )
    return hcm.HttpFilter(name="envoy.filters.http.credential_injector", typed_config=pack(config))
