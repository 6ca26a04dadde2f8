"""The Helm chart as the real ``helm`` renders it: lint, what ``controller.enableInferenceExtension`` changes
(and nothing else), RBAC equal to what the Kubernetes source watches, the CRDs of ``crds/`` shipped as they
are, the Deployment's hardening and probes, the values schema refusing bad values, and an Envoy bootstrap
equal to ``controlplane bootstrap``'s that a real Envoy validates. Installing it into a real API server is
``test_helm_install.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.certs import generate_dev_certs
from controlplane.devtools.envoy_process import envoy_binary
from controlplane.devtools.gotools import GoTools
from controlplane.devtools.helm import CHART, Helm
from tests.helm_support import (
    FULLNAME,
    RELEASE_NAMESPACE,
    expected_grants,
    granted,
    one,
    our_crd_files,
)

INFERENCE_EXTENSION = ("--set", "controller.enableInferenceExtension=true")
Key = tuple[str, str]


@pytest.fixture(scope="module")
def helm(kube_tools: GoTools, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tools=kube_tools, home=tmp_path_factory.mktemp("helm-home"))


def _by_kind_and_name(objects: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = container
    return found


@pytest.mark.parametrize(
    "values",
    [
        (),
        (
            "--set",
            "envoy.enabled=true,controller.replicas=2,controller.watchNamespaces={a}",
            *INFERENCE_EXTENSION,
        ),
    ],
)
def test_helm_lint_passes_strict(helm: Helm, values: tuple[str, ...]) -> None:
    result = helm.run("lint", "--strict", str(CHART), *values)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


def test_inference_extension_adds_exactly_its_rbac_and_the_controller_flag(helm: Helm) -> None:
    default = _by_kind_and_name(helm.template())
    enabled = _by_kind_and_name(helm.template(*INFERENCE_EXTENSION))
    assert default.keys() == enabled.keys()
    changed = {key for key in default if default[key] != enabled[key]}
    assert changed == {("ClusterRole", FULLNAME), ("Deployment", FULLNAME)}, changed

    default_args = _container(default[("Deployment", FULLNAME)])["args"]
    enabled_args = _container(enabled[("Deployment", FULLNAME)]).pop("args")
    assert "--enable-inference-extension" not in default_args
    assert enabled_args == [*default_args, "--enable-inference-extension"]
    _container(default[("Deployment", FULLNAME)]).pop("args")
    assert default[("Deployment", FULLNAME)] == enabled[("Deployment", FULLNAME)]

    default_rules = default[("ClusterRole", FULLNAME)]["rules"]
    enabled_rules = enabled[("ClusterRole", FULLNAME)]["rules"]
    assert enabled_rules[: len(default_rules)] == default_rules
    assert enabled_rules[len(default_rules) :] == [
        {
            "apiGroups": ["inference.networking.k8s.io", "inference.networking.x-k8s.io"],
            "resources": ["inferencepools"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["inference.networking.k8s.io", "inference.networking.x-k8s.io"],
            "resources": ["inferencepools/status"],
            "verbs": ["patch", "update"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    ]


@pytest.mark.parametrize(
    ("values", "inference_extension", "watch_namespaces"),
    [
        ((), False, ()),
        (INFERENCE_EXTENSION, True, ()),
        (("--set", "controller.watchNamespaces={apps,team-b}"), False, ("apps", "team-b")),
        ((*INFERENCE_EXTENSION, "--set", "controller.watchNamespaces={apps}"), True, ("apps",)),
    ],
)
def test_rbac_grants_exactly_what_the_kubernetes_source_watches(
    helm: Helm, values: tuple[str, ...], inference_extension: bool, watch_namespaces: tuple[str, ...]
) -> None:
    objects = helm.template(*values)
    assert granted(objects) == expected_grants(
        inference_extension=inference_extension, watch_namespaces=watch_namespaces
    )


def test_the_chart_ships_exactly_the_crds_of_the_crds_folder(helm: Helm, tmp_path: Path) -> None:
    ours = our_crd_files()
    assert ours, "crds/ holds no CRD"
    helm.run("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("ai-xds-controlplane-*.tgz")
    with tarfile.open(package) as archive:
        packaged = {
            Path(member.name).name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile() and Path(member.name).parent.name == "crds"
        }
    assert packaged == {path.name: path.read_bytes() for path in ours}

    rendered = [obj for obj in helm.template("--include-crds") if obj["kind"] == "CustomResourceDefinition"]
    assert rendered == [yaml.safe_load(path.read_text()) for path in ours]


def test_the_controller_runs_hardened_with_probes_and_prometheus_annotations(helm: Helm) -> None:
    objects = helm.template()
    deployment = one(objects, "Deployment", FULLNAME)
    pod = deployment["spec"]["template"]
    container = _container(deployment)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["serviceAccountName"] == FULLNAME
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"xds": 18000, "metrics": 19000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "19000",
        "prometheus.io/path": "/metrics",
    }
    assert container["args"][:2] == ["serve", "--kubernetes"]
    assert f"--leader-election-namespace={RELEASE_NAMESPACE}" in container["args"]
    service = one(objects, "Service", FULLNAME)
    assert {(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        ("xds", 18000, "xds"),
        ("metrics", 19000, "metrics"),
    }


def test_values_move_ports_log_settings_and_watched_namespaces_into_the_arguments(helm: Helm) -> None:
    deployment = one(
        helm.template(
            "--set",
            "controller.xdsPort=18500,controller.adminPort=19500,controller.logLevel=debug",
            "--set",
            "controller.logFormat=console,controller.watchNamespaces={a,b}",
            "--set",
            "controller.gatewayClassControllerName=example.com/gateway",
        ),
        "Deployment",
        FULLNAME,
    )
    args = _container(deployment)["args"]
    for expected in (
        "--xds-port=18500",
        "--admin-port=19500",
        "--log-level=debug",
        "--log-format=console",
        "--namespace=a",
        "--namespace=b",
        "--gateway-class-controller=example.com/gateway",
    ):
        assert expected in args, args
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "19500"


def test_env_and_extra_volumes_reach_the_controller_container(helm: Helm, tmp_path: Path) -> None:
    # What minted credentials read (an STS endpoint, an Application Default Credentials file) is set here.
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "controller": {
                    "env": [
                        {"name": "AWS_ENDPOINT_URL_STS", "value": "https://sts.example.com"},
                        {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/etc/gcp/key.json"},
                    ],
                    "extraVolumes": [{"name": "gcp", "secret": {"secretName": "gcp-adc"}}],
                    "extraVolumeMounts": [{"name": "gcp", "mountPath": "/etc/gcp", "readOnly": True}],
                }
            }
        )
    )
    deployment = one(helm.template("-f", str(values)), "Deployment", FULLNAME)
    container = _container(deployment)
    assert container["env"] == [
        {"name": "AWS_ENDPOINT_URL_STS", "value": "https://sts.example.com"},
        {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/etc/gcp/key.json"},
    ]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["gcp"] == {"name": "gcp", "secret": {"secretName": "gcp-adc"}}
    assert "tmp" in volumes
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["gcp"] == {"name": "gcp", "mountPath": "/etc/gcp", "readOnly": True}
    assert "env" not in _container(one(helm.template(), "Deployment", FULLNAME))


def test_a_pod_disruption_budget_only_with_more_than_one_replica(helm: Helm) -> None:
    assert not [obj for obj in helm.template() if obj["kind"] == "PodDisruptionBudget"]
    objects = helm.template("--set", "controller.replicas=3")
    budget = one(objects, "PodDisruptionBudget", FULLNAME)
    assert budget["spec"]["minAvailable"] == 1
    selector = one(objects, "Deployment", FULLNAME)["spec"]["selector"]
    assert budget["spec"]["selector"] == selector


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("controller.xdsPort=abc", "at '/controller/xdsPort': got string, want integer"),
        ("controller.xdsPort=70000", "at '/controller/xdsPort': maximum"),
        ("controller.logLevel=verbose", "at '/controller/logLevel': value must be one of 'debug', 'info'"),
        ("controller.replicas=-1", "at '/controller/replicas': minimum: got -1, want 0"),
        ("controller.enableInferenceExtenson=true", "additional properties 'enableInferenceExtenson'"),
        ("controller.env[0].value=x", "at '/controller/env/0': missing property 'name'"),
        ("envoy.statsFlushInterval=0", "at '/envoy/statsFlushInterval': minimum: got 0, want 0.001"),
        ("envoy.statsFlushInterval=300", "at '/envoy/statsFlushInterval': exclusiveMaximum: got 300"),
        ("envoy.statsFlushInterval=5s", "at '/envoy/statsFlushInterval': '5s' does not match pattern"),
    ],
)
def test_bad_values_fail_with_the_schema_naming_the_field(helm: Helm, setting: str, message: str) -> None:
    result = helm.run("template", "rel", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


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

    envoy = _container(one(objects, "Deployment", envoy_name))
    assert "--config-path=/etc/envoy/bootstrap.yaml" in envoy["args"]
    # The control plane keeps a replaced listener's resources as long as this Envoy drains it.
    controller_args = _container(one(objects, "Deployment", FULLNAME))["args"]
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
        arg for arg in _container(controller)["args"] if arg.startswith(("--xds-tls", "--xds-client"))
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
        mounts = {m["name"]: m for m in _container(deployment)["volumeMounts"]}
        assert mounts["xds-tls"] == {"name": "xds-tls", "mountPath": mount, "readOnly": True}
    # Server-side TLS alone: no client CA flag.
    plain_tls = one(helm.template("--set", "envoy.enabled=true" + _TLS_VALUES["tls"]), "Deployment", FULLNAME)
    assert not [arg for arg in _container(plain_tls)["args"] if arg.startswith("--xds-client")]


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
