"""Child processes (Envoy, ``controlplane serve``) that cannot outlive the process that started them,
and the one way they are stopped.

Tests, the demo and the benchmarks start real processes and stop them in ``finally`` blocks; but a runner
killed hard (a CI time-out, SIGKILL) runs no ``finally``, and the orphans keep ports and CPU for the next
run. On Linux the kernel can deliver a signal to a child when its parent dies; elsewhere this is a no-op.
"""

from __future__ import annotations

import abc
import shutil
import subprocess
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def dying_with_parent(command: Sequence[str]) -> list[str]:
    """``command``, run so that the kernel sends it SIGTERM when the thread that started it ends (start
    children from a long-lived thread, e.g. the main one); unchanged where util-linux's ``setpriv`` is
    missing.

    ``setpriv --pdeathsig`` sets the signal and then becomes the command (the same process), so the
    starting process needs no ``preexec_fn``: with one, Python forks instead of vforking, and forking a
    process that holds a large configuration costs it tens of milliseconds at the fork and again as it next
    writes its pages (measured with 600 MB: 85-140 ms and 275 ms, against 0.5-2 ms and 12 ms). The signal
    is set a moment after the start, so a parent that ends within that moment is missed: the case this
    guards against, a runner killed hard, comes long after its children started.
    """
    if _SETPRIV is None:
        return list(command)
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *command]


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
