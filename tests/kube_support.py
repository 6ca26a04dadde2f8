"""Fixtures for tests against a real Kubernetes API server (etcd and kube-apiserver from pinned Go modules).

One API server per test session (starting one takes seconds), with every CRD installed (``devtools.crds``:
upstream ones from the Go module cache at pinned versions, ours from ``crds/``); each test gets a namespace
of its own, so tests do not see each other's objects. A test that restarts the API server or compacts etcd
asks for ``private_kube`` instead and gets a server nobody else uses.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from controlplane.devtools.crds import start_kube_with_crds
from controlplane.devtools.gotools import GoTools, ensure_test_tools
from controlplane.devtools.kube import LocalKube

REPO = Path(__file__).resolve().parents[1]
GATEWAY_CLASS = REPO / "examples" / "gatewayclass.yaml"
_DEFAULT_NAMESPACE = re.compile(r"^(\s*namespace:\s*)default\s*$", re.MULTILINE)

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def kube_tools() -> GoTools:
    """The built binaries (``make test`` builds them before pytest starts; this only finds them)."""
    return ensure_test_tools(log=True)


@pytest.fixture(scope="session")
def kube(kube_tools: GoTools) -> Iterator[LocalKube]:
    """The session's shared API server, every CRD installed. Use ``namespace`` to keep to your own objects."""
    server = start_kube_with_crds(kube_tools)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_kube(kube_tools: GoTools) -> Iterator[LocalKube]:
    """An API server of this test's own, for tests that restart it or compact its etcd."""
    server = start_kube_with_crds(kube_tools)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def fresh_namespace(kube: LocalKube) -> Iterator[str]:
    """A namespace nobody else uses, deleted (without waiting) afterwards."""
    name = f"t{next(_namespaces)}"
    kube.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(kube: LocalKube) -> Iterator[str]:
    """A fresh namespace on the shared API server for this test."""
    with fresh_namespace(kube) as name:
        yield name


def in_namespace(manifest: str, namespace: str) -> str:
    """The examples' ``namespace: default`` moved to ``namespace`` (each test keeps to its own)."""
    return _DEFAULT_NAMESPACE.sub(rf"\g<1>{namespace}", manifest)


def apply_in_namespace(kube: LocalKube, path: Path, namespace: str) -> None:
    """``kubectl apply`` of a file or folder of example manifests, moved into ``namespace``."""
    files = sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    kube.apply("\n---\n".join(in_namespace(file.read_text(), namespace) for file in files))


def serve_arguments(kube: LocalKube, namespace: str) -> list[str]:
    """``controlplane serve`` on the cluster, watching (and electing its leader in) one namespace."""
    return [
        "--kubernetes",
        f"--kubeconfig={kube.kubeconfig}",
        f"--namespace={namespace}",
        f"--leader-election-namespace={namespace}",
    ]


_UNREACHABLE_CLUSTER = """\
apiVersion: v1
kind: Config
clusters: [{{name: gone, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: someone, user: {{token: not-a-secret}}}}]
contexts: [{{name: gone, context: {{cluster: gone, user: someone}}}}]
current-context: gone
"""


def unreachable_kubeconfig(path: Path, *, port: int) -> Path:
    """Writes a kubeconfig naming an API server on ``port`` where nothing listens (give it a reserved
    port: every connection is refused)."""
    path.write_text(_UNREACHABLE_CLUSTER.format(port=port), encoding="utf-8")
    return path


def conditions(kube: LocalKube, resource: str, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    """An object's ``status.conditions`` as written in the cluster, by type."""
    found = kube.get_json(resource, name, "-n", namespace)
    return {condition["type"]: condition for condition in found.get("status", {}).get("conditions", [])}


def served_conditions(
    status: dict[str, Any], kind: str, namespace: str, name: str
) -> dict[str, dict[str, Any]]:
    """An object's conditions on a control plane's ``/status`` page, by type (empty: not there)."""
    for entry in status["objects"]:
        if (entry["kind"], entry["namespace"], entry["name"]) == (kind, namespace, name):
            return {condition["type"]: condition for condition in entry["conditions"]}
    return {}
