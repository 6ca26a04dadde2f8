"""The load of row 5 (``bench.dataplane``): one canned chat completion request, sent by ``wrk``, and what
``wrk`` reports of it.

Kept apart from the gateways it loads (``bench.gateways``) and the runner that compares them, since the
request, the Lua script that sends it and the parsing of its one-line summary must agree with each other and
with nothing else.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.tools import PeerUnavailable

MODEL = "bench-model"
HOST = "llm.example.com"
PATH = "/v1/chat/completions"
REQUEST = '{"model":"' + MODEL + '","messages":[{"role":"user","content":"hello"}]}'
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9)

_WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{REQUEST}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Host"] = "{HOST}"
wrk.headers["Authorization"] = "Bearer sk-bench"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
  for _, p in ipairs({{{", ".join(str(p) for p in PERCENTILES)}}}) do
    io.write(string.format(" %.1f", latency:percentile(p)))
  end
  io.write("\\n")
end
"""


@dataclass(frozen=True)
class Load:
    """One wrk run: requests/s, errors (non-2xx included) and latency percentiles in microseconds."""

    connections: int
    requests: int
    requests_per_second: float
    errors: int
    percentiles_us: dict[float, float]
    envoy_cpu_us_per_request: float | None = None
    """The gateway's Envoy CPU time over the run per request; None when it is not a process we started."""


def wrk(url: str, *, connections: int, seconds: float, workdir: Path) -> Load:
    """`connections` connections on one thread posting ``REQUEST`` to `url` for `seconds` (whole, at least
    one); the script goes in `workdir`."""
    binary = shutil.which("wrk")
    if binary is None:
        raise PeerUnavailable("wrk is not installed (apt-get install wrk)")
    script = workdir / "bench.lua"
    script.write_text(_WRK_SCRIPT)
    duration = max(1, round(seconds))
    result = subprocess.run(
        [binary, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=False,
        timeout=duration + 30,
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise PeerUnavailable(f"wrk failed: {result.stderr.strip() or result.stdout.strip()}")
    requests, duration_us, errors, *latencies = line.split()[1:]
    return Load(
        connections=connections,
        requests=int(requests),
        requests_per_second=int(requests) / (int(duration_us) / 1e6),
        errors=int(errors),
        percentiles_us=dict(zip(PERCENTILES, (float(value) for value in latencies), strict=True)),
    )
