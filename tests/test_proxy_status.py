"""``controlplane proxy-status`` against two real Envoys, one fed a cluster it refuses; and the generated
messages of our own gRPC API in step with ``protos/``."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from controlplane.cli import main
from controlplane.devtools.protos import stale_modules
from controlplane.netutil import PortReservations
from controlplane.xds.resource import CLUSTER, LISTENER
from tests.conftest import BackendFactory, EnvoyFactory
from tests.polling import wait_until
from tests.xds_support import (
    ServerThread,
    http_route_snapshot,
    refused_by_envoy,
    replace_cluster,
    wait_for_backend,
)


def _proxy_status(xds: ServerThread, *output: str) -> str:
    # Only what the command prints: the server's own log lines go to the captured stdout meanwhile.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["proxy-status", f"--xds-address=127.0.0.1:{xds.port}", *output])
    assert code == 0
    return printed.getvalue()


def _by_node(document: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        proxy["node_id"]: {status["type_url"].rsplit(".", 1)[-1]: status["sync"] for status in proxy["types"]}
        for proxy in document["proxies"]
    }


def test_proxy_status_shows_each_proxy_in_sync_or_what_it_refused(
    xds: ServerThread,
    envoys: EnvoyFactory,
    backends: BackendFactory,
    mode: str,
    ports: PortReservations,
) -> None:
    good_port, bad_port = ports.reserve(), ports.reserve()
    good = http_route_snapshot(generation="good", port=good_port, backend_port=backends("good").port)
    xds.cache.set_snapshot(good)
    # The second proxy's group first gets a working config, then one whose cluster it refuses.
    other = http_route_snapshot(generation="other", port=bad_port, backend_port=backends("other").port)
    xds.cache.set_snapshot(other, group="edge-2")
    envoys(node_id="edge-1").wait_ready()
    envoys(node_id="edge-2").wait_ready()
    wait_for_backend(good_port, "good")
    wait_for_backend(bad_port, "other")
    xds.cache.set_snapshot(
        replace_cluster(other, refused_by_envoy(other.get(CLUSTER)["front-other"].message)), group="edge-2"
    )
    wait_until(lambda: xds.events.all(kind="nack", type_url=CLUSTER), message="the refusal")

    document = json.loads(_proxy_status(xds, "-o", "json"))
    synced = {"Cluster": "SYNCED", "Listener": "SYNCED", "ClusterLoadAssignment": "SYNCED"}
    synced |= {"RouteConfiguration": "SYNCED", "Secret": "NOT_SENT"}
    assert _by_node(document) == {"edge-1": synced, "edge-2": synced | {"Cluster": "NACKED"}}
    (edge_2,) = [proxy for proxy in document["proxies"] if proxy["node_id"] == "edge-2"]
    assert (edge_2["mode"], edge_2["group"]) == (mode, "edge-2")
    (clusters,) = [status for status in edge_2["types"] if status["type_url"] == CLUSTER]
    assert "example.unknown" in clusters["nack_message"]
    # What the proxy still holds is the last version it accepted, not the refused one.
    assert clusters["acked_version"] != clusters["snapshot_version"]

    table = _proxy_status(xds).splitlines()
    assert table[0].split() == ["NODE", "CLUSTER", "MODE", "CDS", "LDS", "EDS", "RDS", "SDS", "GROUP"]
    assert table[1].split() == ["edge-1", "ai-gateway", mode, *["SYNCED"] * 4, "NOT", "SENT", "(default)"]
    assert table[2].split() == [
        "edge-2",
        "ai-gateway",
        mode,
        "NACKED",
        *["SYNCED"] * 3,
        "NOT",
        "SENT",
        "edge-2",
    ]
    assert table[3].startswith("edge-2 CDS refused ")
    assert "example.unknown" in table[3]

    # A newer config it accepts puts it back in sync.
    fixed = http_route_snapshot(generation="fixed", port=ports.reserve(), backend_port=backends("fixed").port)
    xds.cache.set_snapshot(fixed, group="edge-2")
    wait_until(lambda: xds.events.holds(fixed, LISTENER, "edge-2"), message="the fixed config on edge-2")
    wait_until(
        lambda: _by_node(json.loads(_proxy_status(xds, "-o", "json")))["edge-2"] == synced,
        message="edge-2 back in sync",
    )


def test_json_has_every_field_even_with_no_proxy_connected(xds: ServerThread) -> None:
    assert json.loads(_proxy_status(xds, "-o", "json")) == {"proxies": []}


def test_proxy_status_says_when_nothing_listens(
    capsys: pytest.CaptureFixture[str], ports: PortReservations
) -> None:
    code = main(["proxy-status", f"--xds-address=127.0.0.1:{ports.reserve()}", "--timeout=2"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("controlplane proxy-status: 127.0.0.1:")


def test_generated_messages_match_the_proto_files() -> None:
    assert stale_modules() == [], "run make protos"
