"""``controlplane serve`` as a child process, the way users run it, for the local stack, tests and benchmarks.

A test that claims the server works must run the server users run, not an in-process stand-in: this starts
the real command with its own xDS and admin ports, waits for ``/readyz``, reads ``/status``, and can pause
and resume it (SIGSTOP/SIGCONT), which is how tests make a watch fall behind the API server. The two ports
are reserved (:class:`~controlplane.netutil.ReservedPort`) until ``stop``, so a server killed and started
again gets the same ones back and nobody takes them meanwhile. The child dies with its parent, and
``stop`` escalates from SIGTERM to SIGKILL, so a failed test leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controlplane.devtools.procutil import StartStop, dying_with_parent, stop_process
from controlplane.netutil import ReservedPort


class ControlPlaneError(RuntimeError):
    """The process exited or did not get ready; the message ends with its log."""


class ControlPlaneProcess(StartStop):
    def __init__(
        self,
        args: Sequence[str],
        *,
        log_file: Path,
        program: Sequence[str] = (sys.executable, "-m", "controlplane"),
    ) -> None:
        """``args`` follow ``controlplane serve``; the xDS and admin ports are reserved here. ``program`` is
        the ``controlplane`` command to run (another installation's, e.g. the image's venv)."""
        self._program = list(program)
        self._reserved = (ReservedPort(), ReservedPort())
        self.xds_port, self.admin_port = (reserved.port for reserved in self._reserved)
        self._args = list(args)
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30.0, wait: bool = True) -> ControlPlaneProcess:
        """Starts ``serve``; with ``wait``, returns once ``/readyz`` answers 200 (at most ``timeout``)."""
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        with self._log_file.open("ab") as log:
            self._process = subprocess.Popen(
                dying_with_parent(
                    [
                        *self._program,
                        "serve",
                        *self._args,
                        "--xds-port",
                        str(self.xds_port),
                        "--admin-port",
                        str(self.admin_port),
                    ]
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self._check_running()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1) as reply:
                    if reply.status == 200:
                        return
                    last = f"/readyz answered {reply.status}"
            except OSError as error:  # HTTPError (503: not ready) included
                last = f"/readyz: {error}"
            time.sleep(0.1)
        raise ControlPlaneError(
            f"controlplane serve not ready after {timeout}s (last: {last}):\n{self.log()[-3000:]}"
        )

    def status(self) -> dict[str, Any]:
        """The admin port's ``/status`` document."""
        self._check_running()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/status", timeout=5) as reply:
            document: dict[str, Any] = json.load(reply)
            return document

    def log(self) -> str:
        return self._log_file.read_text(encoding="utf-8", errors="replace") if self._log_file.exists() else ""

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: gone without releasing anything (a crashed replica)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def terminate(self, *, timeout: float = 30.0) -> int:
        """SIGTERM, as an orchestrator stops it, and its exit code once it is gone (killed after
        ``timeout``, which a test then sees as a code of -9)."""
        process, self._process = self._process, None
        assert process is not None, "not started"
        process.terminate()
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=5)

    def stop(self) -> None:
        """SIGTERM (a resumed process first, so it can act on it), then SIGKILL after ten seconds; the
        ports are released."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            stop_process(process)
        for reserved in self._reserved:
            reserved.release()

    def _check_running(self) -> None:
        if self._process is None:
            raise ControlPlaneError("controlplane serve is not running")
        if self._process.poll() is not None:
            raise ControlPlaneError(
                f"controlplane serve exited ({self._process.returncode}):\n{self.log()[-3000:]}"
            )
