"""``helm install`` of the chart into a real API server (RBAC on), and the control plane run as the chart's
ServiceAccount: the RBAC is enough (every kind watched, status written, the Lease held, an applied example
served through a real Envoy) and not too much (calls outside it are refused by the API server).

The API server is this module's own and starts with only the upstream CRDs, so ours are there because the
chart installed them. Two releases: the defaults, and ``controller.enableInferenceExtension=true`` confined
to one watched namespace. The control plane runs out of cluster with a token of the second release's
ServiceAccount from the TokenRequest API and exactly the arguments of the Deployment the chart installed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controlplane.devtools.crds import install_crds
from controlplane.devtools.gotools import GoTools
from controlplane.devtools.helm import CHART, Helm, documents
from controlplane.devtools.kube import LocalKube
from controlplane.devtools.stack import LocalStack
from tests.e2e import CHAT, EXAMPLES, answered_by
from tests.helm_support import one, our_crd_files
from tests.kube_support import GATEWAY_CLASS, apply_in_namespace, conditions, in_namespace
from tests.polling import wait_until

WATCHED = "apps"
"""The namespace the Inference Extension release watches (and the examples are applied to)."""
SPLIT_PORT = 10081
POOL_PORT = 10082


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    manifest: list[dict[str, Any]]
    """The objects Helm installed, as ``helm get manifest`` prints them."""
    output: str
    """What ``helm install`` printed (its NOTES included)."""

    @property
    def fullname(self) -> str:
        return f"{self.name}-ai-xds-controlplane"

    def controller_args(self) -> list[str]:
        (container,) = one(self.manifest, "Deployment", self.fullname)["spec"]["template"]["spec"][
            "containers"
        ]
        args: list[str] = container["args"]
        return args


@pytest.fixture(scope="module")
def cluster(kube_tools: GoTools) -> Iterator[LocalKube]:
    """An API server of this module's own, with the upstream CRDs only: ours are the chart's to install."""
    with LocalKube(tools=kube_tools) as kube:
        install_crds(kube, kube_tools, ours=False)
        kube.kubectl("create", "namespace", WATCHED)
        yield kube


@pytest.fixture(scope="module")
def helm(kube_tools: GoTools, cluster: LocalKube, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tools=kube_tools, home=tmp_path_factory.mktemp("helm-home"), kubeconfig=cluster.kubeconfig)


def _install(helm: Helm, name: str, namespace: str, *values: str) -> Release:
    output = helm.run(
        "install", name, str(CHART), "--namespace", namespace, "--create-namespace", *values
    ).stdout
    manifest = helm.run("get", "manifest", name, "--namespace", namespace).stdout
    return Release(name, namespace, list(documents(manifest)), output)


@pytest.fixture(scope="module")
def default_release(helm: Helm) -> Release:
    return _install(helm, "plain", "cp-plain")


@pytest.fixture(scope="module")
def inference_release(helm: Helm, default_release: Release) -> Release:
    # Installed after the default release: its CRDs are already there, which Helm must take in its stride.
    return _install(
        helm,
        "ie",
        "cp-ie",
        "--set",
        "controller.enableInferenceExtension=true",
        "--set",
        f"controller.watchNamespaces={{{WATCHED}}}",
    )


@pytest.fixture(scope="module")
def service_account_kubeconfig(
    cluster: LocalKube, inference_release: Release, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return cluster.token_kubeconfig(
        namespace=inference_release.namespace,
        service_account=inference_release.fullname,
        path=tmp_path_factory.mktemp("sa") / "kubeconfig",
    )


def _kubectl_name(obj: dict[str, Any]) -> str:
    """The name ``kubectl get -o name`` prints for an object: ``kind[.group]/name``."""
    group = obj["apiVersion"].rpartition("/")[0]
    return f"{obj['kind'].lower()}{'.' + group if group else ''}/{obj['metadata']['name']}"


def _stored_names(cluster: LocalKube, objects: list[dict[str, Any]], tmp_path: Path) -> set[str]:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    return set(cluster.kubectl("get", "-f", str(manifest), "-o", "name").stdout.split())


@pytest.mark.parametrize("release", ["default_release", "inference_release"])
def test_every_object_of_the_release_is_stored_by_the_api_server(
    cluster: LocalKube, request: pytest.FixtureRequest, release: str, tmp_path: Path
) -> None:
    installed: Release = request.getfixturevalue(release)
    kinds = Counter(obj["kind"] for obj in installed.manifest)
    assert kinds["Deployment"] == 1
    assert kinds["ClusterRole"] == 1
    assert _stored_names(cluster, installed.manifest, tmp_path) == {
        _kubectl_name(obj) for obj in installed.manifest
    }
    assert f"xDS at {installed.fullname}.{installed.namespace}.svc:18000" in installed.output, (
        installed.output
    )


def test_our_crds_come_from_the_chart_and_are_served(cluster: LocalKube, default_release: Release) -> None:
    for path in our_crd_files():
        crd = yaml.safe_load(path.read_text())
        stored = cluster.get_json("crd", crd["metadata"]["name"])
        assert [v["name"] for v in stored["spec"]["versions"]] == [v["name"] for v in crd["spec"]["versions"]]
        established = {c["type"]: c["status"] for c in stored["status"]["conditions"]}["Established"]
        assert established == "True", stored["status"]


def test_the_controller_as_the_chart_service_account_serves_an_applied_example_through_envoy(
    cluster: LocalKube, inference_release: Release, service_account_kubeconfig: Path, tmp_path: Path
) -> None:
    serve, *args = inference_release.controller_args()
    assert serve == "serve"
    assert "--enable-inference-extension" in args
    assert f"--namespace={WATCHED}" in args
    with (
        LocalStack(
            EXAMPLES,
            move_ports=True,
            workdir=tmp_path,
            kubeconfig=service_account_kubeconfig,
            serve_args=tuple(args),
        ) as stack,
        httpx.Client(timeout=10) as http,
    ):
        cluster.apply(GATEWAY_CLASS)
        apply_in_namespace(cluster, stack.config_dir, WATCHED)

        def split() -> set[str]:
            answers = {answered_by(http.post(stack.url(SPLIT_PORT), json=CHAT)) for _ in range(40)}
            assert answers == {"ollama-small", "ollama-large"}, answers
            return answers

        wait_until(split, timeout=60)
        pool = {
            answered_by(
                http.post(
                    stack.url(POOL_PORT),
                    json={**CHAT, "model": "m"},
                    headers={"x-target-inference-extension": "yes"},
                )
            )
            for _ in range(40)
        }
        assert pool == {"vllm-a", "vllm-b"}, "the InferencePool (read with the chart's RBAC) picks both"

        def accepted() -> bool:
            route = conditions(cluster, "aigatewayroutes", WATCHED, "qwen")
            assert route.get("Accepted", {}).get("status") == "True", route
            return True

        wait_until(accepted, timeout=30)
        source = stack.control_plane.status()["source"]["kubernetes"]
        assert source["notWatched"] == {}, "a watch the RBAC refuses shows here"
        assert source["leader"] is True, "the Lease in the release's namespace is held"
        lease = cluster.get_json("lease", "ai-xds-controlplane", "-n", inference_release.namespace)
        assert lease["spec"]["holderIdentity"], lease
        assert "not allowed" not in stack.control_plane_log()


def _refused(cluster: LocalKube, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = cluster.kubectl(*args, kubeconfig=kubeconfig, stdin=stdin, check=False)
    assert result.returncode != 0, f"kubectl {' '.join(args)} was allowed:\n{result.stdout}"
    assert "Forbidden" in result.stderr or "forbidden" in result.stderr, result.stderr
    return result.stderr


def test_the_service_account_is_refused_what_it_does_not_need(
    cluster: LocalKube, inference_release: Release, service_account_kubeconfig: Path
) -> None:
    kubeconfig = service_account_kubeconfig
    message = _refused(cluster, kubeconfig, "get", "secrets", "--all-namespaces")
    assert 'cannot list resource "secrets"' in message, message
    assert "at the cluster scope" in message, message
    _refused(cluster, kubeconfig, "get", "secrets", "-n", inference_release.namespace)
    _refused(cluster, kubeconfig, "get", "configmaps", "-n", "kube-system")
    _refused(cluster, kubeconfig, "create", "secret", "generic", "stolen", "-n", WATCHED)
    route = in_namespace((EXAMPLES / "001-weighted-split" / "route.yaml").read_text(), WATCHED)
    message = _refused(cluster, kubeconfig, "create", "-f", "-", stdin=route)
    assert 'cannot create resource "aigatewayroutes"' in message, message
    _refused(cluster, kubeconfig, "get", "leases", "-n", inference_release.namespace)
    # What it does need is allowed: reading a watched kind in its namespace.
    cluster.kubectl("get", "aigatewayroutes", "-n", WATCHED, kubeconfig=kubeconfig)


def test_without_the_inference_extension_pods_and_inference_pools_are_refused(
    cluster: LocalKube, default_release: Release, tmp_path: Path
) -> None:
    kubeconfig = cluster.token_kubeconfig(
        namespace=default_release.namespace,
        service_account=default_release.fullname,
        path=tmp_path / "kubeconfig",
    )
    _refused(cluster, kubeconfig, "get", "pods", "--all-namespaces")
    _refused(cluster, kubeconfig, "get", "inferencepools.inference.networking.k8s.io", "--all-namespaces")
    # Watching every namespace, it reads the watched kinds everywhere.
    cluster.kubectl("get", "aigatewayroutes", "--all-namespaces", kubeconfig=kubeconfig)
