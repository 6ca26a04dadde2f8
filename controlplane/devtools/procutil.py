"""Child processes (Envoy, ``controlplane serve``) that cannot outlive the process that started them,
and the one way they are stopped.

Tests, the demo and the benchmarks start real processes and stop them in ``finally`` blocks; but a runner
killed hard (a CI time-out, SIGKILL) runs no ``finally``, and the orphans keep ports and CPU for the next
run. On Linux the kernel can deliver a signal to a child when its parent dies; elsewhere this is a no-op.
"""

from __future__ import annotations

import abc
import ctypes
import ctypes.util
import signal
import subprocess
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

_PR_SET_PDEATHSIG = 1


def _linux_pdeathsig() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl
    terminate = int(signal.SIGTERM)

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, terminate, 0, 0, 0)

    return set_parent_death_signal


terminate_with_parent: Callable[[], None] | None = _linux_pdeathsig()
"""A ``preexec_fn`` for ``subprocess.Popen``: the child gets SIGTERM when the thread that started it ends
(start children from a long-lived thread, e.g. the main one). None where unsupported."""


def stop_process(process: subprocess.Popen[Any], *, grace_seconds: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it is still there after ``grace_seconds``; returns its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


class StartStop(abc.ABC):
    """A started thing used as a context manager: entered, it starts (and is stopped again if starting
    fails half-way); left, it stops, whatever the block did."""

    @abc.abstractmethod
    def start(self) -> Self: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
