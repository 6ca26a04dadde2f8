"""The gRPC `AggregatedDiscoveryService`: state-of-the-world and incremental ADS over one asyncio server.

Requests and responses cross the gRPC layer as raw bytes: the streams decode requests themselves (so a
malformed message becomes INVALID_ARGUMENT on that stream rather than a generic failure) and send responses
assembled from resources serialised once per snapshot. The server owns the streams' bookkeeping, the metrics
registry, keepalive and message-size settings, and a graceful shutdown that ends every stream cleanly before
the listening socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from prometheus_client import CollectorRegistry

from controlplane import defaults
from controlplane.xds.cache import SnapshotCache
from controlplane.xds.server import proxy_status
from controlplane.xds.server.delta import DeltaStream
from controlplane.xds.server.events import XdsObserver
from controlplane.xds.server.metrics import XdsMetrics
from controlplane.xds.server.sotw import SotwStream
from controlplane.xds.server.stream import Stream, StreamServices, StreamSettings
from controlplane.xds.server.tls import XdsTlsFiles, server_credentials

_log = structlog.get_logger(__name__)

_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_MIN_MESSAGE_BYTES = 64 * 1024 * 1024

GIL_SWITCH_INTERVAL_SECONDS = 0.001
"""How long a thread keeps the GIL once another thread waits for it (CPython's default: 5 ms). The event loop
shares the interpreter with the worker threads that load, translate and plan (hundreds of milliseconds of
Python each at 5,000 routes): whenever the loop woke while one of them ran, it first waited up to the whole
interval, on top of the machine's own scheduling delay. Next to a busy thread on a loaded 2-core machine, a
1 ms timer's worst lateness was 25-79 ms with 5 ms and 16-28 ms with 1 ms (99th percentile 17-23 against
11-19 ms). Threads pay for the shorter interval only while another thread waits."""


@dataclass(frozen=True)
class XdsSettings:
    """Tunables of the xDS server."""

    debounce_seconds: float = 0.05
    """Shortest time between two plans of a stream for snapshot changes: a change after a quiet spell is
    planned at once, the further changes of a burst wait for the end of this window and are planned together
    (with at most one response per type in flight, the push after that carries the newest snapshot)."""
    listener_drain_seconds: float = defaults.ENVOY_DRAIN_SECONDS
    """How long Envoy drains a replaced or removed listener (its ``--drain-time-s``, 600 by default); what
    the old listener used is kept that long."""
    keepalive_time_seconds: float = 30.0
    """Interval of the server's HTTP/2 pings on idle connections."""
    keepalive_timeout_seconds: float = 10.0
    """A connection whose ping is not answered within this time is closed."""
    min_client_ping_interval_seconds: float = 5.0
    """Proxies may ping this often (Envoy's xds_cluster keepalive) without being told to calm down."""
    max_message_bytes: int = 128 * 1024 * 1024
    """Largest request or response; at least 64 MiB since snapshots of big fleets are large."""

    def __post_init__(self) -> None:
        if self.max_message_bytes < _MIN_MESSAGE_BYTES:
            raise ValueError(f"max_message_bytes must be at least {_MIN_MESSAGE_BYTES}")
        if self.debounce_seconds < 0:
            raise ValueError("debounce_seconds must not be negative")

    def grpc_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.keepalive_time_ms", int(self.keepalive_time_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            (
                "grpc.http2.min_ping_interval_without_data_ms",
                int(self.min_client_ping_interval_seconds * 1000),
            ),
            ("grpc.http2.max_ping_strikes", 0),
            # A second server on the same port must fail loudly instead of silently sharing it.
            ("grpc.so_reuseport", 0),
        ]


class XdsServer:
    """Serves a `SnapshotCache` to Envoy over ADS (both protocol variants)."""

    def __init__(
        self,
        *,
        cache: SnapshotCache,
        settings: XdsSettings | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.cache = cache
        self.settings = settings or XdsSettings()
        self._metrics = XdsMetrics(registry)
        self._observers: list[XdsObserver] = []
        self._services = StreamServices(
            cache=cache,
            metrics=self._metrics,
            settings=StreamSettings(
                debounce_seconds=self.settings.debounce_seconds,
                listener_drain_seconds=self.settings.listener_drain_seconds,
            ),
            observers=self._observers,
        )
        self._streams: dict[int, Stream] = {}
        self._stream_ids = itertools.count(1)
        self._server: grpc.aio.Server | None = None
        self._port: int | None = None
        self._closing = False

    @property
    def metrics(self) -> CollectorRegistry:
        """The Prometheus registry holding this server's metrics (exposed by the admin server)."""
        return self._metrics.registry

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the xDS server is not started")
        return self._port

    @property
    def serving(self) -> bool:
        return self._server is not None and not self._closing

    @property
    def ready(self) -> bool:
        """Serving, and there is configuration to serve."""
        return self.serving and self.cache.has_snapshots()

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def add_observer(self, observer: XdsObserver) -> Callable[[], None]:
        """Call `observer` with every push, ACK and NACK; returns the function that stops it."""
        self._observers.append(observer)

        def remove() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return remove

    async def start(self, *, host: str = "127.0.0.1", port: int = 0, tls: XdsTlsFiles | None = None) -> int:
        """Listen on `host:port` (0: any free port), over TLS when `tls` is given; returns the bound port.
        Also shortens the process's GIL switch interval (``GIL_SWITCH_INTERVAL_SECONDS``), for good: whatever
        else runs threads in this process shares the interpreter with the server's loop."""
        if self._server is not None:
            raise RuntimeError("the xDS server is already started")
        # Process-wide: never lengthened, should something have shortened it further.
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_SECONDS))
        server = grpc.aio.server(options=self.settings.grpc_options())
        server.add_generic_rpc_handlers((self._handler(), proxy_status.handler(self._streams.values)))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        starting: asyncio.Future[None] | None = None
        try:
            # grpc raises RuntimeError("Failed to bind to address ...") for a port it cannot bind, never 0.
            if tls is None:
                bound: int = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, server_credentials(tls))
            starting = asyncio.ensure_future(server.start())
            await asyncio.shield(starting)
        except BaseException:
            # A start cut short (cancelled at shutdown, say) holds the port until the server is stopped, and
            # grpc's stop releases it only once the start has run (on a loaded machine a cancel landing
            # mid-start left the port held): let the start finish, then stop, each whole however many more
            # cancels arrive meanwhile. Neither may hide why the start failed.
            if starting is not None:
                await _waited_out(starting)
            await _waited_out(asyncio.ensure_future(server.stop(None)))
            raise
        self._server, self._port, self._closing = server, bound, False
        security = "plaintext" if tls is None else "mtls" if tls.client_ca is not None else "tls"
        _log.info("xDS server listening", address=address, port=bound, security=security)
        return bound

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        """Stop accepting streams, end the open ones cleanly (status OK), then close within the grace."""
        server = self._server
        if server is None:
            return
        self._closing = True
        for stream in list(self._streams.values()):
            stream.end()
        await server.stop(grace_seconds)
        self._server = None
        _log.info("xDS server stopped")

    def _handler(self) -> grpc.GenericRpcHandler:
        methods = {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(self._serve_sotw),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(self._serve_delta),
        }
        return grpc.method_handlers_generic_handler(_SERVICE, methods)

    async def _serve_sotw(self, requests: AsyncIterator[bytes], context: Any) -> None:
        await self._serve(SotwStream, requests, context)

    async def _serve_delta(self, requests: AsyncIterator[bytes], context: Any) -> None:
        await self._serve(DeltaStream, requests, context)

    async def _serve(self, kind: type[Stream], requests: AsyncIterator[bytes], context: Any) -> None:
        if self._closing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the xDS server is shutting down")
        stream_id = next(self._stream_ids)
        stream = kind(stream_id=stream_id, services=self._services)
        self._streams[stream_id] = stream
        try:
            await stream.run(requests, context)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            if context.cancelled():
                return  # the proxy went away while a response was being written
            # A bug must cost one stream, never the server.
            _log.exception("xDS stream failed", stream=stream_id, node=stream.node_id)
            self._metrics.stream_errors.labels(code=grpc.StatusCode.INTERNAL.name).inc()
            await context.abort(grpc.StatusCode.INTERNAL, "internal error in the xDS server")
        finally:
            del self._streams[stream_id]


async def _waited_out(work: asyncio.Future[None]) -> None:
    """Waits until `work` is done, never passing a cancel on to it: each cancel of the waiting task is taken
    in and the wait goes on (the caller re-raises why it is cleaning up). How `work` ended is read and left:
    the caller's own failure is the one to tell."""
    while not work.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({work})
    if not work.cancelled():
        work.exception()  # read, so that asyncio does not log it as never retrieved
