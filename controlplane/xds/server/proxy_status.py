"""Proxy status: which proxies are connected and whether each holds what it is served, per resource type.

An operator whose route "does not work" first asks whether the proxy has the configuration at all, and
if it refused it, why. Envoy's own admin port answers that for one proxy at a time; this gRPC service
(``protos/aixds/controlplane/v1/proxy_status.proto``) answers it for all of them from the control
plane's side, the way ``istioctl proxy-status`` does, and ``controlplane proxy-status`` prints it. It is
served on the xDS port (same listener, same TLS), read on the server's event loop, so it sees the
streams' state without locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from controlplane._proto import proxy_status_pb2 as pb
from controlplane.xds.resource import TYPE_URLS, XdsResource, content_version
from controlplane.xds.server.stream import Stream
from controlplane.xds.server.type_state import TypeState, same_versions

SERVICE = "aixds.controlplane.v1.ProxyStatusService"
LIST_PROXIES = f"/{SERVICE}/ListProxies"

Sync = pb.TypeStatus.Sync


def handler(streams: Callable[[], Iterable[Stream]]) -> grpc.GenericRpcHandler:
    """The service's gRPC handler; `streams` gives the open ADS streams (called on the server's loop)."""

    async def list_proxies(request: pb.ListProxiesRequest, context: Any) -> pb.ListProxiesResponse:
        now = time.monotonic()
        described = [describe(stream, now=now) for stream in streams() if stream.node_id is not None]
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


def describe(stream: Stream, *, now: float) -> pb.ProxyStatus:
    return pb.ProxyStatus(
        node_id=stream.node_id or "",
        node_cluster=stream.node_cluster,
        mode=stream.mode,
        group=stream.group or "",
        stream_id=stream.stream_id,
        connected_seconds=round(now - stream.connected_at, 3),
        types=[_type_status(stream, stream.state.types[type_url]) for type_url in TYPE_URLS],
    )


def _type_status(stream: Stream, state: TypeState) -> pb.TypeStatus:
    available = stream.snapshot.get(state.type_url) if stream.snapshot is not None else {}
    wanted: dict[str, XdsResource] = {
        name: resource for name, resource in available.items() if state.wildcard or name in state.names
    }
    held = {resource.name: resource for resource in state.held()}
    status = pb.TypeStatus(
        type_url=state.type_url,
        acked_version=content_version(held) if held else "",
        snapshot_version=content_version(wanted) if wanted else "",
        acked_resources=len(held),
        nacked_version=state.nacked_version,
        nack_message=state.nack_message,
    )
    if not state.subscribed:
        status.sync = Sync.NOT_SENT
    elif any((name, resource.version) in state.rejected for name, resource in wanted.items()):
        status.sync = Sync.NACKED
    elif same_versions(held, wanted):
        status.sync = Sync.SYNCED
    else:
        status.sync = Sync.STALE
    return status
