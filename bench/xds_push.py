"""Rows 2 and 3 of the benchmarks: a real Envoy getting N clusters from us, from a static file, and from
go-control-plane serving the same snapshot.

For 1,000 and 5,000 EDS clusters (three endpoints each on 127.0.0.1, one listener with one route per
cluster over RDS), in one run:

(a) static: a fresh Envoy loads the same clusters (STATIC, endpoints inline) and listener from its bootstrap;
    timed from process start to `/ready` LIVE with every cluster active;
(b) ADS: a fresh Envoy gets everything over ADS (SotW and Delta) from our server in this process, then from
    go-control-plane (``bench/gcp.py``) serving byte-identical resources; timed from process start until the
    server has seen the ACK of every resource and Envoy's admin reports LIVE with every cluster active;
(c) push: the converged Envoy gets `changes` snapshots each moving one load assignment (p50/p99), then one
    moving all; timed from handing the server the snapshot to the last ACK.

Goals: (b) at most 1.2x static and 1.2x go-control-plane. ``python -m bench`` runs it with the others;
alone: ``python -m bench.xds_push [--sizes 100,1000] [--repeat 3] [--changes 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.acks import Acks
from bench.clusters import ClusterConfig
from bench.gcp import GcpServer
from bench.report import Chart, Missing, Series, Table, median, percentile, ratio, render_text
from bench.tools import PeerUnavailable
from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.envoy_process import EnvoyError, EnvoyProcess
from controlplane.log import configure_logging
from controlplane.netutil import PortReservations
from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.server import XdsServer, XdsSettings

_READY_TIMEOUT = 120.0
"""How long a fresh Envoy may take to go LIVE (5,000 clusters on a loaded machine take tens of seconds)."""


async def _envoy_ready(envoy: EnvoyProcess, clusters: int) -> float:
    """perf_counter() once Envoy is LIVE, checked to have `clusters` active clusters."""

    def wait() -> float:
        envoy.wait_ready(timeout=_READY_TIMEOUT, poll_seconds=0.002)
        live = time.perf_counter()
        # Counted after the clock stopped: reading /stats makes Envoy flush its stats first, which at
        # thousands of clusters costs as much as the start-up being timed. LIVE already waits for every
        # cluster of the first CDS response to warm, so this checks the count rather than waiting for it.
        active = envoy.stats(filter_regex="^cluster_manager.active_clusters$")[
            "cluster_manager.active_clusters"
        ]
        if active < clusters:
            raise EnvoyError(f"Envoy went LIVE with {active} of {clusters} clusters active")
        return live

    return await asyncio.to_thread(wait)


async def _time_static(config: ClusterConfig) -> float:
    envoy = EnvoyProcess(bootstrap_yaml=config.static_bootstrap())
    try:
        started = time.perf_counter()
        envoy.start()
        return await _envoy_ready(envoy, config.size) - started
    finally:
        envoy.stop()


async def _time_ads(
    *,
    cache: SnapshotCache,
    acks: Acks,
    port: int,
    config: ClusterConfig,
    snapshots: _Snapshots,
    delta: bool,
    run: str,
    timed_changes: bool,
) -> _Timings:
    """Fresh-Envoy convergence, then (`timed_changes`) push-to-ACK of each one-assignment change, of all."""
    cache.set_snapshot(snapshots.base)
    node_id = f"bench-{run}"
    bootstrap = render_bootstrap(xds_address=f"127.0.0.1:{port}", delta=delta, node_id=node_id, admin_port=0)
    envoy = EnvoyProcess(bootstrap_yaml=bootstrap)
    try:
        started = time.perf_counter()
        envoy.start()
        acked, ready = await asyncio.gather(
            acks.until(node_id, snapshots.base), _envoy_ready(envoy, config.size + 1)
        )
        timings = _Timings(converged=max(acked, ready) - started)
        for changed in snapshots.one_changed if timed_changes else ():
            pushed = time.perf_counter()
            cache.set_snapshot(changed)
            timings.push_one.append(await acks.until(node_id, changed) - pushed)
        if timed_changes:
            pushed = time.perf_counter()
            cache.set_snapshot(snapshots.all_changed)
            timings.push_all = await acks.until(node_id, snapshots.all_changed) - pushed
        return timings
    finally:
        envoy.stop()


async def _time_gcp(
    *, config: ClusterConfig, snapshots: _Snapshots, delta: bool, timed_changes: bool
) -> _Timings:
    """The same as :func:`_time_ads` with go-control-plane serving the same snapshots."""
    node_id = f"gcp-{'delta' if delta else 'sotw'}-{config.size}"
    with GcpServer(node_id=node_id) as server:
        versions = server.load(snapshots.base)
        server.serve_loaded()
        bootstrap = render_bootstrap(
            xds_address=f"127.0.0.1:{server.port}", delta=delta, node_id=node_id, admin_port=0
        )
        envoy = EnvoyProcess(bootstrap_yaml=bootstrap)
        try:
            started = time.perf_counter()
            envoy.start()
            acked, ready = await asyncio.gather(
                asyncio.to_thread(server.until_acked, versions), _envoy_ready(envoy, config.size + 1)
            )
            timings = _Timings(converged=max(acked, ready) - started)
            for changed in snapshots.one_changed if timed_changes else ():
                versions = server.load(changed)
                pushed = server.serve_loaded()
                timings.push_one.append(await asyncio.to_thread(server.until_acked, versions) - pushed)
            if timed_changes:
                versions = server.load(snapshots.all_changed)
                pushed = server.serve_loaded()
                timings.push_all = await asyncio.to_thread(server.until_acked, versions) - pushed
            return timings
        finally:
            envoy.stop()


@dataclass
class _Timings:
    converged: float
    push_one: list[float] = field(default_factory=list)
    push_all: float | None = None


@dataclass(frozen=True)
class _Snapshots:
    """Built before timing: the base, `changes` snapshots each moving one more assignment, all moved."""

    base: Snapshot
    one_changed: list[Snapshot]
    all_changed: Snapshot

    @classmethod
    def build(cls, config: ClusterConfig, *, changes: int) -> _Snapshots:
        return cls(
            base=config.snapshot(),
            one_changed=[
                config.snapshot(endpoint_offset=step + 1, changed=step % config.size)
                for step in range(changes)
            ],
            all_changed=config.snapshot(endpoint_offset=changes + 1),
        )


_SERVERS = ("sotw", "delta", "gcp_sotw", "gcp_delta")
_LABELS = {
    "sotw": "ours SotW",
    "delta": "ours Delta",
    "gcp_sotw": "go-control-plane SotW",
    "gcp_delta": "go-control-plane Delta",
}


async def _bench(
    sizes: Sequence[int], *, repeat: int, changes: int
) -> tuple[list[dict[str, Any]], list[Missing]]:
    cache = SnapshotCache()
    acks = Acks()
    server = XdsServer(cache=cache, settings=XdsSettings(debounce_seconds=0.0))
    server.add_observer(acks)
    port = await server.start()
    rows: list[dict[str, Any]] = []
    missing: list[Missing] = []
    reserved = PortReservations()
    try:
        for size in sizes:
            config = ClusterConfig(size=size, listener_port=reserved.reserve())
            built = time.perf_counter()
            snapshots = _Snapshots.build(config, changes=changes)
            row: dict[str, Any] = {"clusters": size, "snapshot_build_s": time.perf_counter() - built}
            try:
                row["static_s"] = median([await _time_static(config) for _ in range(repeat)])
            except EnvoyError as error:
                missing.append(Missing(f"static bootstrap at {size:,} clusters", _reason(error)))
            for name in _SERVERS:
                delta = name.endswith("delta")
                try:
                    results = [
                        await _time_gcp(
                            config=config, snapshots=snapshots, delta=delta, timed_changes=attempt == 0
                        )
                        if name.startswith("gcp")
                        else await _time_ads(
                            cache=cache,
                            acks=acks,
                            port=port,
                            config=config,
                            snapshots=snapshots,
                            delta=delta,
                            run=f"{name}-{size}-{attempt}",
                            timed_changes=attempt == 0,
                        )
                        for attempt in range(repeat)
                    ]
                except (PeerUnavailable, EnvoyError, TimeoutError) as error:
                    # One server (or Envoy under it) failing leaves the others' figures standing.
                    missing.append(Missing(f"{_LABELS[name]} at {size:,} clusters", _reason(error)))
                    continue
                row[f"{name}_s"] = median([result.converged for result in results])
                row[f"{name}_push_p50_ms"] = 1000 * percentile(results[0].push_one, 0.5)
                row[f"{name}_push_p99_ms"] = 1000 * percentile(results[0].push_one, 0.99)
                row[f"{name}_push_all_ms"] = 1000 * (results[0].push_all or 0.0)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        await server.stop(grace_seconds=1)
        reserved.release()
    return rows, missing


def _reason(error: BaseException) -> str:
    """The error in one line, short enough for a table (Envoy's errors carry their log tail)."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:400]


def measure(*, sizes: Sequence[int], repeat: int, changes: int) -> list[Table]:
    """Rows 2 and 3 of the benchmark table, ours next to static and go-control-plane."""
    rows, missing = asyncio.run(_bench(sizes, repeat=repeat, changes=changes))
    converge = Table(
        rows_of_issue="2",
        title="A fresh Envoy converging (process start -> every resource ACKed, all clusters active)",
        columns=[
            "clusters",
            "static s",
            *(f"{_LABELS[name]} s" for name in _SERVERS),
            "ours SotW / static",
            "ours Delta / static",
            "ours SotW / gcp SotW",
            "ours Delta / gcp Delta",
        ],
        missing=missing,
        notes=[
            f"Median of {repeat}; N EDS clusters, 3 endpoints each, one listener with one route per cluster "
            "(RDS). go-control-plane serves byte-identical resources exported from our snapshot.",
            "Goal: <= 1.2x static and <= 1.2x go-control-plane.",
        ],
    )
    push = Table(
        rows_of_issue="3",
        title=f"One load assignment changed -> ACKed by a converged Envoy, {changes} changes (p50 / p99 ms)",
        columns=[
            "clusters",
            *(f"{_LABELS[name]} p50 / p99" for name in _SERVERS),
            "ours Delta p99 / gcp Delta p99",
        ],
        missing=missing,
        notes=[
            "Timed from handing the server the new snapshot (ours: set_snapshot; go-control-plane: "
            "SetSnapshot of an already decoded snapshot) to the ACK of every resource. Goal: p99 <= 50 ms "
            "at 1k "
            "(that goal is about a route change through translation: see bench.scale, rows 1 and 3).",
        ],
    )
    for row in rows:
        get = row.get
        converge.rows.append(
            [
                row["clusters"],
                get("static_s"),
                *(get(f"{name}_s") for name in _SERVERS),
                ratio(get("sotw_s"), get("static_s")),
                ratio(get("delta_s"), get("static_s")),
                ratio(get("sotw_s"), get("gcp_sotw_s")),
                ratio(get("delta_s"), get("gcp_delta_s")),
            ]
        )
        push.rows.append(
            [
                row["clusters"],
                *(
                    f"{row[f'{name}_push_p50_ms']:.1f} / {row[f'{name}_push_p99_ms']:.1f}"
                    if f"{name}_push_p50_ms" in row
                    else None
                    for name in _SERVERS
                ),
                ratio(get("delta_push_p99_ms"), get("gcp_delta_push_p99_ms")),
            ]
        )
    for table, key, label in ((converge, "_s", "seconds"), (push, "_push_p99_ms", "p99 ms")):
        chart = Chart(
            name=f"row{table.rows_of_issue}_{'converge' if table is converge else 'push'}",
            title=table.title.split(" (")[0],
            x_label="clusters",
            y_label=label,
            log_x=True,
        )
        for name in ("static", *_SERVERS):
            points = [(row["clusters"], row[f"{name}{key}"]) for row in rows if f"{name}{key}" in row]
            if points:
                chart.series.append(
                    Series(_LABELS.get(name, name), [x for x, _ in points], [y for _, y in points])
                )
        table.charts.append(chart)
    return [converge, push]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,5000", help="comma-separated cluster counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per convergence measurement (the median)")
    parser.add_argument("--changes", type=int, default=50, help="one-assignment changes timed per server")
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    sizes = [int(size) for size in args.sizes.split(",")]
    for table in measure(sizes=sizes, repeat=args.repeat, changes=args.changes):
        print(render_text(table))


if __name__ == "__main__":
    main()
