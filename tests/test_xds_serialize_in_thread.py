"""Where a stream serialises a response (``Stream._next_response``): a large one (``ITEMS_WORTH_A_THREAD``
resources, or ``BYTES_WORTH_A_THREAD`` of them) in a worker thread, even when its plan was small enough to
be made on the loop, as a state-of-the-world response carries its whole type however little changed; a small
one on the loop. Wherever it is serialised, the proxy is sent the same bytes in the same order.

The stream is driven in process (no gRPC): a proxy subscribes to clusters and load assignments, ACKs what
it is sent, and one cluster changes.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import CLUSTER, ENDPOINT
from controlplane.xds.server import thread_work
from controlplane.xds.server.metrics import XdsMetrics
from controlplane.xds.server.reply import Reply
from controlplane.xds.server.sotw import SotwStream
from controlplane.xds.server.stream import StreamServices, StreamSettings
from tests import xds_builders

_NAMES = ("first", "second", "third", "fourth")


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
    """The threads that planned and that serialised each response, in the order they were made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.planned: list[int] = []
        self.serialized: list[int] = []
        plan, serialize = SotwStream._planned_response, Reply.serialize

        def planning(stream: SotwStream, *args: Any) -> Any:
            response = plan(stream, *args)
            if response is not None:
                self.planned.append(threading.get_ident())
            return response

        def serializing(reply: Reply) -> bytes:
            self.serialized.append(threading.get_ident())
            return serialize(reply)

        monkeypatch.setattr(SotwStream, "_planned_response", planning)
        monkeypatch.setattr(Reply, "serialize", serializing)


async def _run() -> tuple[list[list[bytes]], int]:
    """What the stream sends: the first responses, then those after one cluster changed; and the loop's
    thread."""
    cache = SnapshotCache()
    snapshot = _snapshot(first_timeout=1.0, previous=None)
    cache.set_snapshot(snapshot)
    services = StreamServices(
        cache=cache,
        metrics=XdsMetrics(),
        settings=StreamSettings(debounce_seconds=0.0, listener_drain_seconds=0.0),
        observers=(),
    )
    stream = SotwStream(stream_id=1, services=services)
    writes = _Writes()
    node = {"node": {"id": "proxy", "cluster": "test"}}
    asked = {CLUSTER: [], ENDPOINT: sorted(_NAMES)}
    for type_url, names in asked.items():
        request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=names, **node)
        await stream._handle(request.SerializeToString())
    pushes: list[list[bytes]] = []
    for change in (1.0, 2.0, 3.0):
        snapshot = _snapshot(first_timeout=change, previous=snapshot)
        cache.set_snapshot(snapshot)
        stream._refresh()
        before = len(writes.sent)
        await stream._push(writes)
        pushes.append(writes.sent[before:])
        for payload in pushes[-1]:
            response = discovery_pb2.DiscoveryResponse.FromString(payload)
            ack = discovery_pb2.DiscoveryRequest(
                type_url=response.type_url,
                version_info=response.version_info,
                resource_names=asked[response.type_url],
                response_nonce=response.nonce,
            )
            await stream._handle(ack.SerializeToString())
    return pushes, threading.get_ident()


def test_a_small_response_is_serialised_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run())
    # Clusters and load assignments; then, after each change of the first cluster, both again (all load
    # assignments, as the changed cluster's is sent again: Envoy re-creates the cluster, which asks for it).
    assert [len(push) for push in pushes] == [2, 2, 2]
    assert where.planned == where.serialized == [loop] * 6


def test_a_large_response_planned_on_the_loop_is_serialised_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_the_loop, _ = asyncio.run(_run())
    # Four resources make a large response; a plan looking at four names and references is large too.
    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", len(_NAMES))
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run())
    assert pushes == on_the_loop
    # The first responses: each planned and serialised in one hop to a worker thread.
    assert where.planned[:2] == where.serialized[:2]
    assert loop not in where.planned[:2]
    # After the second change (the first ACKs left every name to be looked at again) only the changed cluster
    # and its load assignment are planned again, on the loop; each response carries all four resources of its
    # type, serialised in a worker thread.
    assert where.planned[4:] == [loop, loop]
    assert loop not in where.serialized[4:]


def test_a_response_of_many_bytes_is_serialised_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    on_the_loop, _ = asyncio.run(_run())
    # Any resource makes a response large by its bytes, not by its count.
    monkeypatch.setattr(thread_work, "BYTES_WORTH_A_THREAD", 1)
    where = _Where(monkeypatch)
    pushes, loop = asyncio.run(_run())
    assert pushes == on_the_loop
    assert where.planned == [loop] * 6
    assert loop not in where.serialized
