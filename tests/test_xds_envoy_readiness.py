"""Ready means serving: when a starting Envoy first reports LIVE, every listener of the snapshot is active
and answers (Envoy goes LIVE on its first listener reply, so that reply must not lack one on its way)."""

from __future__ import annotations

import pytest

from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.netutil import PortReservations
from controlplane.pipeline import TranslateOptions, translate
from controlplane.sources.file_reading import load_paths
from controlplane.xds.resource import LISTENER
from tests.conftest import BackendFactory, EnvoyFactory
from tests.e2e import EXAMPLES
from tests.xds_support import ServerThread, http_get, http_route_snapshot

pytestmark = pytest.mark.envoy

STARTS = 3
"""Envoy starts per mode: before the fix most starts went LIVE without the listener."""


def _active_listeners(envoy: EnvoyProcess) -> set[str]:
    dump = envoy.config_dump(resource="dynamic_listeners")
    return {entry["name"] for entry in dump.get("configs", []) if "active_state" in entry}


def test_envoy_is_live_only_with_every_listener_active(
    xds: ServerThread, envoys: EnvoyFactory, backends: BackendFactory, ports: PortReservations
) -> None:
    backend = backends("ready")
    port = ports.reserve()
    snapshot = http_route_snapshot(generation="ready", port=port, backend_port=backend.port)
    xds.cache.set_snapshot(snapshot)
    for start in range(STARTS):
        envoy = envoys(node_id=f"ready-{start}")
        # Poll /ready as a Kubernetes probe would, only faster, and look the moment it says LIVE.
        envoy.wait_ready(poll_seconds=0.005)
        assert _active_listeners(envoy) == {"listener-ready"}, f"start {start}"
        assert http_get(port) == (200, "ready")
        envoy.stop()


def test_live_with_the_examples_means_every_gateway_listener_is_active(
    xds: ServerThread, envoys: EnvoyFactory
) -> None:
    # The translator's shape: gateway listeners reach backend hops (internal listeners, some with an
    # SDS credential) through endpoints, so a first reply must carry hops and gateways together.
    loaded = load_paths([EXAMPLES])
    options = TranslateOptions(listen_address="127.0.0.1", inference_extension=True)
    snapshot = translate(loaded.resource_set(), options=options).snapshot()
    xds.cache.set_snapshot(snapshot)
    envoy = envoys(node_id="examples")
    envoy.wait_ready(poll_seconds=0.005)
    assert _active_listeners(envoy) == set(snapshot.get(LISTENER))
