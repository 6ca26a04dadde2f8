"""What a process the benchmarks started holds in memory, read from ``/proc/PID/status`` (Linux).

One reader for the control plane's and Envoy's figures, so both are the same measure: the resident set
now (``VmRSS``) and its high-water mark since the process started (``VmHWM``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Memory:
    rss_mib: float
    peak_rss_mib: float


def process_memory(pid: int) -> Memory:
    """The resident set of process ``pid`` now and at its peak, in MiB."""
    kib = {
        name: int(value.split()[0])
        for name, _, value in (
            line.partition(":") for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        if name in ("VmRSS", "VmHWM")
    }
    return Memory(rss_mib=kib["VmRSS"] / 1024, peak_rss_mib=kib["VmHWM"] / 1024)
