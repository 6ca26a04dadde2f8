"""The loop canary the scale benchmarks read their stalls from: how late a 1 ms timer on the running loop
fires at worst, and how much of that worst tick the loop's thread spent waiting for a processor.

A late tick is not always the server's doing: on two cores, an Envoy taking thousands of listeners keeps
both busy, and the loop's thread, though runnable, waits its turn (a 14 ms late tick was 14 ms of waiting).
The kernel counts that waiting per thread (``/proc/thread-self/schedstat``, second field, nanoseconds);
the canary reads it once a tick (one ``pread`` of a file it keeps open, about a microsecond) and keeps the
worst tick's share, so a reader can tell the server's own stall from starvation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass

_TICK_SECONDS = 0.001
_SCHEDSTAT = "/proc/thread-self/schedstat"


@dataclass(frozen=True)
class Stall:
    """The worst tick since the last reset: how late it fired, and how long of it its thread was runnable
    but waited for a processor (None where the kernel does not report it)."""

    late_s: float
    waiting_s: float | None

    def describe(self) -> str:
        """The stall as the benchmarks print it: "12.3 ms (11.0 waiting for a CPU)"."""
        waiting = "n/a" if self.waiting_s is None else f"{self.waiting_s * 1000:.1f}"
        return f"{self.late_s * 1000:.1f} ms ({waiting} waiting for a CPU)"


class LoopCanary:
    """The worst lateness of a 1 ms timer on the running loop since the last ``reset``."""

    def __init__(self) -> None:
        self._quiet = Stall(0.0, None)
        """No late tick: waiting is known (0) once the kernel's figure could be read."""
        self._worst = self._quiet

    def reset(self) -> Stall:
        worst, self._worst = self._worst, self._quiet
        return worst

    async def run(self) -> None:
        try:
            schedstat: int | None = os.open(_SCHEDSTAT, os.O_RDONLY)
        except OSError:
            schedstat = None
        else:
            self._quiet = Stall(0.0, 0.0)
            if self._worst.late_s == 0.0:
                self._worst = self._quiet
        try:
            waited = _waited_s(schedstat)
            while True:
                started = time.perf_counter()
                await asyncio.sleep(_TICK_SECONDS)
                late = time.perf_counter() - started - _TICK_SECONDS
                now_waited = _waited_s(schedstat)
                if late > self._worst.late_s:
                    waiting = None if now_waited is None or waited is None else now_waited - waited
                    self._worst = Stall(late, waiting)
                waited = now_waited
        finally:
            if schedstat is not None:
                with contextlib.suppress(OSError):
                    os.close(schedstat)


def _waited_s(schedstat: int | None) -> float | None:
    """Seconds this thread has waited, runnable, for a processor (the file re-read from its start)."""
    if schedstat is None:
        return None
    return int(os.pread(schedstat, 64, 0).split()[1]) / 1e9
