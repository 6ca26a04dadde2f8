"""Sequential requests alternating between targets of one stack, so load and noise hit each alike.

Shared by the benchmarks that compare two ways of serving the same request in one run (``bench.transcoding``:
passthrough vs. transcoded; ``bench.costs``: with vs. without CEL costs).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import httpx

from bench.report import Cell, median, percentile


def chat_body(model: str, *, stream: bool) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream}


def alternate(
    http: httpx.Client, targets: Mapping[str, tuple[str, str]], *, stream: bool, seconds: float
) -> tuple[dict[str, list[float]], int]:
    """Per target name, the milliseconds to the last byte of each request for ``seconds``; and how many
    answers were not 200. ``targets`` maps a name to the URL and the model it is asked for."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    failures = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, (url, model) in targets.items():
            started = time.perf_counter()
            with http.stream("POST", url, json=chat_body(model, stream=stream)) as reply:
                reply.read()
            samples[name].append((time.perf_counter() - started) * 1000)
            failures += reply.status_code != 200
    return samples, failures


def warm_up(http: httpx.Client, targets: Mapping[str, tuple[str, str]]) -> None:
    """Until every target answered 200 once (30 s at most)."""
    deadline = time.monotonic() + 30
    pending = set(targets)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            url, model = targets[name]
            try:
                if http.post(url, json=chat_body(model, stream=False)).status_code == 200:
                    pending.discard(name)
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    if pending:
        raise RuntimeError(f"the stack never answered for {sorted(pending)}")


def compared_row(
    label: str, baseline: Sequence[float], measured: Sequence[float], failures: int
) -> list[Cell]:
    """One table row: the label, the samples of each side, their p50 and p99, what ``measured`` adds to both,
    and the non-200 answers."""
    p50 = (median(baseline), median(measured))
    p99 = (percentile(baseline, 0.99), percentile(measured, 0.99))
    return [
        label,
        min(len(baseline), len(measured)),
        p50[0],
        p99[0],
        p50[1],
        p99[1],
        p50[1] - p50[0],
        p99[1] - p99[0],
        failures,
    ]
