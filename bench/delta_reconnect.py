"""What a Delta proxy's reconnect costs the server's event loop: a client that says it holds N clusters and N
load assignments (``initial_resource_versions``, as Envoy does after a control plane restart), some of them
at a stale version, asks again and ACKs the answers. With ``--sotw`` the proxy speaks state of the world
instead: it reports the ``version_info`` of each type it holds (a stale one when ``--changed`` is not 0)
and names every load assignment, as Envoy does.

The client runs in a process of its own (this module with ``--client``), so the server's loop shares the
interpreter with nothing but its own work. Per reconnect, taken on the server:

- **loop stall**: the worst lateness of a 1 ms timer on the loop (as ``bench.scale`` measures it), and how
  much of that tick the loop's thread waited for a processor (``bench.loop_canary``);
- **loop CPU**: processor time of the loop's thread from the client's go to its last ACK (the timer's own
  wake-ups included: the idle figure printed first is what they cost in a second);
- **teardown**: the same two from the last ACK until the server has let the stream go (the client ends it
  0.2 s after its ACKs).

Not a test: the figures depend on the machine.

    .venv/bin/python -m bench.delta_reconnect [--resources 10000 | --routes 5000] [--changed 0.0]
        [--reconnects 10] [--sotw]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import sys
import tempfile
import time
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from bench.loop_canary import LoopCanary
from bench.scale_manifests import objects_in, write_manifests
from controlplane.heap import building_configuration
from controlplane.pipeline import Translator
from controlplane.sources.file_reading import FileLimits
from controlplane.sources.files import FileSource
from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.content import content_version, versions
from controlplane.xds.resource import CLUSTER, ENDPOINT, TYPE_URLS, short_type_name
from controlplane.xds.server import XdsServer, XdsSettings
from tests import xds_builders

_SERVICE = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
_LIMIT = 256 * 1024 * 1024


def _snapshot(*, resources: int, routes: int) -> Snapshot:
    """``routes`` AIGatewayRoutes of ``bench.scale_manifests`` translated (when not 0), else ``resources``
    clusters with a load assignment each."""
    if routes:
        with tempfile.TemporaryDirectory() as folder:
            write_manifests(Path(folder), routes, gateway_port=10080)
            with building_configuration():
                loaded = FileSource([Path(folder)], limits=FileLimits(max_objects=objects_in(routes))).load()
                return Translator().snapshot(loaded.resource_set()).snapshot
    names = [f"cluster-{index:05d}" for index in range(resources)]
    return Snapshot.from_resources(
        clusters=[xds_builders.eds_cluster(name) for name in names],
        endpoints=[
            xds_builders.load_assignment(name, socket_endpoints=[("127.0.0.1", 20000 + index % 40000)])
            for index, name in enumerate(names)
        ],
    )


def _client(port: int, held_file: Path, changed: float, *, sotw: bool) -> None:
    """On each line of stdin: one reconnect (both types, with what ``held_file`` says is held), ACKed; then
    a line with the names and resources it was sent."""
    reported = json.loads(held_file.read_text())
    held: dict[str, dict[str, str]] = reported["held"]
    every = round(1 / changed) if changed else 0
    for type_url in held:
        for index, name in enumerate(sorted(held[type_url])):
            if every and index % every == 0:
                held[type_url][name] = "stale"
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.max_receive_message_length", _LIMIT), ("grpc.max_send_message_length", _LIMIT)],
    )
    node = base_pb2.Node(id="reconnecting", cluster="bench")
    method = _SERVICE + ("StreamAggregatedResources" if sotw else "DeltaAggregatedResources")
    for _ in sys.stdin:
        requests = (
            _sotw_requests(node, reported, changed=changed)
            if sotw
            else [
                discovery_pb2.DeltaDiscoveryRequest(
                    node=node, type_url=CLUSTER, initial_resource_versions=held[CLUSTER]
                ),
                discovery_pb2.DeltaDiscoveryRequest(
                    type_url=ENDPOINT,
                    resource_names_subscribe=sorted(held[ENDPOINT]),
                    initial_resource_versions=held[ENDPOINT],
                ),
            ]
        )
        outgoing: list[bytes | None] = [request.SerializeToString() for request in requests]
        answers: list[bytes | None] = []

        def sent(outgoing: list[bytes | None] = outgoing, answers: list[bytes | None] = answers) -> Any:
            yield from (item for item in outgoing if item is not None)
            while not answers:  # the ACKs, once both responses are in
                time.sleep(0.001)
            yield from (item for item in answers if item is not None)

        call = channel.stream_stream(method)(sent(), timeout=120)
        received, answered = [], []
        for raw in call:
            if sotw:
                sotw_response = discovery_pb2.DiscoveryResponse.FromString(raw)
                received.append((sotw_response.type_url, len(sotw_response.resources), 0))
                answered.append(_sotw_ack(sotw_response, requests).SerializeToString())
            else:
                response = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)
                received.append((response.type_url, len(response.resources), len(response.removed_resources)))
                answered.append(
                    discovery_pb2.DeltaDiscoveryRequest(
                        type_url=response.type_url, response_nonce=response.nonce
                    ).SerializeToString()
                )
            if len(received) == len(requests):
                answers.extend(answered)
                break
        print(json.dumps(received), flush=True)
        time.sleep(0.2)  # the ACKs reach the server before the stream ends
        call.cancel()


def _sotw_requests(node: base_pb2.Node, reported: Any, *, changed: float) -> list[Any]:
    """A state-of-the-world proxy's first requests after a reconnect: the version it holds of each type
    (any stale resource makes it a version the server never sent) and every load assignment by name."""
    version_info = {
        type_url: "stale" if changed else version for type_url, version in reported["version_info"].items()
    }
    return [
        discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER, version_info=version_info[CLUSTER]),
        discovery_pb2.DiscoveryRequest(
            type_url=ENDPOINT,
            resource_names=sorted(reported["held"][ENDPOINT]),
            version_info=version_info[ENDPOINT],
        ),
    ]


def _sotw_ack(response: Any, requests: list[Any]) -> Any:
    """The ACK of a state-of-the-world response: it names the same resources as the request it answers."""
    (asked,) = (request for request in requests if request.type_url == response.type_url)
    return discovery_pb2.DiscoveryRequest(
        type_url=response.type_url,
        version_info=response.version_info,
        resource_names=asked.resource_names,
        response_nonce=response.nonce,
    )


async def _measure(snapshot: Snapshot, changed: float, reconnects: int, *, sotw: bool) -> None:
    cache = SnapshotCache()
    cache.set_snapshot(snapshot)
    server = XdsServer(cache=cache, settings=XdsSettings(max_message_bytes=_LIMIT))
    acks: list[object] = []
    acked = asyncio.Event()

    def observe(event: Any) -> None:
        if event.kind == "ack":
            acks.append(event)
            acked.set()

    server.add_observer(observe)
    port = await server.start()
    canary = LoopCanary()
    canary_task = asyncio.create_task(canary.run())
    with tempfile.TemporaryDirectory() as workdir:
        held_file = Path(workdir) / "held.json"
        types = (CLUSTER, ENDPOINT)
        reported = {
            "held": {type_url: versions(snapshot.get(type_url)) for type_url in types},
            "version_info": {type_url: content_version(snapshot.get(type_url)) for type_url in types},
        }
        held_file.write_text(json.dumps(reported))
        arguments = ["--client", str(port), str(held_file), "--changed", str(changed)]
        arguments += ["--sotw"] if sotw else []
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.delta_reconnect", *arguments, stdin=PIPE, stdout=PIPE
        )
        assert client.stdin is not None
        assert client.stdout is not None
        try:
            await asyncio.sleep(1)
            canary.reset()
            cpu = time.thread_time()
            await asyncio.sleep(1)
            idle_cpu, idle_stall = time.thread_time() - cpu, canary.reset()
            print(f"idle 1 s: loop CPU {idle_cpu * 1000:.1f} ms, stall {idle_stall.describe()}")
            rows = []
            for _ in range(reconnects):
                expected = len(acks) + 2
                canary.reset()
                cpu, started = time.thread_time(), time.perf_counter()
                client.stdin.write(b"go\n")
                await client.stdin.drain()
                received = await client.stdout.readline()
                while len(acks) < expected:
                    acked.clear()
                    await acked.wait()
                stall = canary.reset()
                row = (stall.late_s, time.thread_time() - cpu, time.perf_counter() - started)
                cpu = time.thread_time()
                while server.stream_count:  # noqa: ASYNC110 - nothing signals a stream's end
                    await asyncio.sleep(0.01)
                teardown = canary.reset()
                rows.append((*row, teardown.late_s, time.thread_time() - cpu))
                print(
                    f"stall {stall.describe()}  loop CPU {row[1] * 1000:6.1f} ms  "
                    f"wall {row[2] * 1000:6.1f} ms  teardown stall {teardown.describe()}, "
                    f"CPU {rows[-1][4] * 1000:6.1f} ms  sent {received.decode().strip()}"
                )
                await asyncio.sleep(0.1)
            columns = ("stall", "loop CPU", "wall", "teardown stall", "teardown loop CPU")
            for column, label in enumerate(columns):
                values = [row[column] * 1000 for row in rows]
                print(f"{label}: median {statistics.median(values):.1f} ms, max {max(values):.1f} ms")
        finally:
            client.stdin.close()
            await client.wait()
            canary_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await canary_task
            await server.stop(grace_seconds=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--resources", type=int, default=10_000, help="clusters (and as many load assignments)"
    )
    parser.add_argument(
        "--changed", type=float, default=0.0, help="share the client holds at a stale version"
    )
    parser.add_argument("--routes", type=int, default=0, help="a translated configuration instead")
    parser.add_argument("--reconnects", type=int, default=10)
    parser.add_argument(
        "--sotw", action="store_true", help="a state-of-the-world proxy instead of a delta one"
    )
    parser.add_argument("--client", nargs=2, metavar=("PORT", "HELD_FILE"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.client:
        _client(int(arguments.client[0]), Path(arguments.client[1]), arguments.changed, sotw=arguments.sotw)
        return
    snapshot = _snapshot(resources=arguments.resources, routes=arguments.routes)
    sizes = ", ".join(f"{len(snapshot.get(type_url))} {short_type_name(type_url)}" for type_url in TYPE_URLS)
    print(f"snapshot: {sizes}")
    gc.freeze()  # as ``serve`` does once a configuration is built (``controlplane.heap``)
    asyncio.run(_measure(snapshot, arguments.changed, arguments.reconnects, sotw=arguments.sotw))


if __name__ == "__main__":
    main()
