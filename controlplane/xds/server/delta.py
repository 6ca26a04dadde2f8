"""Incremental ADS (`DeltaAggregatedResources`).

Responses carry only resources whose version Envoy does not hold yet, plus the names to remove. Envoy says
what it holds when it reconnects (`initial_resource_versions`), so nothing it already has is sent again.
Subscriptions to by-name types change through `resource_names_subscribe` / `_unsubscribe` at any time,
with or without a nonce; a nonce other than the in-flight one only means there is no ACK in the request.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds.content import XdsResource
from controlplane.xds.server.reply import BuiltEntries, Reply
from controlplane.xds.server.sotw import CONTROL_PLANE
from controlplane.xds.server.stream import Stream
from controlplane.xds.server.thread_work import worth_a_thread
from controlplane.xds.server.type_state import InFlight, TypeState, in_flight_of

_WILDCARD = "*"


class DeltaStream(Stream):
    mode = "delta"
    request_type = discovery_pb2.DeltaDiscoveryRequest

    async def _on_request(self, request: Any, state: TypeState) -> None:
        if not state.wildcard:
            # A proxy's first request names every load assignment it wants: thousands of names, handled with
            # set operations. Subscribing means Envoy does not hold it (any more): always send it again.
            subscribed = set(request.resource_names_subscribe)
            subscribed.discard(_WILDCARD)
            unsubscribed = set(request.resource_names_unsubscribe)
            touched = subscribed | unsubscribed
            state.names |= subscribed
            state.names -= unsubscribed
            for name in touched & state.acked.keys():
                del state.acked[name]
            state.unsettle(touched)
        if not state.subscribed:
            state.subscribed = True
            state.response_owed = True
            await self._adopt_initial_versions(state, request.initial_resource_versions)
        if request.response_nonce:
            self._settle(
                state,
                request.response_nonce,
                request.error_detail if request.HasField("error_detail") else None,
            )

    async def _adopt_initial_versions(self, state: TypeState, reported: Any) -> None:
        """Take what Envoy reports holding (by-name types: of the names it subscribes to) as held."""
        state.forget_plan()
        available = self.snapshot.get(state.type_url) if self.snapshot is not None else {}
        subscribed = None if state.wildcard else state.names
        if not worth_a_thread(len(reported)):
            held = _held(reported, available=available, subscribed=subscribed, type_url=state.type_url)
        else:
            # Envoy reports everything it holds when it reconnects: tens of thousands of resources after a
            # control plane restart. The thread only reads the request, the snapshot and the subscribed names
            # (only this task changes them, and it waits meanwhile); the state changes back on the loop,
            # where proxy status reads it.
            held = await self._in_thread(
                _held, reported, available=available, subscribed=subscribed, type_url=state.type_url
            )
        state.acked.update(held)

    def _response(
        self, state: TypeState, target: dict[str, XdsResource], sequence: int
    ) -> tuple[Reply, InFlight] | None:
        changed_names, removed = state.differences(target)
        # An updated EDS cluster needs its load assignment again, even an unchanged one.
        changed = {name: target[name] for name in sorted({*changed_names, *(state.resend & target.keys())})}
        if not changed and not removed and not state.response_owed:
            return None
        reply = Reply(
            head=discovery_pb2.DeltaDiscoveryResponse(
                system_version_info=self.snapshot.version if self.snapshot is not None else ""
            ),
            resources=tuple(changed.values()),
            entries=_ENTRIES,
            tail=discovery_pb2.DeltaDiscoveryResponse(
                type_url=state.type_url,
                nonce=str(sequence),
                removed_resources=removed,
                control_plane=CONTROL_PLANE,
            ),
        )
        return reply, in_flight_of(changed, sequence=sequence, removed=removed)

    def _apply_ack(
        self, state: TypeState, in_flight: InFlight, *, refused: frozenset[str] = frozenset()
    ) -> None:
        # Thousands of names in a proxy's first responses: filtered only where something is left out.
        accepted = in_flight.sent
        if refused:
            accepted = {name: resource for name, resource in accepted.items() if name not in refused}
        if not state.wildcard and not state.names.issuperset(accepted.keys()):
            accepted = {name: resource for name, resource in accepted.items() if name in state.names}
        if not worth_a_thread(min(len(accepted), len(state.acked))):
            state.acked.update(accepted)
        else:
            # What this replaces (versions a reconnecting proxy reported, a rebuilt configuration's) would be
            # freed here in one C call, holding the loop: the old mapping goes to a worker thread instead.
            replaced, state.acked = state.acked, {**state.acked, **accepted}
            self._release(replaced)
        for name in in_flight.removed:
            state.acked.pop(name, None)
        state.unsettle(in_flight.sent)
        state.unsettle(in_flight.removed)


def _held(
    reported: Mapping[str, str],
    *,
    available: Mapping[str, XdsResource],
    subscribed: set[str] | None,
    type_url: str,
) -> dict[str, XdsResource]:
    """What Envoy holds of what it ``reported`` (name -> version; by-name types: only the ``subscribed``
    names): the snapshot's resource where the version is the snapshot's, else a version known by name only.

    Each name is looked up once and paired with its version in C; only a name held at another version
    takes a Python step (a step per name held the loop for about 10 ms per 10,000)."""
    names = list(reported)
    if subscribed is not None and not subscribed.issuperset(names):
        names = [name for name in names if name in subscribed]
    held_versions = list(map(reported.__getitem__, names))
    found: list[Any] = list(map(available.get, names, itertools.repeat(None)))  # None: not in the snapshot
    current = list(
        map(
            operator.eq,
            held_versions,
            map(getattr, found, itertools.repeat("version"), itertools.repeat(None)),
        )
    )
    held: dict[str, XdsResource] = dict(
        zip(itertools.compress(names, current), itertools.compress(found, current), strict=True)
    )
    for name, version in itertools.compress(
        zip(names, held_versions, strict=True), map(operator.not_, current)
    ):
        held[name] = XdsResource.unknown(type_url, name, version)
    return held


def _entry(resources: Any, resource: XdsResource) -> None:
    entry = resources.add(name=resource.name, version=resource.version)
    entry.resource.type_url = resource.type_url
    entry.resource.value = resource.serialized


_ENTRIES = BuiltEntries(response_type=discovery_pb2.DeltaDiscoveryResponse, entry=_entry)
