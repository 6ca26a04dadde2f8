"""A proxy's refusal quotes the message it refused, credentials and all (Envoy 1.40 prints a failed
validation's message in protobuf text form): a real Envoy refusing a listener that carries a hop's AWS keys,
and what the control plane does with the refusal (its log, the event observers behind status conditions,
``proxy-status``) shows none of them. Then the redaction itself on the forms Envoy writes."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from controlplane import ir
from controlplane.cli import main
from controlplane.netutil import PortReservations
from controlplane.redaction import REDACTED, redacted_envoy_text
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import LISTENER
from controlplane.xds.translator.filters.aws_signing import aws_signing_upstream_filters
from controlplane.xds.translator.messages import pack
from tests.conftest import BackendFactory, EnvoyFactory
from tests.polling import wait_until
from tests.xds_support import ServerThread, http_route_snapshot, wait_for_backend

KEYS = ir.AwsKeys("AKIANACKMARK", "sk-nack-secret-key-5c1e8a", "sk-nack-session-token-0d93b7")
MARK = "NACKMARK"
"""In the access key ID; the secret key and session token start with ``sk-nack-``."""


def _refused_with_keys(listener: listener_pb2.Listener) -> listener_pb2.Listener:
    """``listener`` with a hop's signing filter holding ``KEYS`` and a stat prefix Envoy refuses (empty)."""
    manager = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    signing = ir.AwsSigning(region="eu-west-3", service="bedrock", keys=KEYS)
    router = router_pb2.Router(upstream_http_filters=aws_signing_upstream_filters(signing))
    manager.http_filters[-1].typed_config.CopyFrom(pack(router))
    manager.stat_prefix = ""
    bad = listener_pb2.Listener()
    bad.CopyFrom(listener)
    bad.filter_chains[0].filters[0].typed_config.CopyFrom(pack(manager))
    return bad


def _with_listener(snapshot: Snapshot, listener: listener_pb2.Listener) -> Snapshot:
    by_type = {
        type_url: [r.message for r in snapshot.get(type_url).values()] for type_url in snapshot.resources
    }
    by_type[LISTENER] = [listener]
    return Snapshot.from_resources(by_type)


def _proxy_status(xds: ServerThread, *output: str) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["proxy-status", f"--xds-address=127.0.0.1:{xds.port}", *output]) == 0
    return printed.getvalue()


def _leaked(text: str) -> list[str]:
    return [value for value in (MARK, KEYS.secret_access_key, KEYS.session_token) if value in text]


def test_a_refused_listener_carrying_aws_keys_is_reported_without_them(
    xds: ServerThread,
    envoys: EnvoyFactory,
    backends: BackendFactory,
    ports: PortReservations,
    capfd: pytest.CaptureFixture[str],
) -> None:
    port = ports.reserve()
    good = http_route_snapshot(generation="keys", port=port, backend_port=backends("keys").port)
    xds.cache.set_snapshot(good)
    envoys().wait_ready()
    wait_for_backend(port, "keys")
    refused = _refused_with_keys(good.get(LISTENER)["listener-keys"].message)
    xds.cache.set_snapshot(_with_listener(good, refused))
    wait_until(lambda: xds.events.all(kind="nack", type_url=LISTENER), message="the refusal")

    (nack,) = xds.events.all(kind="nack", type_url=LISTENER)
    assert "StatPrefix" in str(nack.error)
    assert f'secret_access_key: "{REDACTED}"' in str(nack.error), "Envoy quoted the keys; they were redacted"
    places = {
        "event": str(nack.error),
        "proxy-status": _proxy_status(xds),
        "proxy-status json": _proxy_status(xds, "-o", "json"),
        "log": "".join(capfd.readouterr()),
    }
    assert "proxy rejected configuration" in places["log"]
    (proxy,) = json.loads(places["proxy-status json"])["proxies"]
    (listeners,) = [status for status in proxy["types"] if status["type_url"] == LISTENER]
    assert "StatPrefix" in listeners["nack_message"]
    for where, text in places.items():
        assert not _leaked(text), f"a key is in the {where}"


ENVOY_TEXT = """\
Proto constraint validation failed (HttpConnectionManagerValidationError.StatPrefix: value length must be
at least 1 characters): http_filters {
  typed_config {
    [type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning] {
      credential_provider {
        inline_credential {
          access_key_id: "AKIANACKMARK"
          secret_access_key: "sk-nack-\\"quoted\\\\-5c1e8a"
          session_token: "sk-nack-session-token-0d93b7"
        }
      }
    }
  }
}
generic_secret { secret { inline_bytes: "sk-nack-\\001\\377" } }
"""


@pytest.mark.parametrize(
    "text",
    [
        ENVOY_TEXT,
        '{"secretAccessKey": "sk-nack-json", "inline_string":"sk-nack-snake"}',
        'secret { inline_string: "sk-nack-cut short\\',
        'secret { inline_string: "sk-nack-cut\nshort',
    ],
    ids=["text-form", "json", "cut-after-backslash", "cut"],
)
def test_every_quoted_credential_is_redacted_and_the_rest_kept(text: str) -> None:
    redacted = redacted_envoy_text(text)
    assert "sk-nack" not in redacted
    assert MARK not in redacted
    assert REDACTED in redacted
    assert redacted.split(":")[0] == text.split(":")[0]
