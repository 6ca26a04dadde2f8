"""`controlplane bootstrap` prints a bootstrap that a real Envoy 1.40 accepts, in SotW and Delta modes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.bootstrap import DEFAULT_ADMIN_PORT, DEFAULT_CLUSTER, render_bootstrap, template_dir
from controlplane.cli import main
from controlplane.devtools.envoy_process import envoy_binary


def _run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["bootstrap", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _ads(config: dict[str, Any]) -> dict[str, Any]:
    ads: dict[str, Any] = config["dynamic_resources"]["ads_config"]
    return ads


@pytest.mark.envoy
@pytest.mark.parametrize(("flags", "api_type"), [((), "GRPC"), (("--delta",), "DELTA_GRPC")])
def test_bootstrap_passes_envoy_validate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: tuple[str, ...], api_type: str
) -> None:
    code, out, _ = _run_cli(capsys, "--xds-address", "127.0.0.1:18000", *flags)
    assert code == 0
    assert _ads(yaml.safe_load(out))["api_type"] == api_type
    config_path = tmp_path / "bootstrap.yaml"
    config_path.write_text(out, encoding="utf-8")
    result = subprocess.run(
        [
            str(envoy_binary()),
            "--mode",
            "validate",
            "--config-path",
            str(config_path),
            "--disable-hot-restart",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_bootstrap_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run_cli(capsys, "--xds-address", "127.0.0.1:18000")
    config = yaml.safe_load(out)
    assert config["node"]["cluster"] == DEFAULT_CLUSTER
    assert config["node"]["id"]
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": DEFAULT_ADMIN_PORT,
    }
    ads = _ads(config)
    assert ads["transport_api_version"] == "V3"
    assert ads["set_node_on_first_message_only"] is True
    assert ads["grpc_services"] == [
        {"envoy_grpc": {"cluster_name": "xds_cluster", "max_receive_message_length": 134217728}}
    ]
    assert config["dynamic_resources"]["cds_config"] == {"ads": {}, "resource_api_version": "V3"}
    assert config["dynamic_resources"]["lds_config"] == {"ads": {}, "resource_api_version": "V3"}
    assert [extension["name"] for extension in config["bootstrap_extensions"]] == [
        "envoy.bootstrap.internal_listener"
    ]
    (xds_cluster,) = config["static_resources"]["clusters"]
    assert xds_cluster["name"] == "xds_cluster"
    assert xds_cluster["type"] == "STATIC"
    options = xds_cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "connection_keepalive" in options["explicit_http_config"]["http2_protocol_options"]
    endpoint = xds_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18000}


def test_bootstrap_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run_cli(
        capsys,
        "--xds-address",
        "xds.example.internal:9000",
        "--node-id",
        'gw-1:"quoted"',
        "--cluster",
        "edge",
        "--admin-port",
        "19901",
    )
    assert code == 0
    config = yaml.safe_load(out)
    assert config["node"] == {"id": 'gw-1:"quoted"', "cluster": "edge"}
    assert config["admin"]["address"]["socket_address"]["port_value"] == 19901
    (xds_cluster,) = config["static_resources"]["clusters"]
    assert xds_cluster["type"] == "STRICT_DNS"


@pytest.mark.parametrize("address", ["no-port", "host:", ":80", "host:99999"])
def test_bootstrap_rejects_bad_address(capsys: pytest.CaptureFixture[str], address: str) -> None:
    code, out, err = _run_cli(capsys, "--xds-address", address)
    assert code == 2
    assert out == ""
    assert "HOST:PORT" in err or "out of range" in err


@pytest.mark.envoy
def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controlplane", "bootstrap", "--xds-address", "127.0.0.1:1", "--delta"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert _ads(yaml.safe_load(result.stdout))["api_type"] == "DELTA_GRPC"


def test_template_is_the_repository_file() -> None:
    assert (template_dir() / "bootstrap.yaml.tmpl").is_file()
    assert render_bootstrap(xds_address="[::1]:18000", admin_port=0).count("::1") == 1
