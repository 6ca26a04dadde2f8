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
from controlplane.redaction import REDACTED, TRUNCATED, redacted_envoy_text
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


REGIONS = ("eu-west-3", "eu-west-3 inline_string: ")
"""A plain region, and one that Envoy prints as ``region: "eu-west-3 inline_string: "`` right before the keys:
a string whose closing quote reads as the opening one of a credential's value to anything that does not
follow the quotes from the start."""


def _refused_with_keys(listener: listener_pb2.Listener, *, region: str) -> listener_pb2.Listener:
    """``listener`` with a hop's signing filter holding ``KEYS`` and a stat prefix Envoy refuses (empty)."""
    manager = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    signing = ir.AwsSigning(region=region, service="bedrock", keys=KEYS)
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


@pytest.mark.parametrize("region", REGIONS, ids=["region", "region-ending-in-a-field-name"])
def test_a_refused_listener_carrying_aws_keys_is_reported_without_them(
    region: str,
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
    refused = _refused_with_keys(good.get(LISTENER)["listener-keys"].message, region=region)
    xds.cache.set_snapshot(_with_listener(good, refused))
    wait_until(lambda: xds.events.all(kind="nack", type_url=LISTENER), message="the refusal")

    (nack,) = xds.events.all(kind="nack", type_url=LISTENER)
    assert "StatPrefix" in str(nack.error)
    assert f'secret_access_key: "{REDACTED}"' in str(nack.error), "Envoy quoted the keys; they were redacted"
    for kept in (
        f'region: "{region}"',
        'route_config_name: "routes-keys"',
        ": Proto constraint validation failed (",
    ):
        assert kept in str(nack.error), "the rest of the refusal is as Envoy wrote it"
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
Error adding/updating listener(s) listener-keys: goo.gle/debugstr \x20
rds {
  config_source {
    ads {
    }
    resource_api_version: V3
  }
  route_config_name: "routes-keys"
}
http_filters {
  name: "envoy.filters.http.router"
  typed_config {
    [type.googleapis.com/envoy.extensions.filters.http.router.v3.Router] {
      upstream_http_filters {
        name: "envoy.filters.http.aws_request_signing"
        typed_config {
          [type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning] {
            service_name: "bedrock"
            region: "eu-west-3 inline_string: \\"quoted\\" session_token: "
            credential_provider {
              inline_credential {
                access_key_id: "AKIANACKMARK"
                secret_access_key: "sk-nack-\\"quoted\\\\-5c1e8a"
                session_token: "sk-nack-session-token-0d93b7"
              }
            }
            match_included_headers {
              exact: "content-type"
            }
          }
        }
      }
    }
  }
}
generic_secret { secret { inline_bytes: "sk-nack-\\001\\377" } }
: Proto constraint validation failed (HttpConnectionManagerValidationError.StatPrefix: value length must \
be at least 1 characters)
"""
"""A refusal laid out as Envoy 1.40 writes it (the test above sees one: the listener's name, a marker such as
``goo.gle/debugstr`` or ``goo.gle/debugproto`` with trailing spaces, the refused message, then the validation
error), with a region that ends in field names and escapes in the values; a generic secret's value added."""
ENVOY_TEXT_REDACTED = (
    ENVOY_TEXT.replace('"AKIANACKMARK"', f'"{REDACTED}"')
    .replace('"sk-nack-\\"quoted\\\\-5c1e8a"', f'"{REDACTED}"')
    .replace('"sk-nack-session-token-0d93b7"', f'"{REDACTED}"')
    .replace('"sk-nack-\\001\\377"', f'"{REDACTED}"')
)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (ENVOY_TEXT, ENVOY_TEXT_REDACTED),
        (
            '{"secretAccessKey": "sk-nack-json", "inline_string":"sk-nack-snake", "x": "inline_string: "}',
            f'{{"secretAccessKey": "{REDACTED}", "inline_string":"{REDACTED}", "x": "inline_string: "}}',
        ),
        (
            'region: "inline_string: " access_key_id: "AKIANACKMARK" name: "kept"',
            f'region: "inline_string: " access_key_id: "{REDACTED}" name: "kept"',
        ),
        (
            'name: "kept" secret { inline_string: "sk-nack-cut short\\',
            f'name: "kept" secret {{ inline_string: "{REDACTED} {TRUNCATED}"',
        ),
        (
            'secret { inline_string: "sk-nack-cut\nshort',
            f'secret {{ inline_string: "{REDACTED} {TRUNCATED}"',
        ),
        (
            'Error adding/updating listener(s) a"b: goo.gle/debugstr\n...access_key_id: "AKIA1"\n'
            ' secret_access_key: "SEC"',
            'Error adding/updating listener(s) a"b: goo.gle/debugstr\n'
            f'...access_key_id: "{REDACTED}"\n secret_access_key: "{REDACTED}"',
        ),
        (
            'name: "a\\"b" access_key_id: "AKIA1\n secret_access_key: "SEC"\n',
            f'name: "a\\"b" access_key_id: "{REDACTED} {TRUNCATED}"',
        ),
    ],
    ids=[
        "text-form",
        "json",
        "string-ending-in-a-field-name",
        "cut-after-backslash",
        "cut",
        "stray-quote-in-a-name",
        "value-unclosed-on-its-line",
    ],
)
def test_every_quoted_credential_is_redacted_and_the_rest_kept(text: str, redacted: str) -> None:
    assert redacted_envoy_text(text) == redacted
