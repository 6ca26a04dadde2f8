"""The peers the benchmarks compare us with, built or installed on demand outside the work tree.

Not part of ``make test``: go-control-plane serving our snapshot (``bench/peers/gcpserver``), Envoy AI
Gateway's ``aigw`` (both from ``bench/peers/go.mod``, through the same Go cache and lock as the test tools)
and the LiteLLM proxy (PyPI, in a virtualenv of its own under the same cache, never in our dependencies).
Each function raises :class:`PeerUnavailable` saying exactly what failed, so a benchmark can mark that
peer "not measured" and go on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controlplane.devtools.gotools import ToolBuildError, ToolGroup, cache_root, ensure_tool_group

PEERS_MODULE = Path(__file__).parent / "peers"
GCP_GROUP = ToolGroup("bench-gcp", {"gcpserver": "./gcpserver"}, module_dir=PEERS_MODULE)
AIGW_GROUP = ToolGroup(
    "bench-aigw", {"aigw": "github.com/envoyproxy/ai-gateway/cmd/aigw"}, module_dir=PEERS_MODULE
)
LITELLM_REQUIREMENT = "litellm[proxy]==1.80.0"


class PeerUnavailable(RuntimeError):
    """A peer could not be built, installed or started; the message is the reason shown in RESULTS.md."""


def gcpserver() -> Path:
    """go-control-plane serving exported snapshots (see ``bench/peers/gcpserver/main.go``)."""
    return _built(GCP_GROUP, "gcpserver")


def aigw() -> Path:
    """Envoy AI Gateway's standalone CLI (``github.com/envoyproxy/ai-gateway/cmd/aigw``, pinned)."""
    return _built(AIGW_GROUP, "aigw")


def litellm() -> Path:
    """The ``litellm`` proxy command from a virtualenv of its own (created on first use)."""
    venv = cache_root() / f"litellm-{LITELLM_REQUIREMENT.split('==')[1]}"
    command = venv / "bin" / "litellm"
    if command.is_file():
        return command
    steps = (
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", LITELLM_REQUIREMENT],
    )
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PeerUnavailable(f"{' '.join(step[-2:])} failed: {_tail(result.stderr)}")
    return command


def _built(group: ToolGroup, binary: str) -> Path:
    try:
        return ensure_tool_group(group, log=True)[binary]
    except ToolBuildError as error:
        raise PeerUnavailable(f"building {binary} failed: {_tail(str(error))}") from error


def _tail(text: str) -> str:
    """The last lines of a tool's output: where the reason is."""
    return " | ".join(text.strip().splitlines()[-3:])


if __name__ == "__main__":
    for build in (gcpserver, aigw, litellm):
        try:
            print(build.__name__, build())
        except PeerUnavailable as error:
            print(build.__name__, "unavailable:", error)
