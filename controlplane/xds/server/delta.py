"""Incremental ADS (`DeltaAggregatedResources`).

Responses carry only resources whose version Envoy does not hold yet, plus the names to remove. Envoy says
what it holds when it reconnects (`initial_resource_versions`), so nothing it already has is sent again.
Subscriptions to by-name types change through `resource_names_subscribe` / `_unsubscribe` at any time,
with or without a nonce; a nonce other than the in-flight one only means there is no ACK in the request.
"""

from __future__ import annotations

from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds.content import XdsResource
from controlplane.xds.server.reply import Reply
from controlplane.xds.server.sotw import CONTROL_PLANE
from controlplane.xds.server.stream import Stream, in_flight_of
from controlplane.xds.server.type_state import InFlight, TypeState

_WILDCARD = "*"


class DeltaStream(Stream):
    mode = "delta"
    request_type = discovery_pb2.DeltaDiscoveryRequest

    def _on_request(self, request: Any, state: TypeState) -> None:
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
            self._adopt_initial_versions(state, request.initial_resource_versions)
        if request.response_nonce:
            self._settle(
                state,
                request.response_nonce,
                request.error_detail if request.HasField("error_detail") else None,
            )

    def _adopt_initial_versions(self, state: TypeState, versions: Any) -> None:
        available = self.snapshot.get(state.type_url) if self.snapshot is not None else {}
        state.forget_plan()
        for name, version in versions.items():
            if not state.wildcard and name not in state.names:
                continue
            known = available.get(name)
            state.acked[name] = (
                known
                if known is not None and known.version == version
                else XdsResource.unknown(state.type_url, name, version)
            )

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
            entry=_entry,
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
        state.acked.update(accepted)
        for name in in_flight.removed:
            state.acked.pop(name, None)
        state.unsettle(in_flight.sent)
        state.unsettle(in_flight.removed)


def _entry(resources: Any, resource: XdsResource) -> None:
    entry = resources.add(name=resource.name, version=resource.version)
    entry.resource.type_url = resource.type_url
    entry.resource.value = resource.serialized
