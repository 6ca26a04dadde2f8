"""The Helm chart's controller as the real ``helm`` renders it: lint, what
``controller.enableInferenceExtension`` changes (and nothing else), RBAC equal to what the Kubernetes source
watches, the CRDs of ``crds/`` shipped as they are, the Deployment's hardening and probes, and the values
schema refusing bad values. The chart's Envoy is ``test_helm_chart_envoy.py``; installing the chart into a
real API server is ``test_helm_install.py``.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane import defaults
from controlplane.devtools.helm import CHART, Helm
from tests.helm_support import (
    FULLNAME,
    RELEASE_NAMESPACE,
    expected_grants,
    granted,
    one,
    our_crd_files,
    single_container,
)

# A fixture, found by pytest by name in this module.
from tests.helm_support import helm as helm

INFERENCE_EXTENSION = ("--set", "controller.enableInferenceExtension=true")
Key = tuple[str, str]


def _by_kind_and_name(objects: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}


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

    default_args = single_container(default[("Deployment", FULLNAME)])["args"]
    enabled_args = single_container(enabled[("Deployment", FULLNAME)]).pop("args")
    assert "--enable-inference-extension" not in default_args
    assert enabled_args == [*default_args, "--enable-inference-extension"]
    single_container(default[("Deployment", FULLNAME)]).pop("args")
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
    container = single_container(deployment)
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
    args = single_container(deployment)["args"]
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
    container = single_container(deployment)
    assert container["env"] == [
        {"name": "AWS_ENDPOINT_URL_STS", "value": "https://sts.example.com"},
        {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/etc/gcp/key.json"},
    ]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["gcp"] == {"name": "gcp", "secret": {"secretName": "gcp-adc"}}
    assert "tmp" in volumes
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["gcp"] == {"name": "gcp", "mountPath": "/etc/gcp", "readOnly": True}
    assert "env" not in single_container(one(helm.template(), "Deployment", FULLNAME))


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


def test_the_charts_log_levels_are_ones_serve_takes_and_its_default_is_serves() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    levels = schema["properties"]["controller"]["properties"]["logLevel"]["enum"]
    assert set(levels) <= set(defaults.LOG_LEVELS), levels
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["controller"]["logLevel"] == defaults.LOG_LEVEL
