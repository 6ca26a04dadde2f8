"""`controlplane bootstrap` prints a bootstrap that a real Envoy 1.40 accepts: SotW, Delta, xDS over mTLS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.bootstrap import DEFAULT_CLUSTER, render_bootstrap, template_dir
from controlplane.cli import main
from controlplane.defaults import ENVOY_ADMIN_PORT
from controlplane.devtools.certs import CertificateAuthority
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
    _validate(out, tmp_path)


def _validate(config_yaml: str, tmp_path: Path) -> None:
    config_path = tmp_path / "bootstrap.yaml"
    config_path.write_text(config_yaml, encoding="utf-8")
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


@pytest.mark.envoy
def test_tls_bootstrap_verifies_the_server_and_presents_the_client_certificate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    authority = CertificateAuthority()
    client = authority.issue(common_name="envoy", client=True)
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client-key.pem"
    ca.write_bytes(authority.certificate_pem())
    cert.write_bytes(client.certificate_pem)
    key.write_bytes(client.key_pem)
    tls = (f"--xds-ca={ca}", f"--xds-client-cert={cert}", f"--xds-client-key={key}")
    code, out, _ = _run_cli(capsys, "--xds-address", "controlplane.gateway.svc:18000", *tls)
    assert code == 0
    (xds_cluster,) = yaml.safe_load(out)["static_resources"]["clusters"]
    context = xds_cluster["transport_socket"]["typed_config"]
    # A name is asked for and verified; the CA and the client pair are files Envoy reads.
    assert context["sni"] == "controlplane.gateway.svc"
    common = context["common_tls_context"]
    assert common["validation_context"]["trusted_ca"] == {"filename": str(ca)}
    assert common["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "controlplane.gateway.svc"}}
    ]
    assert common["tls_certificates"] == [
        {"certificate_chain": {"filename": str(cert)}, "private_key": {"filename": str(key)}}
    ]
    _validate(out, tmp_path)


def test_plaintext_bootstrap_has_no_transport_socket_and_tls_flags_need_a_ca(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = _run_cli(capsys, "--xds-address", "127.0.0.1:18000")
    (xds_cluster,) = yaml.safe_load(out)["static_resources"]["clusters"]
    assert "transport_socket" not in xds_cluster
    code, out, err = _run_cli(capsys, "--xds-address", "127.0.0.1:18000", "--xds-client-cert=/c.pem")
    assert (code, out) == (2, "")
    assert "--xds-ca" in err


def test_bootstrap_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run_cli(capsys, "--xds-address", "127.0.0.1:18000")
    config = yaml.safe_load(out)
    assert config["node"]["cluster"] == DEFAULT_CLUSTER
    assert config["node"]["id"]
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": ENVOY_ADMIN_PORT,
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
    # No flush timer stalling Envoy's main thread every 5 s: stats are flushed when the admin page is read.
    assert config["stats_flush_on_admin"] is True
    assert "stats_flush_interval" not in config
    # Clusters without traffic (thousands with a hop per hosted backend) hold no traffic stats until used.
    assert config["deferred_stat_options"] == {"enable_deferred_creation_stats": True}


@pytest.mark.envoy
def test_stats_flush_interval_puts_the_timer_back(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run_cli(capsys, "--xds-address", "127.0.0.1:18000", "--stats-flush-interval", "2.5")
    assert code == 0
    config = yaml.safe_load(out)
    # Envoy refuses both settings at once.
    assert config["stats_flush_interval"] == "2.5s"
    assert "stats_flush_on_admin" not in config
    _validate(out, tmp_path)


@pytest.mark.parametrize("seconds", ["0", "300", "-1", "nan"])
def test_stats_flush_interval_out_of_envoys_range_is_refused(
    capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    code, out, err = _run_cli(capsys, "--xds-address", "127.0.0.1:18000", f"--stats-flush-interval={seconds}")
    assert (code, out) == (2, "")
    assert "stats flush interval must be at least 0.001 s and under 300 s" in err


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
