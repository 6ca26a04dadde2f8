"""An ending stream's state (thousands of names and resources per type in production) is handed to a worker
thread to be freed, not freed on the event loop in one C call per container: what the stream held goes, and
the server serves the next stream as before."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.heap import release_gradually
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import CLUSTER
from controlplane.xds.server import stream, thread_work
from tests.polling import wait_until
from tests.xds_builders import eds_cluster, load_assignment
from tests.xds_support import RawStream, ServerThread, node


def _acked_stream(xds: ServerThread, node_id: str) -> Any:
    """A SotW stream that received and ACKed the clusters, then ended by the proxy."""
    raw = RawStream(port=xds.port, delta=False)
    try:
        raw.send(discovery_pb2.DiscoveryRequest(node=node(node_id), type_url=CLUSTER))
        response = raw.receive()
        raw.send(
            discovery_pb2.DiscoveryRequest(
                type_url=CLUSTER, version_info=response.version_info, response_nonce=response.nonce
            )
        )
        wait_until(lambda: xds.events.acked(CLUSTER, node_id), message="the ACK")
    finally:
        raw.close()
    return response


def test_an_ending_stream_hands_what_it_held_to_a_worker_thread(
    xds: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    released: list[int] = []

    def recording(*containers: Any) -> None:
        released.append(sum(map(len, containers)))
        release_gradually(*containers)

    # Every ending stream counts as large.
    monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", 0)
    monkeypatch.setattr(stream, "release_gradually", recording)
    names = ("first", "second")
    xds.cache.set_snapshot(
        Snapshot.from_resources(
            clusters=[eds_cluster(name) for name in names],
            endpoints=[load_assignment(name, socket_endpoints=[("127.0.0.1", 9)]) for name in names],
        )
    )
    _acked_stream(xds, "leaving")
    wait_until(lambda: xds.call(lambda: xds.server.stream_count) == 0, message="the stream to end")
    # The two clusters held (and their names) were among what the thread freed.
    wait_until(lambda: bool(released) and released[-1] >= 2, message="the state handed over")
    response = _acked_stream(xds, "next")
    assert len(response.resources) == 2
