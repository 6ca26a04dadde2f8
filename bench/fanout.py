"""Row 4 of the benchmarks: one change reaching many proxies at once.

Our xDS server (in this process) serves N clusters (``bench.clusters.ClusterConfig``) to 100 gRPC clients
that behave like Envoy on ADS (subscribe to clusters and listeners, then to every cluster's load assignment
and the route configuration, ACK every response; they run in a child process so their work does not share
this process's GIL) plus a few real Envoys. Then one load assignment changes, `changes` times; for each
change the time from ``set_snapshot`` until every node (clients and Envoys) has ACKed it is taken from the
server's own ACK events. Reported p50/p99 of "all ACKed" and of single nodes' ACKs, SotW and Delta, and
the p99 over changes of the server loop's worst stall during one (how late a 1 ms timer fired at worst,
``bench.loop_canary``; also less the time it waited for a processor). A state-of-the-world proxy is sent
every load assignment again on each change: with ``--clusters 2000`` or more, every SotW stream serialises a
large response at once. Goal: all ACKed <= 1 s p99. Not a test.

    .venv/bin/python -m bench.fanout [--clients 100] [--envoys 3] [--clusters 1000] [--changes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Sequence

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from bench.acks import Acks
from bench.clusters import ClusterConfig
from bench.loop_canary import LoopCanary
from bench.report import Chart, Series, Table, percentile, render_text
from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.devtools.procutil import dying_with_parent
from controlplane.log import configure_logging
from controlplane.xds.cache import SnapshotCache
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE
from controlplane.xds.server import XdsServer, XdsSettings

ROUTE_NAME = "bench"  # ClusterConfig's route configuration


async def _requests(queue: asyncio.Queue[object]) -> AsyncIterator[object]:
    while True:
        yield await queue.get()


async def _sotw_client(stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub, node: base_pb2.Node) -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    names: dict[str, list[str]] = {CLUSTER: [], LISTENER: [], ENDPOINT: [], ROUTE: []}
    request = discovery_pb2.DiscoveryRequest
    queue.put_nowait(request(node=node, type_url=CLUSTER))
    queue.put_nowait(request(type_url=LISTENER))
    async for response in stub.StreamAggregatedResources(_requests(queue)):
        type_url = response.type_url
        queue.put_nowait(
            request(
                type_url=type_url,
                version_info=response.version_info,
                response_nonce=response.nonce,
                resource_names=names[type_url],
            )
        )
        if type_url == CLUSTER:
            clusters = sorted(cluster_pb2.Cluster.FromString(item.value).name for item in response.resources)
            if clusters != names[ENDPOINT]:
                names[ENDPOINT] = clusters
                queue.put_nowait(request(type_url=ENDPOINT, resource_names=clusters))
        elif type_url == LISTENER and not names[ROUTE]:
            names[ROUTE] = [ROUTE_NAME]
            queue.put_nowait(request(type_url=ROUTE, resource_names=names[ROUTE]))


async def _delta_client(stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub, node: base_pb2.Node) -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    endpoints: set[str] = set()
    request = discovery_pb2.DeltaDiscoveryRequest
    queue.put_nowait(request(node=node, type_url=CLUSTER))
    queue.put_nowait(request(type_url=LISTENER))
    async for response in stub.DeltaAggregatedResources(_requests(queue)):
        queue.put_nowait(request(type_url=response.type_url, response_nonce=response.nonce))
        if response.type_url == CLUSTER:
            new = {resource.name for resource in response.resources} - endpoints
            if new:
                endpoints |= new
                queue.put_nowait(request(type_url=ENDPOINT, resource_names_subscribe=sorted(new)))
        elif response.type_url == LISTENER and response.resources:
            queue.put_nowait(request(type_url=ROUTE, resource_names_subscribe=[ROUTE_NAME]))


async def run_clients(*, port: int, count: int, delta: bool, prefix: str) -> None:
    """`count` ADS clients on one channel each, until killed."""
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(count)]
    client = _delta_client if delta else _sotw_client
    await asyncio.gather(
        *(
            client(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel), base_pb2.Node(id=f"{prefix}{index}"))
            for index, channel in enumerate(channels)
        )
    )


async def _fanout(
    *, clients: int, envoys: int, clusters: int, changes: int, delta: bool
) -> dict[str, list[float]]:
    cache = SnapshotCache()
    acks = Acks()
    server = XdsServer(cache=cache, settings=XdsSettings(debounce_seconds=0.0))
    server.add_observer(acks)
    port = await server.start()
    config = ClusterConfig(size=clusters, listener_port=0)  # each Envoy binds a port of its own
    base = config.snapshot()
    cache.set_snapshot(base)
    mode = "delta" if delta else "sotw"
    prefix = f"client-{mode}-"
    nodes = [f"{prefix}{index}" for index in range(clients)]
    clients_command = [sys.executable, "-m", "bench.fanout", "--serve-clients", str(port)]
    clients_command += ["--clients", str(clients), "--prefix", prefix, *(["--delta"] if delta else [])]
    # The kernel stops the clients if we die.
    child = await asyncio.create_subprocess_exec(*dying_with_parent(clients_command))
    proxies: list[EnvoyProcess] = []
    canary = LoopCanary()
    canary_task = asyncio.create_task(canary.run())
    try:
        for index in range(envoys):
            node_id = f"envoy-{mode}-{index}"
            bootstrap = render_bootstrap(
                xds_address=f"127.0.0.1:{port}", delta=delta, node_id=node_id, admin_port=0
            )
            proxies.append(EnvoyProcess(bootstrap_yaml=bootstrap, log_level="error").start())
            nodes.append(node_id)
        await acks.until_each(nodes, base)
        all_acked: list[float] = []
        each: list[float] = []
        stalls: list[float] = []
        own_stalls: list[float] = []
        for step in range(changes):
            changed = config.snapshot(endpoint_offset=step + 1, changed=step % clusters)
            # Checked here, as whoever builds a snapshot off the server's loop does: set_snapshot then finds
            # it done, and the loop's stall during the change is the server's (this check held it 15-20 ms).
            changed.consistency_problems()
            await asyncio.sleep(0.01)  # the canary's tick made late by building the snapshot fires before
            canary.reset()
            started = time.perf_counter()
            cache.set_snapshot(changed)
            times = await acks.until_each(nodes, changed)
            worst = canary.reset()
            stalls.append(worst.late_s)
            own_stalls.append(worst.late_s - (worst.waiting_s or 0.0))
            each += [moment - started for moment in times]
            all_acked.append(max(times) - started)
        return {"all": all_acked, "each": each, "stall": stalls, "own stall": own_stalls}
    finally:
        canary_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await canary_task
        for proxy in proxies:
            proxy.stop()
        child.kill()
        await child.wait()
        await server.stop(grace_seconds=1)


def measure(*, clients: int, envoys: int, clusters: int, changes: int) -> Table:
    table = Table(
        rows_of_issue="4",
        title=f"One change seen by {clients} ADS clients and {envoys} Envoys ({clusters:,} clusters)",
        columns=[
            "mode",
            "changes",
            "all ACKed p50 ms",
            "all ACKed p99 ms",
            "one node p50 ms",
            "one node p99 ms",
            "loop stall p99 ms",
            "not waiting for a CPU",
        ],
        notes=[
            "From set_snapshot (one load assignment changed) until the server has seen every node's ACK. "
            "Clients run in one child process (Python, grpc.aio). Goal: all ACKed <= 1 s p99. "
            "Loop stall: the worst lateness of a 1 ms timer on the server's loop during a change; and that "
            "less the part of it the loop's thread waited for a processor.",
        ],
    )
    chart = Chart(
        name="row4_fanout",
        title="One change to every node: time until each node ACKed",
        x_label="ms",
        y_label="percentile",
        kind="cdf",
    )
    for delta in (False, True):
        times = asyncio.run(
            _fanout(clients=clients, envoys=envoys, clusters=clusters, changes=changes, delta=delta)
        )
        all_ms = [1000 * value for value in times["all"]]
        each_ms = [1000 * value for value in times["each"]]
        table.rows.append(
            [
                "Delta" if delta else "SotW",
                changes,
                percentile(all_ms, 0.5),
                percentile(all_ms, 0.99),
                percentile(each_ms, 0.5),
                percentile(each_ms, 0.99),
                percentile([1000 * value for value in times["stall"]], 0.99),
                percentile([1000 * value for value in times["own stall"]], 0.99),
            ]
        )
        fractions = [1, 5, 10, 25, 50, 75, 90, 95, 99, 100]
        chart.series.append(
            Series(
                "Delta" if delta else "SotW",
                [percentile(each_ms, fraction / 100) for fraction in fractions],
                [float(fraction) for fraction in fractions],
            )
        )
    table.charts.append(chart)
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--envoys", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--serve-clients", type=int, help=argparse.SUPPRESS)  # the child: server's port
    parser.add_argument("--prefix", default="client-", help=argparse.SUPPRESS)
    parser.add_argument("--delta", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_clients:
        asyncio.run(
            run_clients(port=args.serve_clients, count=args.clients, delta=args.delta, prefix=args.prefix)
        )
        return
    configure_logging(json=False, level="warning")
    table = measure(clients=args.clients, envoys=args.envoys, clusters=args.clusters, changes=args.changes)
    print(render_text(table))


if __name__ == "__main__":
    main()
