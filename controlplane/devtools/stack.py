"""A whole local deployment on loopback: fake model servers, the control plane, and a real Envoy.

The demo runs the examples on it, and the end-to-end tests run every example on it with each port moved
to a free one. The control plane runs as a separate ``controlplane serve`` process (exactly what users
run), Envoy gets its bootstrap from ``controlplane bootstrap``, and the fake backends run in this process
so tests can switch their fault modes and read what they received.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.devtools.fake_backend import FakeBackend
from controlplane.devtools.procutil import terminate_with_parent
from controlplane.netutil import free_port
from controlplane.resources.envoy_gateway import Backend
from controlplane.resources.loader import load_paths

_PORT = re.compile(r"(\bport:\s*)(\d+)")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class StackError(RuntimeError):
    pass


def free_port_map(manifests: Path) -> dict[int, int]:
    """A free port for every ``port:`` in the manifests (Gateway listeners and loopback Backends)."""
    ports = {
        int(match.group(2)) for path in _yaml_files(manifests) for match in _PORT.finditer(path.read_text())
    }
    return {port: free_port() for port in sorted(ports)}


def map_ports(text: str, port_map: Mapping[int, int]) -> str:
    """``text`` with every ``port: N`` in ``port_map`` replaced by its mapped port."""
    return _PORT.sub(
        lambda match: f"{match.group(1)}{port_map.get(int(match.group(2)), match.group(2))}", text
    )


class LocalStack:
    def __init__(
        self,
        manifests: Path,
        *,
        port_map: Mapping[int, int] | None = None,
        delta: bool = False,
        workdir: Path | None = None,
        serve_args: tuple[str, ...] = (),
        fake_backends: bool = True,
    ) -> None:
        self._source = manifests
        self.port_map = dict(port_map or {})
        self._delta = delta
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="aigw-stack-"))
        self.config_dir = self.workdir / "config"
        self._serve_args = serve_args
        self._fake_backends = fake_backends
        self.backends: dict[str, FakeBackend] = {}
        self.envoy: EnvoyProcess | None = None
        self._control_plane: subprocess.Popen[bytes] | None = None
        self.admin_port = free_port()
        self.xds_port = free_port()

    def port(self, manifest_port: int) -> int:
        """Where a port named in the manifests really is."""
        return self.port_map.get(manifest_port, manifest_port)

    def url(self, gateway_port: int, path: str = "/v1/chat/completions") -> str:
        return f"http://127.0.0.1:{self.port(gateway_port)}{path}"

    def start(self, *, timeout: float = 30.0) -> LocalStack:
        try:
            self._write_config()
            if self._fake_backends:
                self._start_backends()
            self._start_control_plane(timeout=timeout)
            self.envoy = EnvoyProcess(
                bootstrap_yaml=render_bootstrap(
                    xds_address=f"127.0.0.1:{self.xds_port}", delta=self._delta, admin_port=0, node_id="local"
                ),
                workdir=self.workdir / "envoy",
                concurrency=2,
            )
            self.envoy.start().wait_ready(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def rewrite_config(self, manifest: str, text: str) -> None:
        """Replace one file of the running configuration (ports are mapped like the originals)."""
        target = self.config_dir / manifest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(map_ports(text, self.port_map), encoding="utf-8")

    def control_plane_log(self) -> str:
        path = self.workdir / "controlplane.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
            self.envoy = None
        if self._control_plane is not None:
            self._control_plane.terminate()
            try:
                self._control_plane.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._control_plane.kill()
                self._control_plane.wait(timeout=5)
            self._control_plane = None
        for backend in self.backends.values():
            backend.stop()
        self.backends.clear()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _write_config(self) -> None:
        for path in _yaml_files(self._source):
            relative = path.relative_to(self._source) if self._source.is_dir() else Path(path.name)
            self.rewrite_config(str(relative), path.read_text(encoding="utf-8"))

    def _start_backends(self) -> None:
        """One fake model server per loopback endpoint of every Envoy Gateway Backend."""
        for backend in load_paths([self.config_dir]).resource_set().of_type(Backend):
            for endpoint in backend.spec.endpoints:
                address = endpoint.ip or endpoint.fqdn
                host = (
                    endpoint.ip.address if endpoint.ip else endpoint.fqdn.hostname if endpoint.fqdn else None
                )
                if address is None or host not in _LOOPBACK:
                    continue
                fake = FakeBackend(name=backend.name, model=backend.name, port=address.port)
                fake.start()
                self.backends[backend.name] = fake

    def _start_control_plane(self, *, timeout: float) -> None:
        log = (self.workdir / "controlplane.log").open("wb")
        self._control_plane = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controlplane",
                "serve",
                str(self.config_dir),
                "--xds-port",
                str(self.xds_port),
                "--admin-port",
                str(self.admin_port),
                "--listen-address",
                "127.0.0.1",
                *self._serve_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=terminate_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._control_plane.poll() is not None:
                raise StackError(f"controlplane serve exited early:\n{self.control_plane_log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise StackError(
            f"controlplane serve not ready after {timeout}s:\n{self.control_plane_log()[-3000:]}"
        )


def _yaml_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
