"""Row 5 of the benchmarks: what a request pays through our gateway, next to the peers a user would pick.

One canned chat completion served by nginx (one worker; answers faster than any proxy forwards), loaded by
``wrk`` (one thread) at 1, 16 and 64 connections, in one run, through:

- **direct**: wrk straight to nginx (the backend's own ceiling; must be far above the proxied figures);
- **plain Envoy**: the same Envoy binary, one worker, a static bootstrap proxying the path with no AI
  filters (the floor);
- **ours**: ``controlplane serve`` on an AIGatewayRoute with a priority-failover rule and a model-name
  override (both backends on nginx), Envoy with one worker on our ADS;
- **aigw**: Envoy AI Gateway's ``aigw run`` (standalone, built from the Go module proxy) on the same
  manifests, its Envoy being our binary (placed where func-e looks, so nothing is downloaded);
- **LiteLLM**: the LiteLLM proxy (its own virtualenv), one worker, the same model with a fallback.

A peer that cannot be built or started is reported "not measured" with the reason. Not a test.

Next to requests/s, the Envoy process's CPU time per request (user + system, read from ``/proc`` around each
run) for the two Envoys this benchmark starts itself: on a machine other jobs load, requests/s swings with
them from one run to the next, while the CPU a request costs stays put (aigw's Envoy and LiteLLM are not
read).

    .venv/bin/python -m bench.dataplane [--seconds 5] [--connections 1,16,64]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.gateways import TARGETS, Ports, Served, nginx
from bench.report import Chart, Missing, Series, Table, ratio, render_text
from bench.tools import PeerUnavailable
from bench.wrk import Load, wrk
from controlplane.log import configure_logging
from controlplane.netutil import PortReservations


def _cpu_us(pid: int) -> float:
    """A process's user + system CPU time so far, in microseconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3 of proc(5), utime and stime fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") * 1e6


def _run(served: Served, *, connections: int, seconds: float, workdir: Path) -> Load:
    """One wrk run on `served`, with its Envoy's CPU time per request when it is ours to read."""
    if served.envoy_pid is None:
        return wrk(served.url, connections=connections, seconds=seconds, workdir=workdir)
    before = _cpu_us(served.envoy_pid)
    load = wrk(served.url, connections=connections, seconds=seconds, workdir=workdir)
    spent = _cpu_us(served.envoy_pid) - before
    return replace(load, envoy_cpu_us_per_request=spent / load.requests if load.requests else None)


def measure(*, seconds: float, connections: Sequence[int], targets: Sequence[str] = tuple(TARGETS)) -> Table:
    """Every gateway is started first; then each connection count is run on each gateway in turn, so a
    burst of load from the machine's other jobs falls on all of them rather than on one."""
    loads: dict[str, list[Load]] = {}
    missing: list[Missing] = []
    with tempfile.TemporaryDirectory(prefix="bench-dataplane-") as folder, contextlib.ExitStack() as running:
        root = Path(folder)
        # Held until every child is gone (the stack unwinds in reverse): each child binds its own.
        reserved = running.enter_context(PortReservations())
        backend_ports = (reserved.reserve(), reserved.reserve())
        served: dict[str, Served] = {}
        try:
            running.enter_context(nginx(root, backend_ports))
        except PeerUnavailable as error:
            missing.append(Missing("backend (nginx)", str(error)))
            targets = ()
        for name in targets:
            workdir = root / re.sub(r"\W", "-", name)
            workdir.mkdir()
            ports = Ports(gateway=reserved.reserve(), primary=backend_ports[0], secondary=backend_ports[1])
            try:
                served[name] = running.enter_context(TARGETS[name](workdir, ports))
                # A discarded second first: connection pools, lazy initialisation, caches.
                wrk(served[name].url, connections=max(connections), seconds=1, workdir=workdir)
            except PeerUnavailable as error:
                served.pop(name, None)
                missing.append(Missing(name, str(error)))
        loads = {name: [] for name in served}
        for count in connections:
            for name, target in served.items():
                loads[name].append(_run(target, connections=count, seconds=seconds, workdir=root))
    return _table(loads, missing, connections=connections, seconds=seconds)


def _table(
    loads: dict[str, list[Load]], missing: list[Missing], *, connections: Sequence[int], seconds: float
) -> Table:
    table = Table(
        rows_of_issue="5",
        title="Chat completions through each gateway (Envoy with one worker; wrk, one thread)",
        columns=[
            "gateway",
            "connections",
            "requests/s",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "errors",
            "req/s vs plain Envoy",
            "added p99 vs direct us",
            "Envoy CPU us/request",
        ],
        missing=missing,
        notes=[
            f"{seconds:.0f} s per point. Backend: nginx, one worker, a canned completion. Goals: ours "
            ">= 0.6x plain Envoy's requests/s and added p99 vs direct <= 1 ms at 16 connections; "
            ">= 10x LiteLLM's requests/s; lower p99 and higher requests/s than aigw. "
            "aigw's Envoy worker count is its own. Envoy CPU us/request: the Envoy process's user + system "
            "CPU time over the run per request (the Envoys this benchmark starts; steadier than requests/s "
            "when other jobs load the machine).",
        ],
    )
    for name, runs in loads.items():
        for load in runs:
            plain = _at(loads, "plain Envoy", load.connections)
            direct_load = _at(loads, "direct", load.connections)
            table.rows.append(
                [
                    name,
                    load.connections,
                    round(load.requests_per_second),
                    load.percentiles_us[50],
                    load.percentiles_us[99],
                    load.percentiles_us[99.9],
                    load.errors,
                    ratio(load.requests_per_second, plain.requests_per_second if plain else None),
                    load.percentiles_us[99] - direct_load.percentiles_us[99] if direct_load else None,
                    round(load.envoy_cpu_us_per_request, 1)
                    if load.envoy_cpu_us_per_request is not None
                    else None,
                ]
            )
    middle = connections[len(connections) // 2]
    distribution = Chart(
        name="row5_latency",
        title=f"Latency distribution at {middle} connections",
        x_label="latency us",
        y_label="percentile",
        kind="cdf",
        log_x=True,
    )
    throughput = Chart(
        name="row5_throughput", title="Requests/s", x_label="connections", y_label="requests/s"
    )
    for name, runs in loads.items():
        at_middle = _at(loads, name, middle)
        if at_middle:
            distribution.series.append(
                Series(
                    name,
                    list(at_middle.percentiles_us.values()),
                    [float(p) for p in at_middle.percentiles_us],
                )
            )
        throughput.series.append(
            Series(
                name, [float(load.connections) for load in runs], [load.requests_per_second for load in runs]
            )
        )
    table.charts += [distribution, throughput]
    return table


def _at(loads: dict[str, list[Load]], name: str, connections: int) -> Load | None:
    return next((load for load in loads.get(name, []) if load.connections == connections), None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per point")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated connection counts")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated, from: " + ", ".join(TARGETS)
    )
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    table = measure(
        seconds=args.seconds,
        connections=[int(count) for count in args.connections.split(",")],
        targets=args.targets.split(","),
    )
    print(render_text(table))
    raise SystemExit(1 if table.missing else 0)


if __name__ == "__main__":
    main()
