"""The README's "Using it" commands, run exactly as written on one host, with the ports they print.

The commands are read from README.md, so this test breaks when the README changes in a way users would
trip over: the control plane's admin port and the bootstrapped Envoy's admin port must not collide, and
the Envoy the README starts must get its configuration from the ``serve`` the README starts.

Fixed ports are what the README shows, so they are checked free first (waiting for another run holding
them, under a host-wide lock), and every process is stopped (its whole process group) whatever happens.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from controlplane import defaults
from controlplane.devtools.procutil import dying_with_parent
from tests.e2e import EXAMPLES, ROOT
from tests.polling import wait_until

_LONG_RUNNING = ("controlplane serve", "envoy ")
"""Commands of the README that run until stopped; the others must exit 0."""


def readme_commands() -> list[str]:
    """The shell lines of the first ``sh`` block under "## Using it", without comments."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Using it\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _flag(command: str, name: str) -> int | None:
    words = shlex.split(command)
    return int(words[words.index(name) + 1]) if name in words else None


def test_default_ports_differ() -> None:
    ports = [defaults.XDS_PORT, defaults.ADMIN_PORT, defaults.ENVOY_ADMIN_PORT, defaults.LISTENER_PORT]
    assert len(set(ports)) == len(ports), ports


def _ports_the_readme_uses(commands: list[str]) -> set[int]:
    (serve,) = [c for c in commands if c.startswith("controlplane serve")]
    (bootstrap,) = [c for c in commands if c.startswith("controlplane bootstrap")]
    ports = {
        _flag(serve, "--xds-port") or defaults.XDS_PORT,
        _flag(serve, "--admin-port") or defaults.ADMIN_PORT,
        _flag(bootstrap, "--admin-port") or defaults.ENVOY_ADMIN_PORT,
    }
    for path in EXAMPLES.rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == "Gateway":
                ports.update(listener["port"] for listener in document["spec"]["listeners"])
    return ports


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


@contextmanager
def _fixed_ports(ports: set[int]) -> Iterator[None]:
    """Holds a host-wide lock for the README's ports and waits until nobody else binds them."""
    lock_path = Path(tempfile.gettempdir()) / "ai-xds-controlplane-readme-ports.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wait_until(
            lambda: [port for port in sorted(ports) if not _bindable(port)] == [],
            timeout=120,
            interval=0.5,
            message=f"the README's ports {sorted(ports)} to be free",
        )
        yield


@pytest.mark.envoy
def test_readme_using_it_runs_as_written(tmp_path: Path) -> None:
    commands = readme_commands()
    assert [c.split()[:2] for c in commands] == [
        ["controlplane", "serve"],
        ["controlplane", "bootstrap"],
        ["envoy", "-c"],
        ["controlplane", "translate"],
    ], "the README's commands changed: update this test with them"
    (tmp_path / "examples").symlink_to(EXAMPLES)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    admin_port = _flag(commands[0], "--admin-port") or defaults.ADMIN_PORT
    envoy_admin_port = _flag(commands[1], "--admin-port") or defaults.ENVOY_ADMIN_PORT
    started: list[subprocess.Popen[bytes]] = []
    with _fixed_ports(_ports_the_readme_uses(commands)):
        try:
            # The lines go through a shell, as a user's do (the README redirects output).
            for index, command in enumerate(commands):
                log = (tmp_path / f"command-{index}.log").open("wb")
                if command.startswith(_LONG_RUNNING):
                    started.append(
                        subprocess.Popen(
                            dying_with_parent(["/bin/sh", "-c", command]),
                            cwd=tmp_path,
                            env=env,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
                else:
                    done = subprocess.run(  # noqa: S602
                        command, shell=True, cwd=tmp_path, env=env, capture_output=True, timeout=120
                    )
                    assert done.returncode == 0, f"{command}: {done.stderr.decode()}"
                    log.write(done.stdout)
                log.close()
                if command.startswith("controlplane serve"):
                    wait_until(
                        lambda: httpx.get(f"http://127.0.0.1:{admin_port}/readyz").status_code == 200,
                        timeout=60,
                        message="serve to be ready",
                    )
                if command.startswith("envoy "):
                    _check_envoy_served(started[-1], envoy_admin_port, tmp_path / f"command-{index}.log")
            translated = yaml.safe_load((tmp_path / "command-3.log").read_text(encoding="utf-8"))
            assert translated["listeners"], "translate printed no listener"
        finally:
            for process in started:
                _stop_group(process)


def _check_envoy_served(envoy: subprocess.Popen[bytes], admin_port: int, log: Path) -> None:
    """Envoy runs next to ``serve`` (no port clash) and answers with what the control plane sent it."""

    def live() -> bool:
        assert envoy.poll() is None, f"envoy exited: {log.read_text(encoding='utf-8')[-2000:]}"
        return httpx.get(f"http://127.0.0.1:{admin_port}/ready").text.strip() == "LIVE"

    wait_until(live, timeout=60, message="Envoy to be LIVE")
    # Seed 000's Gateway listens on 10080: an unknown model gets the route table's OpenAI-shaped 404.
    reply = wait_until(
        lambda: httpx.post(
            "http://127.0.0.1:10080/v1/chat/completions", json={"model": "no-such-model", "messages": []}
        ),
        timeout=30,
    )
    assert reply.status_code == 404, reply.text
    assert reply.json()["error"]["type"] == "invalid_request_error"
    # Seed 002's Gateway (10082) lists the model its rules match, answered by Envoy itself.
    models = httpx.get("http://127.0.0.1:10082/v1/models")
    assert [model["id"] for model in models.json()["data"]] == ["llama3-8b"]


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
