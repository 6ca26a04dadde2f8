"""A stream plans again only the names that may have changed since its last plan: its responses are
byte for byte those of a stream that plans every name each time, through random snapshot changes, ACKs,
NACKs and subscription changes, in both protocol variants. The same holds for plans made in a worker thread
(what a large plan does) against plans made on the loop."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE, TYPE_URLS
from controlplane.xds.server import thread_work
from controlplane.xds.server.delta import DeltaStream
from controlplane.xds.server.metrics import XdsMetrics
from controlplane.xds.server.sotw import SotwStream
from controlplane.xds.server.stream import Stream, StreamServices, StreamSettings
from tests import xds_builders

CLUSTERS = 30
STEPS = 60


class _Writes:
    """The gRPC context's ``write``: keeps what the stream sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def write(self, payload: bytes) -> None:
        self.sent.append(payload)


class _World:
    """The snapshots a control plane would publish: clusters with their load assignments and one route
    configuration using them all, changed at random in place (most changes) or by adding a cluster."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._ports = {f"c{index:03}": 9000 + index for index in range(CLUSTERS)}
        self._timeouts = dict.fromkeys(self._ports, 1.0)
        self.snapshot = self._build(previous=None)

    def change(self) -> None:
        names = sorted(self._ports)
        roll = self._rng.random()
        if roll < 0.6:
            for name in self._rng.sample(names, self._rng.randint(1, 3)):
                self._ports[name] += 1
        elif roll < 0.8:
            self._timeouts[self._rng.choice(names)] += 1.0
        elif roll < 0.9:
            added = f"c{len(names):03}"
            self._ports[added], self._timeouts[added] = 9000, 1.0
        self.snapshot = self._build(previous=self.snapshot)

    def _build(self, *, previous: Snapshot | None) -> Snapshot:
        names = sorted(self._ports)
        messages = {
            LISTENER: [xds_builders.http_listener("listener", port=10000, rds_name="routes")],
            ROUTE: [xds_builders.route_configuration("routes", routes=[(f"/{n}", n) for n in names])],
            CLUSTER: [xds_builders.eds_cluster(n, connect_timeout_seconds=self._timeouts[n]) for n in names],
            ENDPOINT: [
                xds_builders.load_assignment(n, socket_endpoints=[("127.0.0.1", self._ports[n])])
                for n in names
            ],
        }
        built = {
            type_url: [XdsResource.build(type_url, message) for message in typed]
            for type_url, typed in messages.items()
        }
        return Snapshot.from_built(built, previous=previous)


class _Proxy:
    """One stream and what a proxy tells it, replayed on a twin that forgets its plans before each push."""

    def __init__(self, stream: Stream, *, forgets: bool) -> None:
        self.stream = stream
        self.forgets = forgets
        self.writes = _Writes()

    async def request(self, request: Any) -> None:
        await self.stream._handle(request.SerializeToString())

    async def push(self, cache: SnapshotCache) -> list[bytes]:
        self.stream._refresh()
        if self.forgets:
            for state in self.stream.state.types.values():
                state.forget_plan()
        before = len(self.writes.sent)
        await self.stream._push(self.writes)
        return self.writes.sent[before:]


def _request(mode: str, type_url: str, **fields: Any) -> Any:
    if mode == "delta":
        return discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, **fields)
    return discovery_pb2.DiscoveryRequest(type_url=type_url, **fields)


def _answer(mode: str, payload: bytes, *, nack: bool, names: dict[str, set[str]]) -> Any:
    """The proxy's ACK or NACK of one response (SotW requests repeat the subscribed names)."""
    response: Any = (
        discovery_pb2.DeltaDiscoveryResponse if mode == "delta" else discovery_pb2.DiscoveryResponse
    ).FromString(payload)
    fields: dict[str, Any] = {"response_nonce": response.nonce}
    if nack:
        fields["error_detail"] = status_pb2.Status(code=3, message="refused")
    if mode == "sotw":
        fields["resource_names"] = sorted(names.get(response.type_url, ()))
    return _request(mode, response.type_url, **fields)


async def _replay(mode: str, seed: int) -> list[bytes]:
    """Every response the streams sent, in order (the twins' are compared on the way)."""
    rng = random.Random(seed)
    world = _World(rng)
    cache = SnapshotCache()
    cache.set_snapshot(world.snapshot)
    services = StreamServices(
        cache=cache,
        metrics=XdsMetrics(),
        settings=StreamSettings(debounce_seconds=0.0, listener_drain_seconds=0.0),
        observers=(),
    )
    stream_class = DeltaStream if mode == "delta" else SotwStream
    proxies = [
        _Proxy(stream_class(stream_id=index, services=services), forgets=forgets)
        for index, forgets in enumerate((False, True))
    ]
    names = {ENDPOINT: set(world.snapshot.get(ENDPOINT)), ROUTE: {"routes"}}
    node = {"node": {"id": "proxy", "cluster": "test"}}
    for type_url in TYPE_URLS:
        subscribed = sorted(names.get(type_url, ()))
        fields = (
            {"resource_names_subscribe": subscribed} if mode == "delta" else {"resource_names": subscribed}
        )
        for proxy in proxies:
            await proxy.request(_request(mode, type_url, **fields, **node))
    responses: list[bytes] = []
    for _ in range(STEPS):
        sent = [await proxy.push(cache) for proxy in proxies]
        assert sent[0] == sent[1]
        responses.extend(sent[0])
        for payload in sent[0]:
            answer = _answer(mode, payload, nack=rng.random() < 0.1, names=names)
            for proxy in proxies:
                await proxy.request(answer)
        if rng.random() < 0.2:
            # The proxy drops a load assignment and asks for it again later (or for a new one).
            name = rng.choice(sorted(world.snapshot.get(ENDPOINT)))
            names[ENDPOINT] ^= {name}
            fields = (
                {"resource_names": sorted(names[ENDPOINT])}
                if mode == "sotw"
                else {
                    "resource_names_subscribe" if name in names[ENDPOINT] else "resource_names_unsubscribe": [
                        name
                    ]
                }
            )
            for proxy in proxies:
                await proxy.request(_request(mode, ENDPOINT, **fields))
        if rng.random() < 0.7:
            world.change()
            cache.set_snapshot(world.snapshot)
    return responses


@pytest.mark.parametrize("mode", ["delta", "sotw"])
@pytest.mark.parametrize("seed", range(4))
def test_planning_what_changed_sends_what_planning_everything_sends(mode: str, seed: int) -> None:
    compared = asyncio.run(_replay(mode, seed))
    assert len(compared) > STEPS / 2  # responses were made and compared, not just none on both sides


@pytest.mark.parametrize("mode", ["delta", "sotw"])
def test_plans_made_in_a_worker_thread_send_what_plans_on_the_loop_send(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_the_loop = asyncio.run(_replay(mode, seed=7))
    planned_in: set[int] = set()
    plan = Stream._planned_response

    def recording(self: Stream, *args: Any) -> Any:
        planned_in.add(threading.get_ident())
        return plan(self, *args)

    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", 0)
    monkeypatch.setattr(Stream, "_planned_response", recording)
    in_threads = asyncio.run(_replay(mode, seed=7))
    assert planned_in
    assert threading.get_ident() not in planned_in
    assert len(on_the_loop) > STEPS / 2
    assert in_threads == on_the_loop
