"""What a failing primary costs clients: request latency with a healthy primary vs. a failing one.

Runs the seed-000 example (eu primary, us secondary) on a local stack and, in one run, measures sequential
requests through Envoy with eu healthy, eu refusing connections, and eu answering 429. For each it prints
p50/p99, the ratio of p99 to the healthy p99, how many requests paid a retry (Envoy's retry counter on the
rule cluster) and how many ejections happened. Not a test: numbers depend on the machine.

    .venv/bin/python -m bench.failover [--seconds 15]

Each scenario lasts long enough (15 s) to include several ejection cycles (5 s each) of a dead primary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.report import Table, median, percentile, run_from_command_line
from controlplane.devtools.fake_backend import Mode, Normal, Refuse, Status
from controlplane.devtools.stack import LocalStack

EXAMPLE = Path(__file__).parent.parent / "examples" / "000-region-failover"
RULE_CLUSTER = "route/default/inference/rule/0"
BODY = {"messages": [{"role": "user", "content": "hello"}]}


@dataclass(frozen=True)
class Result:
    scenario: str
    requests: int
    p50_ms: float
    p99_ms: float
    failures: int
    retries: int
    ejections: int


def measure(*, seconds: float, settle_seconds: float = 6.5) -> Table:
    """Row 6: each scenario for `seconds`; `settle_seconds` lets an ejected primary back in between them."""
    with LocalStack(EXAMPLE, move_ports=True) as stack, httpx.Client(timeout=10) as http:
        url = stack.url(10080)
        _warm_up(http, url)
        scenarios: list[tuple[str, Mode]] = [
            ("healthy primary", Normal()),
            ("primary refuses connections", Refuse()),
            ("primary answers 429", Status(429)),
        ]
        results = []
        for name, mode in scenarios:
            stack.backends["vllm-eu"].set_mode(mode)
            results.append(_measure(stack, http, url, name, seconds))
            stack.backends["vllm-eu"].set_mode(Normal())
            time.sleep(settle_seconds)  # let an ejected primary back in before the next scenario
    baseline = results[0].p99_ms
    table = Table(
        rows_of_issue="6",
        title="Failover cost: sequential requests, seed 000 (eu primary -> us secondary)",
        columns=[
            "scenario",
            "requests",
            "p50 ms",
            "p99 ms",
            "p99 vs healthy",
            "non-200",
            "retries",
            "ejections",
        ],
        notes=[
            f"{seconds:.0f} s per scenario; retries and ejections are Envoy's counters on the rule cluster."
        ],
    )
    for result in results:
        table.rows.append(
            [
                result.scenario,
                result.requests,
                result.p50_ms,
                result.p99_ms,
                result.p99_ms / baseline,
                result.failures,
                result.retries,
                result.ejections,
            ]
        )
    return table


def main() -> None:
    run_from_command_line(__doc__, measure, default_seconds=15.0, seconds_help="duration of each scenario")


def _warm_up(http: httpx.Client, url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if http.post(url, json=BODY, headers={"host": "llm.example.com"}).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the stack never answered")


def _measure(stack: LocalStack, http: httpx.Client, url: str, name: str, seconds: float) -> Result:
    before = _counters(stack)
    latencies = []
    failures = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        reply = http.post(url, json=BODY, headers={"host": "llm.example.com"})
        latencies.append((time.perf_counter() - started) * 1000)
        failures += reply.status_code != 200
    after = _counters(stack)
    return Result(
        scenario=name,
        requests=len(latencies),
        p50_ms=median(latencies),
        p99_ms=percentile(latencies, 0.99),
        failures=failures,
        retries=after[0] - before[0],
        ejections=after[1] - before[1],
    )


def _counters(stack: LocalStack) -> tuple[int, int]:
    assert stack.envoy is not None
    stats = stack.envoy.stats(filter_regex=f"cluster\\.{RULE_CLUSTER}\\.")
    prefix = f"cluster.{RULE_CLUSTER}."
    return (
        stats.get(f"{prefix}upstream_rq_retry", 0),
        stats.get(f"{prefix}outlier_detection.ejections_enforced_total", 0),
    )


if __name__ == "__main__":
    main()
