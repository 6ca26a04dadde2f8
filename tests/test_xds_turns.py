"""The loop gets control between streams while one change reaches many of them (``xds/server/turns.py``).

Turns are given one a loop round, first come first served, and a waiter cancelled meanwhile is skipped; a
loop that ended with turns owed leaves nothing that holds up the next loop's.
Streams driven in process (no gRPC, each proxy ACKing every response as it is written) for both protocol
variants: when one load assignment changes, a callback scheduled on the loop as the first stream is sent the
change runs before the last stream is, and every stream is sent the change and ACKs it; a change to two
types is sent and ACKed in the order of types. A recording ``Turns`` names who waits for each turn: a stream
after a write (once, not once per type planned after it), after a plan made in a worker thread, and a
response before each slice after its first. Nothing is timed: the order of what ran is compared.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE
from controlplane.xds.server import thread_work
from controlplane.xds.server.delta import DeltaStream
from controlplane.xds.server.events import XdsEvent
from controlplane.xds.server.metrics import XdsMetrics
from controlplane.xds.server.reply import PackedEntries, Reply
from controlplane.xds.server.sotw import SotwStream
from controlplane.xds.server.stream import Stream, StreamServices, StreamSettings
from controlplane.xds.server.turns import Turns
from tests import xds_builders

_STREAMS = 6
_NAMES = ("first", "second", "third")
_ROUNDS = 10_000
"""Loop rounds a test lets pass for what it waits for before it fails rather than hangs (not a time)."""


async def _rounds_until(done: Callable[[], bool]) -> None:
    for _ in range(_ROUNDS):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("not done after many loop rounds")


def test_turns_are_given_one_a_round_in_the_order_asked_skipping_the_cancelled() -> None:
    async def run() -> list[str]:
        turns = Turns()
        ran: list[str] = []

        async def take(name: str) -> None:
            await turns.take()
            ran.append(name)

        def each_round() -> None:
            ran.append("round")
            if len(ran) < 12:
                asyncio.get_running_loop().call_soon(each_round)

        tasks = [asyncio.create_task(take(name)) for name in ("a", "b", "c", "d")]
        await asyncio.sleep(0)  # every task is waiting for its turn
        tasks[1].cancel()
        asyncio.get_running_loop().call_soon(each_round)
        await asyncio.gather(*tasks, return_exceptions=True)
        await _rounds_until(lambda: len(ran) >= 12)
        return ran

    ran = asyncio.run(run())
    turns = [name for name in ran if name != "round"]
    assert turns == ["a", "c", "d"]
    # Between two turns, the loop ran at least one round of everything else.
    positions = [ran.index(name) for name in turns]
    assert all("round" in ran[before + 1 : after] for before, after in itertools.pairwise(positions))


def test_turns_are_given_on_a_new_loop_when_the_old_one_ended_with_turns_owed() -> None:
    turns = Turns()
    old = asyncio.new_event_loop()

    async def leave_a_waiter() -> None:
        asyncio.get_running_loop().create_task(turns.take())  # the grant it schedules never runs

    old.run_until_complete(leave_a_waiter())
    old.close()

    async def take_a_turn() -> None:
        taking = asyncio.create_task(turns.take())
        await _rounds_until(taking.done)

    asyncio.run(take_a_turn())


class _RecordingTurns(Turns):
    """Turns that record who took each: the qualified name of the function awaiting it."""

    def __init__(self) -> None:
        super().__init__()
        self.takers: list[str] = []

    async def take(self) -> None:
        self.takers.append(sys._getframe(1).f_code.co_qualname)
        await super().take()


_ROUTES = "routes"
_SUBSCRIBED: dict[str, list[str]] = {CLUSTER: [], ENDPOINT: sorted(_NAMES)}
_ROUTED: dict[str, list[str]] = {**_SUBSCRIBED, LISTENER: [], ROUTE: [_ROUTES]}
"""What a proxy subscribes to (type -> names): load balancing only, or with a listener and its routes."""


class _Proxy:
    """The gRPC context's ``write`` and the proxy behind it: every response is ACKed at once."""

    def __init__(self, mode: str, *, subscribed: dict[str, list[str]]) -> None:
        self.mode = mode
        self.subscribed = subscribed
        self.requests: asyncio.Queue[bytes] = asyncio.Queue()
        for type_url, names in subscribed.items():
            self.requests.put_nowait(self._request(type_url, names=names, node=True))

    async def write(self, payload: bytes) -> None:
        response: Any  # generated classes are untyped
        if self.mode == "sotw":
            response = discovery_pb2.DiscoveryResponse.FromString(payload)
            names = self.subscribed[response.type_url]
            ack = self._request(
                response.type_url, names=names, version=response.version_info, nonce=response.nonce
            )
        else:
            response = discovery_pb2.DeltaDiscoveryResponse.FromString(payload)
            ack = self._request(response.type_url, names=[], nonce=response.nonce)
        self.requests.put_nowait(ack)

    def _request(
        self, type_url: str, *, names: list[str], node: bool = False, version: str = "", nonce: str = ""
    ) -> bytes:
        fields: dict[str, Any] = {"type_url": type_url, "response_nonce": nonce}
        if node:
            fields["node"] = {"id": f"proxy-{id(self)}", "cluster": "test"}
        if self.mode == "sotw":
            message: Any = discovery_pb2.DiscoveryRequest(
                resource_names=names, version_info=version, **fields
            )
        else:
            message = discovery_pb2.DeltaDiscoveryRequest(resource_names_subscribe=names, **fields)
        serialized: bytes = message.SerializeToString()
        return serialized

    async def requests_in(self) -> AsyncIterator[bytes]:
        while True:
            yield await self.requests.get()


def _snapshot(port: int, *, previous: Snapshot | None, prefix: str = "/") -> Snapshot:
    """Three clusters, the first one's load assignment on ``port``; a listener whose routes send ``prefix``
    to the first."""
    listener = xds_builders.http_listener("in", port=8080, rds_name=_ROUTES)
    routes = xds_builders.route_configuration(_ROUTES, routes=[(prefix, _NAMES[0])])
    built = {
        LISTENER: [XdsResource.build(LISTENER, listener)],
        ROUTE: [XdsResource.build(ROUTE, routes)],
        CLUSTER: [XdsResource.build(CLUSTER, xds_builders.eds_cluster(name)) for name in _NAMES],
        ENDPOINT: [
            XdsResource.build(
                ENDPOINT,
                xds_builders.load_assignment(
                    name, socket_endpoints=[("127.0.0.1", port if index == 0 else 9)]
                ),
            )
            for index, name in enumerate(_NAMES)
        ],
    }
    return Snapshot.from_built(built, previous=previous)


async def _fleet_push(
    mode: str, *, turns: _RecordingTurns, subscribed: dict[str, list[str]] = _SUBSCRIBED, prefix: str = "/"
) -> list[str]:
    """What ran, in order, from the change on (the first load assignment's port; the routes' ``prefix``):
    each stream's push and ACK (by node) and the callback; ``turns`` recorded who took a turn since."""
    loop = asyncio.get_running_loop()
    cache = SnapshotCache()
    snapshot = _snapshot(10, previous=None)
    cache.set_snapshot(snapshot)
    ran: list[str] = []
    changing = False

    def observe(event: XdsEvent) -> None:
        if not changing:
            return
        if event.kind == "push" and not any(entry.startswith("push") for entry in ran):
            loop.call_soon(ran.append, "callback")
        ran.append(f"{event.kind} {event.node_id} {event.type_url}")

    services = StreamServices(
        cache=cache,
        metrics=XdsMetrics(),
        settings=StreamSettings(debounce_seconds=0.0, listener_drain_seconds=0.0),
        observers=(observe,),
        turns=turns,
    )
    kind: Callable[..., Stream] = SotwStream if mode == "sotw" else DeltaStream
    streams = [kind(stream_id=index, services=services) for index in range(_STREAMS)]
    proxies = [_Proxy(mode, subscribed=subscribed) for _ in streams]
    runs: list[Awaitable[None]] = [
        asyncio.create_task(stream.run(proxy.requests_in(), proxy))
        for stream, proxy in zip(streams, proxies, strict=True)
    ]

    def settled() -> bool:
        return all(
            state.subscribed and state.in_flight is None and state.acked
            for stream in streams
            for state in map(stream.state.types.__getitem__, subscribed)
        ) and all(proxy.requests.empty() for proxy in proxies)

    try:
        await _rounds_until(settled)
        changing = True
        turns.takers.clear()
        cache.set_snapshot(_snapshot(11, previous=snapshot, prefix=prefix))
        await _rounds_until(lambda: sum(entry.startswith("ack") for entry in ran) >= _STREAMS)
        await _rounds_until(settled)
    finally:
        for stream in streams:
            stream.end()
        await asyncio.gather(*runs)
    return ran


@pytest.mark.parametrize("mode", ["sotw", "delta"])
def test_the_loop_runs_other_callbacks_between_streams_during_one_fleet_push(mode: str) -> None:
    ran = asyncio.run(_fleet_push(mode, turns=_RecordingTurns()))
    pushes = [entry for entry in ran if entry.startswith("push")]
    # The change is one load assignment: every stream is sent it, once, and ACKs it.
    assert len(pushes) == _STREAMS
    assert all(push.endswith(ENDPOINT) for push in pushes)
    assert len({push.split()[1] for push in pushes}) == _STREAMS
    # Scheduled as the first stream was sent the change, the callback ran before the last one was.
    assert ran.index("callback") < ran.index(pushes[-1])


@pytest.mark.parametrize("mode", ["sotw", "delta"])
def test_a_stream_waits_for_one_turn_after_a_write_not_one_per_type_after_it(mode: str) -> None:
    turns = _RecordingTurns()
    ran = asyncio.run(_fleet_push(mode, turns=turns, subscribed=_ROUTED))
    pushes = [entry for entry in ran if entry.startswith("push")]
    assert len(pushes) == _STREAMS
    assert all(push.endswith(ENDPOINT) for push in pushes)
    # Each stream's write is followed by one turn (before planning listeners); routes, planned after
    # listeners sent nothing, need none.
    assert turns.takers.count("Stream._push") == _STREAMS


@pytest.mark.parametrize("mode", ["sotw", "delta"])
def test_a_change_to_two_types_is_sent_and_acked_in_the_order_of_types(mode: str) -> None:
    turns = _RecordingTurns()
    ran = asyncio.run(_fleet_push(mode, turns=turns, subscribed=_ROUTED, prefix="/v2"))
    for node in {entry.split()[1] for entry in ran if entry.startswith("push")}:
        for kind in ("push", "ack"):
            sent = [entry.split()[2] for entry in ran if entry.startswith(f"{kind} {node} ")]
            assert sent == [ENDPOINT, ROUTE], (kind, node)
    # A turn after each stream's load assignments are written (listeners planned in it, sending nothing).
    assert turns.takers.count("Stream._push") == _STREAMS


@pytest.mark.parametrize("mode", ["sotw", "delta"])
def test_a_stream_waits_for_a_turn_after_each_plan_made_in_a_worker_thread(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = _RecordingTurns()
    in_worker_thread = thread_work.in_worker_thread

    async def recorded(work: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        done = await in_worker_thread(work, *args, **kwargs)
        turns.takers.append("back from a worker thread")
        return done

    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", 0)  # every plan in a worker thread
    monkeypatch.setattr(thread_work, "in_worker_thread", recorded)
    asyncio.run(_fleet_push(mode, turns=turns))
    # Back on the loop, the stream asks for a turn before it does anything else.
    after = [taker for back, taker in itertools.pairwise(turns.takers) if back == "back from a worker thread"]
    assert len(after) >= _STREAMS
    assert set(after) == {"Stream._in_thread"}


def test_a_response_waits_for_a_turn_before_each_slice_after_the_first() -> None:
    resources = [
        XdsResource.build(ENDPOINT, xds_builders.load_assignment(f"c{index}", socket_endpoints=[]))
        for index in range(5)
    ]
    reply = Reply(
        head=discovery_pb2.DiscoveryResponse(version_info="v1"),
        resources=resources,
        entries=PackedEntries(ENDPOINT, slice_resources=2),
        tail=discovery_pb2.DiscoveryResponse(type_url=ENDPOINT, nonce="1"),
    )
    turns = _RecordingTurns()
    packed = PackedEntries(ENDPOINT, slice_resources=2)

    class _Noting:
        """Notes in the turns' record when a slice is encoded: each only once its turn has come."""

        def encode(self, resources: Sequence[XdsResource], /) -> Iterator[tuple[bytes, int]]:
            for piece, count in packed.encode(resources):
                turns.takers.append("encoded")
                yield piece, count

    reply = dataclasses.replace(reply, entries=_Noting())
    asyncio.run(reply.serialize(turns=turns))
    # Three slices, the later two each encoded after a turn, not all at once before the first.
    assert turns.takers == ["encoded", "Reply.serialize", "encoded", "Reply.serialize", "encoded"]
