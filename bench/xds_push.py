"""Benchmark: how long a real Envoy takes to get N clusters from this control plane, next to a static file.

For 100, 1,000 and 5,000 EDS clusters (three endpoints each on 127.0.0.1, one listener with one route per
cluster over RDS), in one run:

(a) static: a fresh Envoy loads the same clusters (STATIC, endpoints inline) and listener from its bootstrap;
    timed from process start to `/ready` LIVE with every cluster active;
(b) ADS: a fresh Envoy gets everything over ADS (SotW, then Delta); timed from process start until the
    server has seen the ACK of every resource and Envoy's admin reports LIVE with every cluster active;
(c) push: an Envoy already converged gets a changed snapshot; timed from `set_snapshot` to the last ACK,
    for one changed load assignment and for all load assignments changed.

The ratio ADS/static of (b) is the figure to watch (goal: at most 1.2). Run with ``make bench`` or
``python -m bench.xds_push [--sizes 100,1000] [--repeat 3]``; takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format

from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.log import configure_logging
from controlplane.netutil import free_port
from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE
from controlplane.xds.server import XdsEvent, XdsServer, XdsSettings
from tests import xds_builders

_TYPES = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
_ENDPOINTS = 3
_TIMEOUT = 120.0


@dataclass(frozen=True)
class _Config:
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
    """Observer telling when a node has ACKed every resource of a snapshot."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], dict[str, str]] = {}
        self._waiters: list[tuple[str, dict[str, dict[str, str]], asyncio.Future[float]]] = []

    def __call__(self, event: XdsEvent, /) -> None:
        if event.kind != "ack":
            return
        held = self._held.setdefault((event.node_id, event.type_url), {})
        if event.mode == "sotw":
            held.clear()
        held.update(event.resources)
        for name in event.removed:
            held.pop(name, None)
        for node_id, wanted, future in self._waiters:
            if not future.done() and self._holds(node_id, wanted):
                future.set_result(time.perf_counter())

    def _holds(self, node_id: str, wanted: dict[str, dict[str, str]]) -> bool:
        return all(self._held.get((node_id, type_url)) == versions for type_url, versions in wanted.items())

    async def until(self, node_id: str, snapshot: Snapshot) -> float:
        """perf_counter() of the ACK that completed `snapshot` for `node_id`."""
        wanted = {t: {name: r.version for name, r in snapshot.get(t).items()} for t in _TYPES}
        if self._holds(node_id, wanted):
            return time.perf_counter()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        entry = (node_id, wanted, future)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(future, _TIMEOUT)
        finally:
            self._waiters.remove(entry)


async def _envoy_ready(envoy: EnvoyProcess, clusters: int) -> float:
    """perf_counter() once Envoy is LIVE with `clusters` active clusters."""

    def wait() -> float:
        envoy.wait_ready(timeout=_TIMEOUT, poll_seconds=0.002)
        while (
            envoy.stats(filter_regex="^cluster_manager.active_clusters$")["cluster_manager.active_clusters"]
            < clusters
        ):
            time.sleep(0.002)
        return time.perf_counter()

    return await asyncio.to_thread(wait)


async def _time_static(config: _Config) -> float:
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
    config: _Config,
    snapshot: Snapshot,
    delta: bool,
    run: str,
) -> tuple[float, tuple[float, float]]:
    """Fresh-Envoy convergence time, plus push-to-ACK of one and of all changed load assignments."""
    cache.set_snapshot(snapshot)
    node_id = f"bench-{run}"
    bootstrap = render_bootstrap(xds_address=f"127.0.0.1:{port}", delta=delta, node_id=node_id, admin_port=0)
    envoy = EnvoyProcess(bootstrap_yaml=bootstrap)
    try:
        started = time.perf_counter()
        envoy.start()
        acked, ready = await asyncio.gather(
            acks.until(node_id, snapshot), _envoy_ready(envoy, config.size + 1)
        )
        converged = max(acked, ready) - started
        pushes = []
        for changed_snapshot in (
            config.snapshot(endpoint_offset=1, changed=0),
            config.snapshot(endpoint_offset=2),
        ):
            pushed = time.perf_counter()
            cache.set_snapshot(changed_snapshot)
            pushes.append(await acks.until(node_id, changed_snapshot) - pushed)
        return converged, (pushes[0], pushes[1])
    finally:
        envoy.stop()


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


async def _bench(sizes: Sequence[int], repeat: int) -> list[dict[str, float]]:
    cache = SnapshotCache()
    acks = Acks()
    server = XdsServer(cache=cache, settings=XdsSettings(debounce_seconds=0.0))
    server.add_observer(acks)
    port = await server.start()
    rows = []
    try:
        for size in sizes:
            config = _Config(size=size, listener_port=free_port())
            built = time.perf_counter()
            snapshot = config.snapshot()
            row: dict[str, float] = {"clusters": size, "snapshot_build_s": time.perf_counter() - built}
            row["static_s"] = _median([await _time_static(config) for _ in range(repeat)])
            for mode in ("sotw", "delta"):
                results = [
                    await _time_ads(
                        cache=cache,
                        acks=acks,
                        port=port,
                        config=config,
                        snapshot=snapshot,
                        delta=mode == "delta",
                        run=f"{mode}-{size}-{attempt}",
                    )
                    for attempt in range(repeat)
                ]
                row[f"{mode}_s"] = _median([converged for converged, _ in results])
                row[f"{mode}_ratio"] = row[f"{mode}_s"] / row["static_s"]
                row[f"{mode}_push_one_ms"] = 1000 * _median([one for _, (one, _) in results])
                row[f"{mode}_push_all_ms"] = 1000 * _median([every for _, (_, every) in results])
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        await server.stop(grace_seconds=1)
    return rows


def _table(rows: Sequence[dict[str, float]]) -> str:
    header = (
        "clusters | static s | SotW s (ratio) | Delta s (ratio) | push 1 EDS SotW/Delta ms | "
        "push all EDS SotW/Delta ms | snapshot build s"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            " | ".join(
                (
                    f"{int(row['clusters']):>8}",
                    f"{row['static_s']:8.3f}",
                    f"{row['sotw_s']:6.3f} ({row['sotw_ratio']:.2f})",
                    f"{row['delta_s']:7.3f} ({row['delta_ratio']:.2f})",
                    f"{row['sotw_push_one_ms']:11.1f} / {row['delta_push_one_ms']:.1f}",
                    f"{row['sotw_push_all_ms']:12.1f} / {row['delta_push_all_ms']:.1f}",
                    f"{row['snapshot_build_s']:.3f}",
                )
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated cluster counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (the median is shown)")
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = asyncio.run(_bench(sizes, args.repeat))
    print(_table(rows))


if __name__ == "__main__":
    main()
