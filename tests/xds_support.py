"""Test helpers for driving the xDS server against real Envoys: a server on a background event loop, an
event log to wait on, a traffic loop that counts every failed request, and a raw
gRPC client for protocol-level cases Envoy never produces (stale nonces, malformed requests).
"""

from __future__ import annotations

import asyncio
import http.client
import queue
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import Message

from controlplane.admin import AdminServer
from controlplane.bootstrap import XdsClientTls, render_bootstrap
from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.devtools.fake_backend import FakeBackend
from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.resource import CLUSTER
from controlplane.xds.server import XdsEvent, XdsServer, XdsSettings, XdsTlsFiles
from tests import xds_builders
from tests.polling import wait_until

_T = TypeVar("_T")

EnvoyFactory = Callable[..., EnvoyProcess]
"""The `envoys` fixture: start an Envoy in the test's ADS variant (``node_id=``, ``cluster=``)."""
BackendFactory = Callable[[str], FakeBackend]
"""The `backends` fixture: start a fake OpenAI backend by name."""

SERVICE = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
# Envoy drains replaced listeners this long in tests (see `envoy_args`); the server keeps what they use
# a little longer.
ENVOY_DRAIN_SECONDS = 1
SERVER_DRAIN_SECONDS = 2.0


class EventLog:
    """Thread-safe record of the server's events (an `XdsObserver`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[XdsEvent] = []

    def __call__(self, event: XdsEvent, /) -> None:
        with self._lock:
            self._events.append(event)

    def all(self, *, kind: str | None = None, type_url: str | None = None) -> list[XdsEvent]:
        with self._lock:
            events = list(self._events)
        return [
            e
            for e in events
            if (kind is None or e.kind == kind) and (type_url is None or e.type_url == type_url)
        ]

    def acked(self, type_url: str, node_id: str | None = None) -> dict[str, str]:
        """What the proxy holds of `type_url` by its ACKs: name -> version (SotW sets and delta diffs)."""
        held: dict[str, str] = {}
        for event in self.all(type_url=type_url):
            if event.kind != "ack" or (node_id is not None and event.node_id != node_id):
                continue
            if event.mode == "sotw":
                held = dict(event.resources)
            else:
                held.update(event.resources)
                for name in event.removed:
                    held.pop(name, None)
        return held

    def holds(self, snapshot: Snapshot, type_url: str, node_id: str | None = None) -> bool:
        """Whether the proxy ACKed exactly the snapshot's content of `type_url`."""
        wanted = {name: resource.version for name, resource in snapshot.get(type_url).items()}
        return self.acked(type_url, node_id) == wanted


class ServerThread:
    """An `XdsServer` and its `AdminServer` on an event loop of their own, driven from test code."""

    def __init__(self, settings: XdsSettings, *, port: int = 0, tls: XdsTlsFiles | None = None) -> None:
        self.cache = SnapshotCache()
        self._closed = False
        self.events = EventLog()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="xds-server", daemon=True)
        self._thread.start()
        try:
            self.server: XdsServer = self.run(self._make_server(settings))
            self.admin = AdminServer(registry=self.server.metrics, ready=lambda: self.server.ready)
        except BaseException:
            self._end_loop()
            raise
        # A start that fails (its port taken, say) has no caller to close it: the servers and the loop
        # thread would outlive the test.
        try:
            self.port = self.run(self.server.start(port=port, tls=tls))
            self.admin_port = self.run(self.admin.start())
        except BaseException:
            self.close()
            raise

    async def _make_server(self, settings: XdsSettings) -> XdsServer:
        server = XdsServer(cache=self.cache, settings=settings)
        server.add_observer(self.events)
        return server

    def run(self, work: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        name = repr(work)
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"{name} still running on the xDS server loop after {timeout} s") from None

    def call(self, function: Callable[[], _T]) -> _T:
        """Run `function` on the server's loop (to read its state without racing it)."""

        async def call() -> _T:
            return function()

        return self.run(call())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            try:
                self.run(self.server.stop(grace_seconds=1.0))
            finally:
                self.run(self.admin.stop())
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def envoy_args() -> list[str]:
    """Envoy flags for tests: close the connections of a replaced listener right away, drain briefly."""
    return ["--drain-strategy", "immediate", "--drain-time-s", str(ENVOY_DRAIN_SECONDS)]


def start_envoy(
    *, xds_port: int, mode: str, node_id: str, cluster: str = "ai-gateway", tls: XdsClientTls | None = None
) -> EnvoyProcess:
    bootstrap = render_bootstrap(
        xds_address=f"127.0.0.1:{xds_port}",
        delta=mode == "delta",
        node_id=node_id,
        cluster=cluster,
        admin_port=0,
        tls=tls,
    )
    envoy = EnvoyProcess(bootstrap_yaml=bootstrap, concurrency=2, extra_args=envoy_args())
    try:
        envoy.start()
    except BaseException:
        envoy.stop()  # removes the work directory the start made
        raise
    return envoy


def http_get(port: int, path: str = "/v1/models", *, timeout: float = 5.0) -> tuple[int, str]:
    """One GET through Envoy on a fresh connection: (status, x-fake-backend header)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("x-fake-backend") or ""
    finally:
        connection.close()


def wait_for_backend(port: int, backend: str) -> None:
    """Poll through Envoy until `backend` answers (a new listener accepts a moment after Envoy is LIVE)."""

    def answered() -> bool:
        try:
            return http_get(port) == (200, backend)
        except OSError:
            return False

    wait_until(answered, message=f"{backend} to answer through port {port}")


_CHAT_BODY = b'{"messages": [{"role": "user", "content": "hello"}]}'


@dataclass
class TrafficLoop:
    """Clients sending GETs (or, with ``chat``, chat completions) through Envoy until stopped: keep-alive ones
    and one opening a connection per request. Every answer other than 200 and every connection error counts
    as a failure."""

    port: int
    keepalive_clients: int = 2
    host: str | None = None
    """The Host header, for a listener with virtual hosts by name."""
    chat: bool = False
    """POST a chat completion instead of ``GET /v1/models`` (which a translated Gateway answers itself)."""
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> TrafficLoop:
        modes = [True] * self.keepalive_clients + [False]
        self._threads = [threading.Thread(target=self._client, args=(keep,), daemon=True) for keep in modes]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def total(self) -> int:
        with self._lock:
            return sum(self.answers.values()) + len(self.failures)

    def _record(self, answer: str | None, failure: str | None) -> None:
        with self._lock:
            if answer is not None:
                self.answers[answer] += 1
            if failure is not None:
                self.failures.append(failure)

    def _client(self, keepalive: bool) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                headers = {"host": self.host} if self.host else {}
                if self.chat:
                    headers["content-type"] = "application/json"
                    connection.request("POST", "/v1/chat/completions", body=_CHAT_BODY, headers=headers)
                else:
                    connection.request("GET", "/v1/models", headers=headers)
                response = connection.getresponse()
                response.read()
                backend = response.getheader("x-fake-backend") or ""
                if response.status == 200:
                    self._record(backend, None)
                else:
                    self._record(None, f"{response.status} from {backend or 'envoy'}")
                if not keepalive or response.getheader("connection") == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as error:
                self._record(None, repr(error))
                connection = None


class RawStream:
    """A hand-driven ADS stream (raw bytes both ways) for requests no Envoy would send."""

    def __init__(self, *, port: int, delta: bool, max_message_bytes: int = 4 * 1024 * 1024) -> None:
        limits = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=limits)
        method = SERVICE + ("DeltaAggregatedResources" if delta else "StreamAggregatedResources")
        self._requests: queue.Queue[bytes | None] = queue.Queue()
        self._call = self._channel.stream_stream(method)(self._iterate(), timeout=30)
        self._response_class = (
            discovery_pb2.DeltaDiscoveryResponse if delta else discovery_pb2.DiscoveryResponse
        )

    def _iterate(self) -> Iterator[bytes]:
        while (item := self._requests.get()) is not None:
            yield item

    def send(self, request: Message | bytes) -> None:
        self._requests.put(request if isinstance(request, bytes) else request.SerializeToString())

    def receive(self) -> Any:
        return self._response_class.FromString(next(self._call))

    def finish(self) -> grpc.StatusCode:
        """Half-close and return the final status (the error status, if the server ended the stream)."""
        self._requests.put(None)
        try:
            for _ in self._call:
                pass
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code
        return grpc.StatusCode.OK

    def error(self) -> tuple[grpc.StatusCode, str]:
        """Wait for the server to end the stream with an error; return its code and message."""
        try:
            for _ in self._call:
                pass
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._channel.close()


def node(node_id: str = "raw-client") -> base_pb2.Node:
    return base_pb2.Node(id=node_id, cluster="ai-gateway")


def http_route_snapshot(
    *, generation: str, port: int, backend_port: int, internal_hop: bool = False
) -> Snapshot:
    """Listener (RDS) -> route -> EDS cluster -> backend, every name carrying `generation`.

    With `internal_hop`, the cluster's endpoint is an internal listener whose inline route leads to a second
    EDS cluster in front of the backend, as the translator builds per-backend hops.
    """
    listener = xds_builders.http_listener(
        f"listener-{generation}", port=port, rds_name=f"routes-{generation}"
    )
    routes = xds_builders.route_configuration(f"routes-{generation}", routes=[("/", f"front-{generation}")])
    if not internal_hop:
        return Snapshot.from_resources(
            listeners=[listener],
            routes=[routes],
            clusters=[xds_builders.eds_cluster(f"front-{generation}")],
            endpoints=[
                xds_builders.load_assignment(
                    f"front-{generation}", socket_endpoints=[("127.0.0.1", backend_port)]
                )
            ],
        )
    hop = xds_builders.http_listener(
        f"hop-{generation}",
        route_config=xds_builders.route_configuration(
            f"hop-{generation}", routes=[("/", f"backend-{generation}")]
        ),
    )
    return Snapshot.from_resources(
        listeners=[listener, hop],
        routes=[routes],
        clusters=[
            xds_builders.eds_cluster(f"front-{generation}"),
            xds_builders.eds_cluster(f"backend-{generation}"),
        ],
        endpoints=[
            xds_builders.load_assignment(f"front-{generation}", internal_listeners=[f"hop-{generation}"]),
            xds_builders.load_assignment(
                f"backend-{generation}", socket_endpoints=[("127.0.0.1", backend_port)]
            ),
        ],
    )


def refused_by_envoy(cluster: cluster_pb2.Cluster) -> cluster_pb2.Cluster:
    """A copy of `cluster` Envoy rejects: protocol options for an extension that does not exist."""
    bad = cluster_pb2.Cluster()
    bad.CopyFrom(cluster)
    options = any_pb2.Any()
    options.Pack(empty_pb2.Empty())
    bad.typed_extension_protocol_options["example.unknown"].CopyFrom(options)
    return bad


def replace_cluster(snapshot: Snapshot, cluster: cluster_pb2.Cluster) -> Snapshot:
    by_type = {
        type_url: [r.message for r in snapshot.get(type_url).values()] for type_url in snapshot.resources
    }
    by_type[CLUSTER] = [
        cluster if name == cluster.name else resource.message
        for name, resource in snapshot.get(CLUSTER).items()
    ]
    return Snapshot.from_resources(by_type)
