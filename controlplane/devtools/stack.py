"""A whole local deployment on loopback: fake model servers, the control plane, and a real Envoy.

The demo runs the examples on it, and the end-to-end tests run every example on it with each port moved
to one reserved for the stack (:class:`~controlplane.netutil.ReservedPort`, held until the stack stops, so
Envoy's listeners and the fake backends bind ports nobody else can take). The control plane runs as a
separate ``controlplane serve`` process (exactly what users run), Envoy gets its bootstrap from
``controlplane bootstrap``, and the fake backends run in this process so tests can switch their fault
modes and read what they received.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType

from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.controlplane_process import ControlPlaneProcess
from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.devtools.fake_backend import FakeBackend
from controlplane.netutil import PortReservations
from controlplane.resources.envoy_gateway import Backend
from controlplane.sources.file_reading import load_paths

_PORT = re.compile(r"(\bport:\s*)(\d+)")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def reserved_port_map(
    manifests: Path, reservations: PortReservations, *, skip: Collection[int] = ()
) -> dict[int, int]:
    """A port held in ``reservations`` for every ``port:`` in the manifests (Gateway listeners and loopback
    Backends) but those in ``skip``."""
    ports = {
        int(match.group(2)) for path in _yaml_files(manifests) for match in _PORT.finditer(path.read_text())
    }
    return {port: reservations.reserve() for port in sorted(ports) if port not in skip}


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
        move_ports: bool = False,
        delta: bool = False,
        workdir: Path | None = None,
        serve_args: tuple[str, ...] = (),
        fake_backends: bool = True,
        kubeconfig: Path | None = None,
    ) -> None:
        """``port_map`` says where ports named in the manifests really are (e.g. a backend's port, bound
        by the caller); with ``move_ports`` every other port of the manifests is moved to one reserved here
        and released by ``stop`` (``self.port_map`` has both, from here on). With ``kubeconfig`` the
        control plane watches that cluster (``serve --kubernetes``) instead of the manifests' folder: the
        caller applies ``config_dir`` there (ports already mapped)."""
        self._source = manifests
        self._reserved_ports = PortReservations()
        explicit = dict(port_map or {})
        moved = reserved_port_map(manifests, self._reserved_ports, skip=explicit) if move_ports else {}
        self.port_map = {**moved, **explicit}
        self._delta = delta
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="aigw-stack-"))
        self.config_dir = self.workdir / "config"
        self._fake_backends = fake_backends
        self.backends: dict[str, FakeBackend] = {}
        self.envoy: EnvoyProcess | None = None
        source = (
            [str(self.config_dir)] if kubeconfig is None else ["--kubernetes", f"--kubeconfig={kubeconfig}"]
        )
        self.control_plane = ControlPlaneProcess(
            # The examples include seed 002, an InferencePool.
            [*source, "--listen-address", "127.0.0.1", "--enable-inference-extension", *serve_args],
            log_file=self.workdir / "controlplane.log",
        )

    @property
    def admin_port(self) -> int:
        return self.control_plane.admin_port

    @property
    def xds_port(self) -> int:
        return self.control_plane.xds_port

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
            self.control_plane.start(timeout=timeout)
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
        return self.control_plane.log()

    def stop(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
            self.envoy = None
        self.control_plane.stop()
        for backend in self.backends.values():
            backend.stop()
        self.backends.clear()
        self._reserved_ports.release()
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


def _yaml_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
