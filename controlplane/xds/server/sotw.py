"""State-of-the-world ADS (`StreamAggregatedResources`).

Every response carries the complete content of its type as this stream should hold it: for listeners and
clusters, everything (a resource left out is deleted by Envoy); for routes, load assignments and secrets, the
requested names that exist. A request answering anything but the latest response of its type is stale and
ignored, as the protocol requires.

A proxy that reconnects (to a restarted control plane, say) reports the ``version_info`` of what it holds of
each type. Where that is the version of what this stream would hold of the snapshot (for a by-name type, of
the names it asks for), the stream takes it as held; otherwise what the proxy holds is unknown until it ACKs
(``TypeState.known``). Either way the first request of a type is answered.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Set
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds.content import XdsResource, content_version
from controlplane.xds.resource import short_type_name
from controlplane.xds.server.reply import PackedEntries, Reply
from controlplane.xds.server.stream import Stream
from controlplane.xds.server.thread_work import worth_a_thread
from controlplane.xds.server.type_state import InFlight, TypeState, in_flight_of

CONTROL_PLANE = base_pb2.ControlPlane(identifier="ai-xds-controlplane")


class SotwStream(Stream):
    mode = "sotw"
    request_type = discovery_pb2.DiscoveryRequest

    async def _on_request(self, request: Any, state: TypeState) -> None:
        nonce = request.response_nonce
        if nonce and nonce != state.last_nonce:
            self._metrics.stale_requests.labels(type=short_type_name(state.type_url)).inc()
            self._log.debug("ignoring stale request", type=short_type_name(state.type_url), nonce=nonce)
            return
        if nonce:
            self._settle(state, nonce, request.error_detail if request.HasField("error_detail") else None)
        else:
            # A request answering nothing (re)starts the subscription and is owed a response even when the
            # content would not change: Envoy's initial fetch waits for it.
            state.response_owed = True
        if not state.wildcard:
            names = set(request.resource_names)
            if names != state.names:
                state.unsettle(names ^ state.names)
                state.names = names
                state.response_owed = True
        if not state.subscribed:
            state.subscribed = True
            await self._adopt_reported_version(state, request.version_info)

    async def _adopt_reported_version(self, state: TypeState, version_info: str) -> None:
        """On a new stream, work out what Envoy holds from the version it reports."""
        state.forget_plan()
        if not version_info:
            state.acked, state.known = {}, True
            return
        available = self.snapshot.get(state.type_url) if self.snapshot is not None else {}
        subscribed = None if state.wildcard else state.names
        work = len(available) if subscribed is None else min(len(available), len(subscribed))
        if not worth_a_thread(work):
            held = _held(version_info, available=available, subscribed=subscribed)
        else:
            # A pass over every resource of the type, and its version digested: 10,000 held the loop for
            # 3-5 ms. The thread only reads the snapshot and the subscribed names (only this task changes
            # them, and it waits meanwhile); the state changes back on the loop, where proxy status reads it.
            held = await self._in_thread(_held, version_info, available=available, subscribed=subscribed)
        state.acked, state.known = ({}, False) if held is None else (held, True)

    def _response(
        self, state: TypeState, target: dict[str, XdsResource], sequence: int
    ) -> tuple[Reply, InFlight] | None:
        resend = not state.resend.isdisjoint(target)
        if not state.response_owed and not resend and state.known and state.differences(target) == ([], []):
            return None
        reply = Reply(
            head=discovery_pb2.DiscoveryResponse(version_info=content_version(target)),
            resources=tuple(target[name] for name in sorted(target)),
            entries=PackedEntries(state.type_url),
            tail=discovery_pb2.DiscoveryResponse(
                type_url=state.type_url, nonce=str(sequence), control_plane=CONTROL_PLANE
            ),
        )
        return reply, in_flight_of(target, sequence=sequence)

    def _apply_ack(
        self, state: TypeState, in_flight: InFlight, *, refused: frozenset[str] = frozenset()
    ) -> None:
        # A proxy's first responses hold thousands of resources: copied in C unless something was refused.
        acked = dict(in_flight.sent)
        if refused:
            acked = {name: resource for name, resource in acked.items() if name not in refused}
            acked.update((name, state.acked[name]) for name in refused if name in state.acked)
        before = state.acked
        # Often what Envoy held already (a reconnect's first response, load assignments sent again): found so
        # in C, where a pass by name held the loop for 1-2 ms per 10,000.
        if acked != before:
            # Nothing known held (a first response, or a reconnect reporting a version this server did not
            # send): every name is new, so no pass by name on the loop, and nothing to free.
            replaced: Collection[str] = (
                acked.keys()
                if not before
                else [name for name, resource in acked.items() if before.get(name) is not resource]
            )
            gone = before.keys() - acked.keys()
            state.unsettle(replaced)
            state.unsettle(gone)
            if before and worth_a_thread(len(replaced) + len(gone)):
                # A rebuilt configuration's resources die with the old mapping: freed by a worker thread, not
                # on the loop (what an ACK of a few changes replaces costs less than the thread hop).
                self._release(before)
        state.acked = acked
        state.known = True


def _held(
    version_info: str, *, available: Mapping[str, XdsResource], subscribed: Set[str] | None
) -> dict[str, XdsResource] | None:
    """What a proxy reporting ``version_info`` holds: the ``available`` resources (by-name types: those of
    the ``subscribed`` names) when that is their version, else None (unknown)."""
    if subscribed is None:
        candidates = dict(available)
    elif len(subscribed) < len(available):
        candidates = {name: available[name] for name in subscribed if name in available}
    else:
        candidates = {name: resource for name, resource in available.items() if name in subscribed}
    return candidates if content_version(candidates) == version_info else None
