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
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format

from bench.gcp import GcpServer
from bench.report import Chart, Missing, Series, Table, median, percentile, ratio, render_text
from bench.tools import PeerUnavailable
from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.envoy_process import EnvoyError, EnvoyProcess
from controlplane.log import configure_logging
from controlplane.netutil import PortReservations
from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.content import versions
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE
from controlplane.xds.server import XdsEvent, XdsServer, XdsSettings
from tests import xds_builders

_TYPES = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
_ENDPOINTS = 3
_TIMEOUT = 120.0


@dataclass(frozen=True)
class ClusterConfig:
    """N EDS clusters (three endpoints each) behind one listener whose RDS routes name each of them."""

    size: int
    listener_port: int

    def snapshot(self, *, endpoint_offset: int = 0, changed: int | None = None) -> Snapshot:
        """The ADS form; `endpoint_offset` moves the endpoints of all clusters (or of `changed` only)."""
        clusters = [xds_builders.eds_cluster(self._name(index)) for index in range(self.size)]
        endpoints = [
            xds_builders.load_assignment(
                self._name(index),
                socket_endpoints=self._endpoints(index, endpoint_offset if changed in (None, index) else 0),
            )
            for index in range(self.size)
        ]
        return Snapshot.from_resources(
            listeners=[xds_builders.http_listener("bench", port=self.listener_port, rds_name="bench")],
            routes=[self._routes()],
            clusters=clusters,
            endpoints=endpoints,
        )

    def static_bootstrap(self) -> str:
        """The same clusters (endpoints inline) and listener (routes inline) in a bootstrap file."""
        bootstrap = bootstrap_pb2.Bootstrap()
        bootstrap.admin.address.CopyFrom(
            address_pb2.Address(socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=0))
        )
        # As `controlplane bootstrap` does: no stats flush timer stalling the main thread every 5 s, and a
        # cluster's traffic stats made at its first request.
        bootstrap.stats_flush_on_admin = True
        bootstrap.deferred_stat_options.enable_deferred_creation_stats = True
        for index in range(self.size):
            cluster = bootstrap.static_resources.clusters.add()
            cluster.CopyFrom(xds_builders.eds_cluster(self._name(index)))
            cluster.ClearField("eds_cluster_config")
            cluster.type = cluster_pb2.Cluster.STATIC
            cluster.load_assignment.CopyFrom(
                xds_builders.load_assignment(self._name(index), socket_endpoints=self._endpoints(index, 0))
            )
        bootstrap.static_resources.listeners.append(
            xds_builders.http_listener("bench", port=self.listener_port, route_config=self._routes())
        )
        return json_format.MessageToJson(bootstrap, indent=None)

    def _routes(self) -> route_pb2.RouteConfiguration:
        return xds_builders.route_configuration(
            "bench", routes=[(f"/{self._name(index)}/", self._name(index)) for index in range(self.size)]
        )

    @staticmethod
    def _name(index: int) -> str:
        return f"cluster-{index:05d}"

    @staticmethod
    def _endpoints(index: int, offset: int) -> list[tuple[str, int]]:
        return [
            ("127.0.0.1", 20000 + (index * _ENDPOINTS + slot + offset) % 40000) for slot in range(_ENDPOINTS)
        ]


class Acks:
    """Observer telling when a node has ACKed exactly the resources and versions of a snapshot.

    It runs on the server's event loop, whose stalls ``bench.scale`` measures, so an ACK costs there only in
    proportion to what it carries, in C: each wait keeps, per type, the names whose held version differs
    from the snapshot's, and an ACK moves only its own names in or out of that set (a Delta ACK of one
    change: a few names, not the 40,000 a node holds at 5,000 routes with policies). The snapshot's versions
    and the first such sets are made in a worker thread, from a copy of what the node held when the wait
    began (again, should an ACK come meanwhile)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], dict[str, str]] = {}
        self._last_ack: dict[str, float] = {}
        """perf_counter() of each node's latest ACK of a type a wait reads (when what it holds changed)."""
        self._waits: dict[str, list[_Wait]] = {}

    def __call__(self, event: XdsEvent, /) -> None:
        if event.kind != "ack" or event.type_url not in _TYPES:
            return  # secrets, with policies: no snapshot's wait reads them
        # When the ACK came: what follows is the observer's own work, not the server's.
        now = self._last_ack[event.node_id] = time.perf_counter()
        held = self._held.setdefault((event.node_id, event.type_url), {})
        acked = versions(event.sent)
        # SotW: the ACK names the whole type, so what it leaves out is gone (as many names as it carries).
        gone = (held.keys() if event.mode == "sotw" else set(event.removed)) - acked.keys()
        for name in gone:
            held.pop(name, None)
        held.update(acked)
        for wait in self._waits.get(event.node_id, ()):
            wait.acked(event.type_url, held, acked=acked, gone=gone, at=now)

    async def until(self, node_id: str, snapshot: Snapshot) -> float:
        """perf_counter() of the ACK that completed `snapshot` for `node_id` (the call's, had it before)."""
        called = time.perf_counter()
        wait = _Wait(asyncio.get_running_loop().create_future())
        waits = self._waits.setdefault(node_id, [])
        waits.append(wait)
        try:
            wanted, differing = await asyncio.to_thread(self._compare, node_id, snapshot)
            while wait.touched:  # an ACK changed what the node holds while the thread compared: again
                wait.touched = False
                differing = await asyncio.to_thread(self._differing, node_id, wanted)
            wait.start(wanted, differing)
            if wait.complete:
                return max(called, self._last_ack.get(node_id, called))
            return await asyncio.wait_for(wait.future, _TIMEOUT)
        finally:
            waits.remove(wait)

    def _compare(
        self, node_id: str, snapshot: Snapshot
    ) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
        """The snapshot's versions by type, and :meth:`_differing` from them (in a worker thread)."""
        wanted = {type_url: versions(snapshot.get(type_url)) for type_url in _TYPES}
        return wanted, self._differing(node_id, wanted)

    def _differing(self, node_id: str, wanted: dict[str, dict[str, str]]) -> dict[str, set[str]]:
        """Per type, the names whose version `node_id` holds is not the one in `wanted` (or that only one
        side has). In a worker thread, as tens of thousands of names would stall the loop: each type's held
        versions are copied in one C call, which the loop's ACKs cannot interleave (the GIL), and an ACK
        between two copies or after them sets the wait's ``touched``, making ``until`` compare again."""
        differing = {}
        for type_url in _TYPES:
            held = dict(self._held.get((node_id, type_url), {}))
            differing[type_url] = _names(held.items() ^ wanted[type_url].items())
        return differing


def _names(items: Iterable[tuple[str, str]]) -> set[str]:
    return set(map(itemgetter(0), items))


_WHOLE_TYPE_SHARE = 0.5
"""An ACK touching at least this share of a type's wanted names (SotW's always; Delta's first) is checked by
comparing the whole type in C, cheaper than classifying that many names one by one."""


class _Wait:
    """One ``Acks.until``: per type, the names whose held version is not yet the snapshot's."""

    def __init__(self, future: asyncio.Future[float]) -> None:
        self.future = future
        self.touched = False
        """An ACK came while a worker thread compared what the node held (its copy may be stale)."""
        self._wanted: dict[str, dict[str, str]] = {}
        self._differing: dict[str, set[str]] = {}

    @property
    def complete(self) -> bool:
        return bool(self._wanted) and not any(self._differing.values())

    def start(self, wanted: dict[str, dict[str, str]], differing: dict[str, set[str]]) -> None:
        self._wanted, self._differing = wanted, differing

    def acked(
        self, type_url: str, held: dict[str, str], *, acked: dict[str, str], gone: Set[str], at: float
    ) -> None:
        """The node now holds `held` of `type_url`: `acked` (name -> version) changed, `gone` names left, by
        the ACK that came at `at` (perf_counter())."""
        if not self._wanted:
            self.touched = True
            return
        wanted, differing = self._wanted[type_url], self._differing[type_url]
        if len(acked) + len(gone) >= _WHOLE_TYPE_SHARE * len(wanted):
            self._differing[type_url] = set() if held == wanted else _names(held.items() ^ wanted.items())
        else:
            matching = _names(acked.items() & wanted.items())
            differing.difference_update(matching, gone)
            differing.update(acked.keys() - matching, wanted.keys() & gone)
        if not self.future.done() and self.complete:
            self.future.set_result(at)


async def _envoy_ready(envoy: EnvoyProcess, clusters: int) -> float:
    """perf_counter() once Envoy is LIVE, checked to have `clusters` active clusters."""

    def wait() -> float:
        envoy.wait_ready(timeout=_TIMEOUT, poll_seconds=0.002)
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
