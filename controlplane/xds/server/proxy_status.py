"""Proxy status: which proxies are connected and whether each holds what it is served, per resource type.

An operator whose route "does not work" first asks whether the proxy has the configuration at all, and
if it refused it, why. Envoy's own admin port answers that for one proxy at a time; this gRPC service
(``protos/aixds/controlplane/v1/proxy_status.proto``) answers it for all of them from the control
plane's side, the way ``istioctl proxy-status`` does, and ``controlplane proxy-status`` prints it. It is
served on the xDS port (same listener, same TLS). The streams' state is copied on the server's event loop,
so it is read without locks, and compared and digested in a worker thread, so that proxies holding
thousands of resources do not stall every stream meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import grpc

from controlplane._proto import proxy_status_pb2 as pb
from controlplane.xds.content import XdsResource, content_version
from controlplane.xds.resource import TYPE_URLS
from controlplane.xds.server.stream import Stream
from controlplane.xds.server.type_state import TypeState, same_versions

SERVICE = "aixds.controlplane.v1.ProxyStatusService"
LIST_PROXIES = f"/{SERVICE}/ListProxies"

Sync = pb.TypeStatus.Sync


def handler(streams: Callable[[], Iterable[Stream]]) -> grpc.GenericRpcHandler:
    """The service's gRPC handler; `streams` gives the open ADS streams (called on the server's loop)."""

    async def list_proxies(request: pb.ListProxiesRequest, context: Any) -> pb.ListProxiesResponse:
        # Read on the loop, where the streams change; digested in a worker thread: the versions of a type
        # of thousands of resources, held and wanted, held the loop for tens of milliseconds per proxy.
        views = [_StreamView.of(stream) for stream in streams() if stream.node_id is not None]
        described = await asyncio.to_thread(lambda: [view.describe() for view in views])
        described.sort(key=lambda proxy: (proxy.node_id, proxy.stream_id))
        return pb.ListProxiesResponse(proxies=described)

    methods = {
        "ListProxies": grpc.unary_unary_rpc_method_handler(
            list_proxies,
            request_deserializer=pb.ListProxiesRequest.FromString,
            response_serializer=pb.ListProxiesResponse.SerializeToString,
        )
    }
    return grpc.method_handlers_generic_handler(SERVICE, methods)


@dataclass(frozen=True, slots=True)
class _TypeView:
    """What proxy status reads of one type of a stream, copied at one moment: references and copies made in
    C, so that taking it costs the loop little and nothing changes it while a worker thread reads it."""

    type_url: str
    subscribed: bool
    wanted: Mapping[str, XdsResource]
    """What the stream's snapshot has for this type (what it serves, for a by-name type)."""
    acked: Mapping[str, XdsResource]
    names: AbstractSet[str] | None
    """The subscribed names of a by-name type; None for a wildcard type."""
    rejected: frozenset[tuple[str, str]]
    nacked_version: str
    nack_message: str

    @classmethod
    def of(cls, stream: Stream, state: TypeState) -> _TypeView:
        available = stream.snapshot.get(state.type_url) if stream.snapshot is not None else {}
        return cls(
            type_url=state.type_url,
            subscribed=state.subscribed,
            wanted=available,
            acked=dict(state.acked),
            names=None if state.wildcard else frozenset(state.names),
            rejected=frozenset(state.rejected),
            nacked_version=state.nacked_version,
            nack_message=state.nack_message,
        )

    def describe(self) -> pb.TypeStatus:
        wanted, held = self.wanted, self.acked
        if self.names is not None:
            names = self.names
            wanted = {name: resource for name, resource in wanted.items() if name in names}
            held = {name: resource for name, resource in held.items() if name in names}
        status = pb.TypeStatus(
            type_url=self.type_url,
            acked_version=content_version(held) if held else "",
            snapshot_version=content_version(wanted) if wanted else "",
            acked_resources=len(held),
            nacked_version=self.nacked_version,
            nack_message=self.nack_message,
        )
        if not self.subscribed:
            status.sync = Sync.NOT_SENT
        elif any((name, resource.version) in self.rejected for name, resource in wanted.items()):
            status.sync = Sync.NACKED
        elif same_versions(held, wanted):
            status.sync = Sync.SYNCED
        else:
            status.sync = Sync.STALE
        return status


@dataclass(frozen=True, slots=True)
class _StreamView:
    """One stream's status as read on the loop (see ``_TypeView``)."""

    node_id: str
    node_cluster: str
    mode: str
    group: str
    stream_id: int
    connected_seconds: float
    types: tuple[_TypeView, ...]

    @classmethod
    def of(cls, stream: Stream) -> _StreamView:
        return cls(
            node_id=stream.node_id or "",
            node_cluster=stream.node_cluster,
            mode=stream.mode,
            group=stream.group or "",
            stream_id=stream.stream_id,
            connected_seconds=round(time.monotonic() - stream.connected_at, 3),
            types=tuple(_TypeView.of(stream, stream.state.types[type_url]) for type_url in TYPE_URLS),
        )

    def describe(self) -> pb.ProxyStatus:
        return pb.ProxyStatus(
            node_id=self.node_id,
            node_cluster=self.node_cluster,
            mode=self.mode,
            group=self.group,
            stream_id=self.stream_id,
            connected_seconds=self.connected_seconds,
            types=[view.describe() for view in self.types],
        )
