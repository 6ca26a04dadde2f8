"""Where a stream plans and serialises a response (``Stream._next_response``), for both protocol variants: a
large plan (``ITEMS_WORTH_A_THREAD`` names and references) and its response in one hop to the streams' worker
thread; a large response (that many resources, or ``BYTES_WORTH_A_THREAD`` of them) planned on the loop in a
hop of its own, as a state-of-the-world response carries its whole type however little changed; small ones on
the loop. Wherever it is made, the proxy is sent the same bytes in the same order. A stream ending while its
work is queued for the thread or serialised there sends nothing and hands its state over.

The stream is driven in process (no gRPC): a proxy subscribes to clusters and load assignments, ACKs what
it is sent, and one cluster changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

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
    """The threads that planned and that serialised each response, in the order they were made, and the work
    each hop to the worker thread did (by name)."""

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

        def serializing(reply: Reply, **kwargs: bool) -> bytes:
            self.serialized.append(threading.get_ident())
            return serialize(reply, **kwargs)

        async def hopping(work: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            serializing_a_reply = isinstance(getattr(work, "__self__", None), Reply)
            self.hops.append("serialize" if serializing_a_reply else work.__name__)
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
def test_a_small_response_is_planned_and_serialised_on_the_loop(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run(mode))
    # Clusters and load assignments; then, after each change of the first cluster, both again (the changed
    # cluster's load assignment is sent again: Envoy re-creates the cluster, which asks for it).
    assert [len(push) for push in pushes] == [2, 2, 2]
    assert where.planned == where.serialized == [loop] * 6
    assert where.hops == []


@pytest.mark.parametrize("mode", _MODES)
def test_a_large_plan_and_its_response_are_made_in_one_hop_to_the_worker_thread(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_the_loop, _ = asyncio.run(_run(mode))
    # Four resources make a large response; a plan looking at four names and references is large too.
    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", len(_NAMES))
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run(mode))
    assert pushes == on_the_loop
    # The first responses: one hop each, which plans and serialises (the first ACKs, of what nothing known
    # was held before, free nothing and make no hop). After the first change the ACKs have left every name to
    # be looked at again: large plans again, one hop each.
    assert where.hops[:4] == ["_serialized_response"] * 4
    assert loop not in where.planned[:4]
    assert where.serialized[:4] == where.planned[:4]


def test_a_large_sotw_response_planned_on_the_loop_is_serialised_in_a_hop_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_the_loop, _ = asyncio.run(_run("sotw"))
    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", len(_NAMES))
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run("sotw"))
    assert pushes == on_the_loop
    # After the second change only the changed cluster and its load assignment are planned again, on the
    # loop; each response carries all four resources of its type, serialised in the worker thread.
    assert where.planned[4:] == [loop, loop]
    assert where.hops[4:] == ["serialize", "serialize"]
    assert loop not in where.serialized[4:]


def test_a_delta_response_of_what_changed_stays_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", len(_NAMES))
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run("delta"))
    # After the second change: a small plan, and responses of one resource each.
    assert [len(discovery_pb2.DeltaDiscoveryResponse.FromString(p).resources) for p in pushes[2]] == [1, 1]
    assert where.planned[4:] == where.serialized[4:] == [loop, loop]
    assert where.hops[4:] == []


@pytest.mark.parametrize("mode", _MODES)
def test_a_response_of_many_bytes_is_serialised_in_the_worker_thread(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_the_loop, _ = asyncio.run(_run(mode))
    # Any resource makes a response large by its bytes, not by its count.
    monkeypatch.setattr(thread_work, "BYTES_WORTH_A_THREAD", 1)
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run(mode))
    assert pushes == on_the_loop
    assert where.planned == [loop] * 6
    assert where.hops == ["serialize"] * 6
    assert loop not in where.serialized


async def _requests(mode: str) -> AsyncIterator[bytes]:
    """The proxy's first requests, then nothing: the stream stays open."""
    for request in _subscriptions(mode):
        yield request
    await asyncio.Event().wait()


async def _ended_while_in_the_worker_thread(
    mode: str, *, queued: bool
) -> tuple[Stream, _Writes, list[XdsEvent]]:
    """A stream ended (its task cancelled, as gRPC does when the proxy goes) while its first response is
    serialised in the worker thread, or (``queued``) while its hop waits behind other work there."""
    cache = SnapshotCache()
    cache.set_snapshot(_snapshot(first_timeout=1.0, previous=None))
    events: list[XdsEvent] = []
    stream = _stream(mode, _services(cache, events=events))
    writes = _Writes()
    serializing, go_on, other_work_done = threading.Event(), threading.Event(), threading.Event()
    serialize = Reply.serialize

    def held_back(reply: Reply, **kwargs: bool) -> bytes:
        serializing.set()
        go_on.wait(_WAIT_SECONDS)
        return serialize(reply, **kwargs)

    hop_made, hop = asyncio.Event(), thread_work.in_worker_thread

    async def hopping(work: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        hop_made.set()
        return await hop(work, *args, **kwargs)  # queued before the waiting test runs again

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Reply, "serialize", held_back)
        patch.setattr(thread_work, "in_worker_thread", hopping)
        if queued:
            other_work = asyncio.ensure_future(_UNWATCHED_HOP(other_work_done.wait, _WAIT_SECONDS))
        task = asyncio.create_task(stream.run(_requests(mode), writes))
        if queued:
            await hop_made.wait()
        else:
            assert await asyncio.to_thread(serializing.wait, _WAIT_SECONDS)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        go_on.set()
        if queued:
            other_work_done.set()
            await other_work
        # Whatever was queued for the worker thread before this is done once this is.
        await _UNWATCHED_HOP(lambda: None)
    return stream, writes, events


@pytest.mark.parametrize("queued", [False, True], ids=["serialising", "queued"])
@pytest.mark.parametrize("mode", _MODES)
def test_a_stream_ending_while_its_response_is_in_the_worker_thread_sends_nothing_and_hands_its_state_over(
    mode: str, queued: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first responses are planned and serialised in one hop.
    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", len(_NAMES))
    where = _Where(monkeypatch)
    stream, writes, events = asyncio.run(_ended_while_in_the_worker_thread(mode, queued=queued))
    assert where.hops == ["_serialized_response"]
    # Queued work reads nothing of an ended stream; work that began planned the clusters' response.
    assert len(where.planned) == (0 if queued else 1)
    assert writes.sent == []
    assert [event.kind for event in events] == []
    assert all(state.in_flight is None for state in stream.state.types.values())
    # Handed over (to be freed by the worker thread): the load assignments' names were taken from the state.
    assert stream.state.types[ENDPOINT].names == set()
