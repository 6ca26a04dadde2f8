"""Where a stream plans and serialises a response, for both protocol variants: a large plan
(``ITEMS_WORTH_A_THREAD`` names and references) in a worker thread, a small one on the loop; every response
serialised on the loop, in slices (``reply.py``), its bytes joined in a worker thread when there are
``BYTES_WORTH_A_THREAD`` of them. Wherever it is made, the proxy is sent the same bytes in the same order. A
stream ending while its plan waits for a worker thread, or once a worker thread has picked the plan up but
not yet taken the stream's lock, sends nothing and hands its state over; while a worker thread plans, it sends
nothing and leaves its state to be freed as a whole.

The stream is driven in process (no gRPC): a proxy subscribes to clusters and load assignments, ACKs what
it is sent, and one cluster changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import CLUSTER, ENDPOINT
from controlplane.xds.server import thread_work
from controlplane.xds.server.delta import DeltaStream
from controlplane.xds.server.events import XdsEvent
from controlplane.xds.server.metrics import XdsMetrics
from controlplane.xds.server.reply import Reply
from controlplane.xds.server.sotw import SotwStream
from controlplane.xds.server.stream import Stream, StreamServices, StreamSettings
from controlplane.xds.server.turns import Turns
from tests import xds_builders

_NAMES = ("first", "second", "third", "fourth")
_NODE = {"node": {"id": "proxy", "cluster": "test"}}
_MODES = ("sotw", "delta")
_UNWATCHED_HOP = thread_work.in_worker_thread
"""The hop to the worker thread, for a test's own work (``_Where`` records the streams')."""
_WAIT_SECONDS = 10.0
"""How long a test waits for a worker thread before it fails rather than hangs (not a timed assertion)."""


class _Writes:
    """The gRPC context's ``write``: keeps what the stream sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def write(self, payload: bytes) -> None:
        self.sent.append(payload)


def _snapshot(*, first_timeout: float, previous: Snapshot | None) -> Snapshot:
    """Four clusters with their load assignments; all but the first cluster the very resources of
    ``previous``, as the cache's snapshots share what did not change."""
    messages = {
        CLUSTER: [
            xds_builders.eds_cluster(name, connect_timeout_seconds=first_timeout if index == 0 else 1.0)
            for index, name in enumerate(_NAMES)
        ],
        ENDPOINT: [
            xds_builders.load_assignment(name, socket_endpoints=[("127.0.0.1", 9)]) for name in _NAMES
        ],
    }
    built = {
        type_url: [
            previous.get(type_url)[resource.name]
            if previous is not None and previous.get(type_url)[resource.name].version == resource.version
            else resource
            for resource in (XdsResource.build(type_url, message) for message in typed)
        ]
        for type_url, typed in messages.items()
    }
    return Snapshot.from_built(built, previous=previous)


class _Where:
    """The threads that planned and that serialised each response, in the order they were made, and what each
    hop to a worker thread did (by name)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.planned: list[int] = []
        self.serialized: list[int] = []
        self.hops: list[str] = []
        plan, serialize, hop = Stream._planned_response, Reply.serialize, thread_work.in_worker_thread

        def planning(stream: Stream, *args: Any) -> Any:
            response = plan(stream, *args)
            if response is not None:
                self.planned.append(threading.get_ident())
            return response

        async def serializing(reply: Reply, *, turns: Turns) -> bytes:
            self.serialized.append(threading.get_ident())
            return await serialize(reply, turns=turns)

        async def hopping(work: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            # Work reading the stream's state goes through ``Stream._reading``; here only plans do.
            self.hops.append("plan" if work.__name__ == "_reading" else work.__name__)
            return await hop(work, *args, **kwargs)

        monkeypatch.setattr(Stream, "_planned_response", planning)
        monkeypatch.setattr(Reply, "serialize", serializing)
        monkeypatch.setattr(thread_work, "in_worker_thread", hopping)


def _services(cache: SnapshotCache, *, events: list[XdsEvent] | None = None) -> StreamServices:
    return StreamServices(
        cache=cache,
        metrics=XdsMetrics(),
        settings=StreamSettings(debounce_seconds=0.0, listener_drain_seconds=0.0),
        observers=() if events is None else (events.append,),
    )


def _stream(mode: str, services: StreamServices) -> Stream:
    kind = SotwStream if mode == "sotw" else DeltaStream
    return kind(stream_id=1, services=services)


def _subscriptions(mode: str) -> list[bytes]:
    """The proxy's first requests: every cluster, and the four load assignments by name."""
    if mode == "sotw":
        return [
            discovery_pb2.DiscoveryRequest(
                type_url=type_url, resource_names=names, **_NODE
            ).SerializeToString()
            for type_url, names in ((CLUSTER, []), (ENDPOINT, sorted(_NAMES)))
        ]
    return [
        discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url, resource_names_subscribe=names, **_NODE
        ).SerializeToString()
        for type_url, names in ((CLUSTER, []), (ENDPOINT, sorted(_NAMES)))
    ]


def _ack(mode: str, payload: bytes) -> bytes:
    request: Any  # generated classes are untyped
    if mode == "sotw":
        response = discovery_pb2.DiscoveryResponse.FromString(payload)
        request = discovery_pb2.DiscoveryRequest(
            type_url=response.type_url,
            version_info=response.version_info,
            resource_names=sorted(_NAMES) if response.type_url == ENDPOINT else [],
            response_nonce=response.nonce,
        )
    else:
        delta = discovery_pb2.DeltaDiscoveryResponse.FromString(payload)
        request = discovery_pb2.DeltaDiscoveryRequest(type_url=delta.type_url, response_nonce=delta.nonce)
    serialized: bytes = request.SerializeToString()
    return serialized


async def _run(mode: str) -> tuple[list[list[bytes]], int]:
    """What the stream sends: the first responses, then those after each of two changes of one cluster; and
    the loop's thread."""
    cache = SnapshotCache()
    snapshot = _snapshot(first_timeout=1.0, previous=None)
    cache.set_snapshot(snapshot)
    stream = _stream(mode, _services(cache))
    writes = _Writes()
    for request in _subscriptions(mode):
        await stream._handle(request)
    pushes: list[list[bytes]] = []
    for change in (1.0, 2.0, 3.0):
        snapshot = _snapshot(first_timeout=change, previous=snapshot)
        cache.set_snapshot(snapshot)
        stream._refresh()
        before = len(writes.sent)
        await stream._push(writes)
        pushes.append(writes.sent[before:])
        for payload in pushes[-1]:
            await stream._handle(_ack(mode, payload))
    return pushes, threading.get_ident()


@pytest.mark.parametrize("mode", _MODES)
def test_a_small_plan_is_made_on_the_loop(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run(mode))
    # Clusters and load assignments; then, after each change of the first cluster, both again (the changed
    # cluster's load assignment is sent again: Envoy re-creates the cluster, which asks for it).
    assert [len(push) for push in pushes] == [2, 2, 2]
    assert where.planned == where.serialized == [loop] * 6
    assert where.hops == []


@pytest.mark.parametrize("mode", _MODES)
def test_a_large_plan_is_made_in_a_worker_thread_and_its_response_serialised_on_the_loop(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_the_loop, _ = asyncio.run(_run(mode))
    # A plan looking at four names and references is large (and a response of four resources would be).
    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", len(_NAMES))
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run(mode))
    assert pushes == on_the_loop
    # The first responses, then those after the first change (the first ACKs left every name to be looked at
    # again) are planned in a worker thread, one hop each: the first ACKs, of what nothing known was held
    # before, free nothing and make no hop. After the second change only what changed is looked at again.
    assert where.hops == ["plan"] * 4
    assert loop not in where.planned[:4]
    assert where.planned[4:] == [loop, loop]
    assert where.serialized == [loop] * 6


@pytest.mark.parametrize("mode", _MODES)
def test_a_response_of_many_bytes_is_joined_in_a_worker_thread(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_the_loop, _ = asyncio.run(_run(mode))
    # Any response is large by its bytes.
    monkeypatch.setattr(thread_work, "BYTES_WORTH_A_THREAD", 1)
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run(mode))
    assert pushes == on_the_loop
    assert where.planned == where.serialized == [loop] * 6
    assert where.hops == ["join"] * 6


async def _requests(mode: str) -> AsyncIterator[bytes]:
    """The proxy's first requests, then nothing: the stream stays open."""
    for request in _subscriptions(mode):
        yield request
    await asyncio.Event().wait()


_Moment = Literal["queued", "picked-up", "planning"]
"""Where a stream's first plan is when the stream ends: waiting behind other work for the one worker thread,
picked up by it (before ``Stream._reading`` takes the stream's lock), or being made."""


def _held_on_pickup(
    work: Callable[..., Any], *, picked_up: threading.Event, go_on: threading.Event
) -> Callable[..., Any]:
    """``work``, under its own name, first saying (in the worker thread) it was picked up, then waiting for
    ``go_on``."""

    @functools.wraps(work)
    def held(*args: Any, **kwargs: Any) -> Any:
        picked_up.set()
        go_on.wait(_WAIT_SECONDS)
        return work(*args, **kwargs)

    return held


async def _ended_while_planned_in_a_worker_thread(
    mode: str, *, at: _Moment
) -> tuple[Stream, _Writes, list[XdsEvent]]:
    """A stream ended (its task cancelled, as gRPC does when the proxy goes) with its first plan ``at`` a
    moment of its way through the one worker thread."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    cache = SnapshotCache()
    cache.set_snapshot(_snapshot(first_timeout=1.0, previous=None))
    events: list[XdsEvent] = []
    stream = _stream(mode, _services(cache, events=events))
    writes = _Writes()
    planning, picked_up, go_on, other_work_done = (threading.Event() for _ in range(4))
    plan, hop, hop_made = Stream._planned_response, thread_work.in_worker_thread, asyncio.Event()

    def held_back(stream: Stream, *args: Any) -> Any:
        planning.set()
        go_on.wait(_WAIT_SECONDS)
        return plan(stream, *args)

    async def hopping(work: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        hop_made.set()
        if at == "picked-up":
            work = _held_on_pickup(work, picked_up=picked_up, go_on=go_on)
        return await hop(work, *args, **kwargs)  # queued before the waiting test runs again

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Stream, "_planned_response", held_back)
        patch.setattr(thread_work, "in_worker_thread", hopping)
        if at == "queued":
            other_work = asyncio.ensure_future(_UNWATCHED_HOP(other_work_done.wait, _WAIT_SECONDS))
        task = asyncio.create_task(stream.run(_requests(mode), writes))
        if at == "queued":
            await hop_made.wait()
        else:
            reached = picked_up if at == "picked-up" else planning
            with ThreadPoolExecutor(max_workers=1) as waiter:  # the worker thread holds the plan there
                assert await asyncio.get_running_loop().run_in_executor(waiter, reached.wait, _WAIT_SECONDS)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        go_on.set()
        if at == "queued":
            other_work_done.set()
            await other_work
        # Whatever was queued for the worker thread before this is done once this is.
        await _UNWATCHED_HOP(lambda: None)
    return stream, writes, events


@pytest.mark.parametrize("at", ["queued", "picked-up"])
@pytest.mark.parametrize("mode", _MODES)
def test_a_stream_ending_before_a_worker_thread_reads_it_sends_nothing_and_hands_its_state_over(
    mode: str, at: _Moment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its plan waiting for the worker thread (then never run), or picked up by it before the stream's lock
    was taken: the ending stream takes the lock and hands its state over, and the plan, let go on, finds the
    stream ended and reads nothing."""
    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", len(_NAMES))
    where = _Where(monkeypatch)
    stream, writes, events = asyncio.run(_ended_while_planned_in_a_worker_thread(mode, at=at))
    assert where.hops == ["plan"]
    assert where.planned == []  # the plan read nothing of the ended stream
    assert writes.sent == []
    assert events == []
    assert all(state.in_flight is None for state in stream.state.types.values())
    # Handed over (to be freed by a worker thread): the load assignments' names were taken from the state.
    assert stream.state.types[ENDPOINT].names == set()


@pytest.mark.parametrize("mode", _MODES)
def test_a_stream_ending_while_a_worker_thread_plans_sends_nothing_and_leaves_its_state(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", len(_NAMES))
    where = _Where(monkeypatch)
    stream, writes, events = asyncio.run(_ended_while_planned_in_a_worker_thread(mode, at="planning"))
    assert where.hops == ["plan"]
    assert writes.sent == []
    assert events == []
    assert all(state.in_flight is None for state in stream.state.types.values())
    # The thread was reading the state when the stream ended: left to be freed with the stream.
    assert stream.state.types[ENDPOINT].names == set(_NAMES)
