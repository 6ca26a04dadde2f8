"""The Helm chart's Envoy as the real ``helm`` renders it: a bootstrap equal to ``controlplane bootstrap``'s
(stats flush interval included) that a real Envoy validates, xDS TLS between the controller and Envoy, and no
Envoy objects unless asked for. The chart's controller is ``test_helm_chart.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.certs import generate_dev_certs
from controlplane.devtools.envoy_process import envoy_binary
from controlplane.devtools.helm import CHART, Helm
from tests.helm_support import FULLNAME, RELEASE_NAMESPACE, one, single_container

# A fixture, found by pytest by name in this module.
from tests.helm_support import helm as helm

_ENVOY_XDS_TLS_DIR = "/etc/envoy-xds-tls"
_TLS_VALUES = {
    None: "",
    "tls": ",controller.xdsTLS.secretName=cp-tls,envoy.xdsTLS.secretName=envoy-tls",
    "mtls": ",controller.xdsTLS.secretName=cp-tls,controller.xdsTLS.requireClientCertificate=true"
    ",envoy.xdsTLS.secretName=envoy-tls",
}
_TLS_BOOTSTRAP_FLAGS = {
    None: (),
    "tls": (f"--xds-ca={_ENVOY_XDS_TLS_DIR}/ca.crt",),
    "mtls": (
        f"--xds-ca={_ENVOY_XDS_TLS_DIR}/ca.crt",
        f"--xds-client-cert={_ENVOY_XDS_TLS_DIR}/tls.crt",
        f"--xds-client-key={_ENVOY_XDS_TLS_DIR}/tls.key",
    ),
}


@pytest.mark.parametrize(
    ("delta", "tls", "stats_flush_interval"),
    [(False, None, None), (True, None, "5"), (False, "tls", None), (True, "mtls", "0.25")],
)
def test_the_envoy_bootstrap_is_what_controlplane_bootstrap_prints_and_envoy_validates_it(
    helm: Helm, tmp_path: Path, delta: bool, tls: str | None, stats_flush_interval: str | None
) -> None:
    # `--set` hands the chart 5 as an integer and 0.25 as a string: both are read as seconds.
    flush_value = f",envoy.statsFlushInterval={stats_flush_interval}" if stats_flush_interval else ""
    objects = helm.template(
        "--set", f"envoy.enabled=true,envoy.delta={str(delta).lower()}{_TLS_VALUES[tls]}{flush_value}"
    )
    envoy_name = f"{FULLNAME}-envoy"
    rendered = one(objects, "ConfigMap", f"{envoy_name}-bootstrap")["data"]["bootstrap.yaml"]
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane",
            "bootstrap",
            f"--xds-address={FULLNAME}.{RELEASE_NAMESPACE}.svc:18000",
            f"--node-id={envoy_name}",
            *(["--delta"] if delta else []),
            *_TLS_BOOTSTRAP_FLAGS[tls],
            *([f"--stats-flush-interval={stats_flush_interval}"] if stats_flush_interval else []),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert rendered == printed

    config = tmp_path / "bootstrap.yaml"
    # Envoy reads the certificate files while validating: point it at real ones in place of the Pod's.
    certs = generate_dev_certs(tmp_path / "certs", dns_names=[f"{FULLNAME}.{RELEASE_NAMESPACE}.svc"])
    tls_dir = tmp_path / "envoy-xds-tls"
    tls_dir.mkdir()
    for name, source in (
        ("ca.crt", certs.ca_file),
        ("tls.crt", certs.cert_file),
        ("tls.key", certs.key_file),
    ):
        (tls_dir / name).write_bytes(source.read_bytes())
    config.write_text(rendered.replace(_ENVOY_XDS_TLS_DIR, str(tls_dir)))
    validated = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "--config-path", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr

    envoy = single_container(one(objects, "Deployment", envoy_name))
    assert "--config-path=/etc/envoy/bootstrap.yaml" in envoy["args"]
    # The control plane keeps a replaced listener's resources as long as this Envoy drains it.
    controller_args = single_container(one(objects, "Deployment", FULLNAME))["args"]
    assert "--drain-time-s=600" in envoy["args"]
    assert "--envoy-drain-seconds=600" in controller_args
    service = one(objects, "Service", envoy_name)
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, "http")]


@pytest.mark.parametrize("seconds", [12.5, 0.001, 299.999, 60])
def test_a_stats_flush_interval_from_a_values_file_is_written_as_controlplane_bootstrap_writes_it(
    helm: Helm, tmp_path: Path, seconds: float
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"envoy": {"enabled": True, "statsFlushInterval": seconds}}))
    rendered = one(helm.template("-f", str(values)), "ConfigMap", f"{FULLNAME}-envoy-bootstrap")["data"]
    config = yaml.safe_load(rendered["bootstrap.yaml"])
    printed = yaml.safe_load(render_bootstrap(xds_address="cp:18000", stats_flush_interval=seconds))
    assert config["stats_flush_interval"] == printed["stats_flush_interval"]
    # Envoy refuses a bootstrap holding both.
    assert "stats_flush_on_admin" not in config


def test_a_stats_flush_interval_string_out_of_envoys_range_fails_naming_the_value(helm: Helm) -> None:
    # A number out of range is the schema's (above); a string such as --set-string's is checked by the chart.
    result = helm.run(
        "template",
        "rel",
        str(CHART),
        "--set",
        "envoy.enabled=true",
        "--set-string",
        "envoy.statsFlushInterval=300.5",
        check=False,
    )
    assert result.returncode != 0
    assert "envoy.statsFlushInterval: 300.5 is out of Envoy's range" in result.stderr, result.stderr


def test_xds_tls_mounts_the_secrets_and_passes_the_server_files(helm: Helm) -> None:
    objects = helm.template("--set", "envoy.enabled=true" + _TLS_VALUES["mtls"])
    controller = one(objects, "Deployment", FULLNAME)
    assert [
        arg for arg in single_container(controller)["args"] if arg.startswith(("--xds-tls", "--xds-client"))
    ] == [
        "--xds-tls-cert=/etc/controlplane/xds-tls/tls.crt",
        "--xds-tls-key=/etc/controlplane/xds-tls/tls.key",
        "--xds-client-ca=/etc/controlplane/xds-tls/ca.crt",
    ]
    for deployment, secret, mount in (
        (controller, "cp-tls", "/etc/controlplane/xds-tls"),
        (one(objects, "Deployment", f"{FULLNAME}-envoy"), "envoy-tls", _ENVOY_XDS_TLS_DIR),
    ):
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["xds-tls"]["secret"] == {"secretName": secret}
        mounts = {m["name"]: m for m in single_container(deployment)["volumeMounts"]}
        assert mounts["xds-tls"] == {"name": "xds-tls", "mountPath": mount, "readOnly": True}
    # Server-side TLS alone: no client CA flag.
    plain_tls = one(helm.template("--set", "envoy.enabled=true" + _TLS_VALUES["tls"]), "Deployment", FULLNAME)
    assert not [arg for arg in single_container(plain_tls)["args"] if arg.startswith("--xds-client")]


def test_xds_tls_for_the_controller_needs_the_envoy_trust_secret(helm: Helm) -> None:
    result = helm.run(
        "template",
        "rel",
        str(CHART),
        "--set",
        "envoy.enabled=true,controller.xdsTLS.secretName=cp-tls",
        check=False,
    )
    assert result.returncode != 0
    assert "envoy.xdsTLS.secretName: required when controller.xdsTLS.secretName is set" in result.stderr


def test_without_envoy_enabled_no_envoy_objects(helm: Helm) -> None:
    assert not [obj for obj in helm.template() if "envoy" in obj["metadata"]["name"]]
