"""The Go programs the tests and benchmarks run beside the control plane, built once and reused.

Claims about Kubernetes are proven against a real API server, not a mock: a real ``etcd``,
``kube-apiserver`` and ``kubectl`` (and ``helm``, and the Inference Extension's endpoint picker ``epp``),
built from the module versions pinned in ``tools/*/go.mod`` (with their ``go.sum``) through the Go module
proxy, the way controller-runtime's envtest runs them. Each group of tools is built into a cache outside
the work tree, in a folder named by the hash of its pins, so a changed pin builds anew and an unchanged one
is reused by every later run, checkout and CI job on the machine. Upstream CRDs and examples the tests read
(Gateway API, Envoy Gateway, Envoy AI Gateway) come from the Go module cache at pinned versions too:
nothing is copied into the repository.

``python -m controlplane.devtools.gotools`` builds everything (``make test`` runs it first, so the first
run's build time is not spent inside a test's time-out); tests call :func:`ensure_test_tools`.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GO_MODULES = REPO / "tools"


@dataclass(frozen=True, slots=True)
class ToolGroup:
    """One Go module under ``tools/`` and the binaries built from it (binary name -> package path)."""

    name: str
    binaries: Mapping[str, str]


TOOL_GROUPS = (
    ToolGroup(
        "kube",
        {
            "etcd": "go.etcd.io/etcd/server/v3",
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
    ),
    ToolGroup("helm", {"helm": "helm.sh/helm/v3/cmd/helm"}),
    # The Inference Extension's endpoint picker, which InferencePool tests run against the real API server.
    ToolGroup("epp", {"epp": "sigs.k8s.io/gateway-api-inference-extension/cmd/epp"}),
)

UPSTREAM_MODULES = {
    "sigs.k8s.io/gateway-api": "v1.4.1",
    "github.com/envoyproxy/gateway": "v1.5.0",
    "github.com/envoyproxy/ai-gateway": "v1.0.0",
    "sigs.k8s.io/gateway-api-inference-extension": "v1.0.1",
}
"""Modules read as data (CRDs, examples); v1.0.0 is the newest Envoy AI Gateway the module proxy serves."""


class ToolBuildError(RuntimeError):
    """A Go build or module download failed; the message carries the command and its output."""


def cache_root() -> Path:
    """``$AIXDS_TOOLS_CACHE``, else ``$XDG_CACHE_HOME/ai-xds-controlplane/tools`` (``~/.cache`` default)."""
    configured = os.environ.get("AIXDS_TOOLS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ai-xds-controlplane" / "tools"


@dataclass(frozen=True, slots=True)
class GoTools:
    """Where the built binaries and the upstream module folders are."""

    binaries: Mapping[str, Path]
    modules: Mapping[str, Path]

    def binary(self, name: str) -> Path:
        return self.binaries[name]

    def module(self, path: str) -> Path:
        return self.modules[path]


def ensure_test_tools(*, log: bool = False) -> GoTools:
    """Builds what is missing (under a lock, so parallel runs build once) and returns where everything is."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        binaries: dict[str, Path] = {}
        for group in TOOL_GROUPS:
            binaries.update(_ensure_group(group, root, log=log))
        modules = _ensure_modules(root, log=log)
    return GoTools(binaries=binaries, modules=modules)


def _ensure_group(group: ToolGroup, root: Path, *, log: bool) -> dict[str, Path]:
    module_dir = GO_MODULES / group.name
    target = root / f"{group.name}-{_pin_hash(module_dir)}"
    built = {name: target / name for name in group.binaries}
    if (target / ".complete").is_file() and all(path.is_file() for path in built.values()):
        return built
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    started = time.monotonic()
    if log:
        print(
            f"building {', '.join(group.binaries)} from tools/{group.name} (first run only) ...", flush=True
        )
    for name, package in group.binaries.items():
        _go(["build", "-trimpath", "-ldflags=-s -w", "-o", str(target / name), package], cwd=module_dir)
    (target / ".complete").write_text(f"{time.monotonic() - started:.0f}s\n")
    if log:
        print(f"built tools/{group.name} in {time.monotonic() - started:.0f}s into {target}", flush=True)
    return built


def _ensure_modules(root: Path, *, log: bool) -> dict[str, Path]:
    manifest = root / f"modules-{_text_hash(json.dumps(UPSTREAM_MODULES, sort_keys=True))}.json"
    if manifest.is_file():
        known: dict[str, str] = json.loads(manifest.read_text())
        pinned = all(
            known.get(module, "").endswith(f"@{version}") for module, version in UPSTREAM_MODULES.items()
        )
        if pinned and all(Path(folder).is_dir() for folder in known.values()):
            return {module: Path(folder) for module, folder in known.items()}
    if log:
        print("downloading upstream CRDs and examples from the Go module proxy ...", flush=True)
    found: dict[str, str] = {}
    for module, version in UPSTREAM_MODULES.items():
        # On failure the reason is in the JSON's "Error", not on stderr.
        reply = json.loads(_go(["mod", "download", "-json", f"{module}@{version}"], cwd=root, check=False))
        if "Dir" not in reply:
            raise ToolBuildError(f"go mod download {module}@{version} failed: {reply.get('Error', reply)}")
        found[module] = reply["Dir"]
    manifest.write_text(json.dumps(found, indent=2, sort_keys=True))
    return {module: Path(folder) for module, folder in found.items()}


def _go(args: list[str], *, cwd: Path, check: bool = True) -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolBuildError("the go command is not on PATH; the Kubernetes and Helm tests need Go")
    # The pinned go.sum must hold every module: never edit it implicitly during a build.
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false"}
    result = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ToolBuildError(f"go {' '.join(args)} (in {cwd}) failed:\n{result.stderr.strip()}")
    return result.stdout


def _pin_hash(module_dir: Path) -> str:
    return _text_hash("".join((module_dir / name).read_text() for name in ("go.mod", "go.sum", "tools.go")))


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Go test tools (once) and print where they are.")
    parser.parse_args(argv)
    try:
        tools = ensure_test_tools(log=True)
    except ToolBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, path in sorted(tools.binaries.items()):
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
