"""The CRDs a local API server needs before the control plane can watch it, and installing them.

Ours come from ``crds/`` (generated from the models); the kinds we read but do not own come from the
projects that publish them, read from the Go module cache at the versions pinned in ``gotools`` (never
copied into this repository). Tests and benchmarks install the same set, so both see the API users have.
"""

from __future__ import annotations

from pathlib import Path

from controlplane.devtools.gotools import REPO, GoTools
from controlplane.devtools.kube import LocalKube

OUR_CRDS = REPO / "crds"

UPSTREAM_CRDS = {
    "sigs.k8s.io/gateway-api": [
        f"config/crd/experimental/gateway.networking.k8s.io_{plural}.yaml"
        for plural in ("gatewayclasses", "gateways", "httproutes", "referencegrants", "backendtlspolicies")
    ],
    "github.com/envoyproxy/gateway": [
        f"charts/gateway-helm/crds/generated/gateway.envoyproxy.io_{plural}.yaml"
        for plural in ("backends", "backendtrafficpolicies")
    ],
    "sigs.k8s.io/gateway-api-inference-extension": [
        "config/crd/bases/inference.networking.k8s.io_inferencepools.yaml",
        "config/crd/bases/inference.networking.x-k8s.io_inferencepools.yaml",
        # The endpoint picker watches these too (devtools.epp), and does not start without the kind.
        "config/crd/bases/inference.networking.x-k8s.io_inferenceobjectives.yaml",
    ],
}
"""The CRDs of the kinds we read but do not own, as each project publishes them."""


def upstream_crd_files(tools: GoTools) -> list[Path]:
    return [tools.module(module) / path for module, paths in UPSTREAM_CRDS.items() for path in paths]


def install_crds(kube: LocalKube, tools: GoTools, *, ours: bool = True) -> None:
    """Applies the upstream CRDs and ours (unless ``ours`` is False: the Helm chart installs those), then
    waits until the API server serves every one of them."""
    for path in [*upstream_crd_files(tools), *(sorted(OUR_CRDS.glob("*.yaml")) if ours else [])]:
        # Server-side apply: some upstream CRDs are too large for client-side apply's annotation.
        kube.kubectl("apply", "--server-side", "-f", str(path))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def start_kube_with_crds(tools: GoTools) -> LocalKube:
    """A started ``LocalKube`` with every CRD installed (stopped again if installing fails)."""
    kube = LocalKube(tools=tools)
    try:
        kube.start()
        install_crds(kube, tools)
    except BaseException:
        kube.stop()
        raise
    return kube
