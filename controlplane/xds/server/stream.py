"""One ADS stream: a proxy's requests in, planned responses out, for either protocol variant.

A stream is a single asyncio task owning all its state: a reader task turns incoming messages into queue
items, the snapshot cache's watcher (possibly on another thread) schedules a throttled refresh item, and the
stream's loop handles every queued item before planning and sending what is due, a slice of work at a time
in turns shared with the other streams (``turns.py``). At most one response per type is in flight; the next
is planned from the newest snapshot once the proxy has answered, so bursts of snapshots collapse into one
push. The stream's one lock guards an ending stream handing its state over against a worker thread reading
that state (a large plan, ``thread_work``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, ParamSpec, TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError, Message

from controlplane.heap import release_gradually
from controlplane.redaction import redacted_envoy_text
from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, TYPE_URLS, short_type_name
from controlplane.xds.server import thread_work
from controlplane.xds.server.events import Mode, XdsEvent, XdsObserver, notify
from controlplane.xds.server.metrics import XdsMetrics
from controlplane.xds.server.reply import Reply
from controlplane.xds.server.stream_state import Planner, StreamState
from controlplane.xds.server.turns import Turns
from controlplane.xds.server.type_state import InFlight, TypeState

_log = structlog.get_logger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")


class BadRequest(Exception):
    """A request this server cannot serve; ends the stream with INVALID_ARGUMENT and this message."""


@dataclass(frozen=True)
class StreamSettings:
    debounce_seconds: float
    listener_drain_seconds: float


@dataclass(frozen=True)
class StreamServices:
    """What the server lends every stream."""

    cache: SnapshotCache
    metrics: XdsMetrics
    settings: StreamSettings
    observers: Sequence[XdsObserver]
    turns: Turns = field(default_factory=Turns)
    """Shares the loop out among the streams' slices of work."""


class _Signal:
    """Queue items that are not requests."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class _StreamEnded(Exception):
    """Work for a worker thread found its stream ended before it began (raised to no one)."""


_REFRESH = _Signal("refresh")
_END_OF_REQUESTS = _Signal("end-of-requests")
_SHUTDOWN = _Signal("shutdown")


class Stream(abc.ABC):
    """Protocol-independent part of a stream; subclasses speak SotW or Delta."""

    mode: Mode
    request_type: ClassVar[type[Message]]
    """DiscoveryRequest or DeltaDiscoveryRequest."""

    def __init__(self, *, stream_id: int, services: StreamServices) -> None:
        self.stream_id = stream_id
        self.node_id: str | None = None
        self.node_cluster = ""
        self.group: str | None = None
        self.snapshot: Snapshot | None = None
        self.state = StreamState()
        self._services = services
        self._metrics = services.metrics
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._debounce: asyncio.TimerHandle | None = None
        self._last_refresh = -math.inf
        """Loop time of the last refresh queued for a snapshot change."""
        self._drain_timers: list[asyncio.TimerHandle] = []
        self._unwatch: Callable[[], None] | None = None
        self._next_sequence = 0
        self._reading_state = threading.Lock()
        """Held by a worker thread while it reads the stream's state (the stream waits for it, unless it
        ended meanwhile), and by an ending stream handing its state over."""
        self._ended = False
        """Set by an ending stream: work still queued for a worker thread then reads nothing."""
        self._log = _log.bind(stream=stream_id, mode=self.mode)
        self.connected_at = time.monotonic()

    def end(self) -> None:
        """Ask the stream to finish cleanly (status OK) as soon as it is idle."""
        self._queue.put_nowait(_SHUTDOWN)

    async def run(self, requests: AsyncIterator[bytes], context: Any) -> None:
        reader = asyncio.create_task(self._read(requests))
        try:
            while True:
                items = [await self._queue.get()]
                await self._services.turns.take()  # a change wakes every stream at once (``turns.py``)
                while not self._queue.empty():
                    items.append(self._queue.get_nowait())
                for item in items:
                    if item is _SHUTDOWN or item is _END_OF_REQUESTS:
                        return
                    if item is _REFRESH:
                        self._refresh()
                    elif isinstance(item, bytes):
                        await self._handle(item)
                await self._push(context)
        except BadRequest as error:
            self._metrics.stream_errors.labels(code=grpc.StatusCode.INVALID_ARGUMENT.name).inc()
            self._log.warning("bad xDS request, closing stream", node=self.node_id, error=str(error))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        finally:
            reader.cancel()
            self._close()

    def _parse(self, raw: bytes) -> Any:
        """Decode one request; BadRequest when it is not a valid message or names no type."""
        name = self.request_type.DESCRIPTOR.name
        try:
            request: Any = self.request_type.FromString(raw)
        except DecodeError as error:
            raise BadRequest(f"malformed {name}: {error}") from None
        if not request.type_url:
            raise BadRequest(f"a {name} on an aggregated stream must set type_url")
        return request

    # --- protocol hooks -------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def _on_request(self, request: Any, state: TypeState) -> None:
        """Apply one request of an identified node to the type's state."""

    @abc.abstractmethod
    def _response(
        self, state: TypeState, target: dict[str, XdsResource], sequence: int
    ) -> tuple[Reply, InFlight] | None:
        """The response bringing Envoy to `target` (numbered `sequence`, which is also its nonce), or None
        when nothing needs saying."""

    @abc.abstractmethod
    def _apply_ack(
        self, state: TypeState, in_flight: InFlight, *, refused: frozenset[str] = frozenset()
    ) -> None:
        """Record that Envoy now holds what `in_flight` carried, except the `refused` names (whose previous
        versions it keeps)."""

    # --- shared machinery -----------------------------------------------------------------------------------

    async def _read(self, requests: AsyncIterator[bytes]) -> None:
        try:
            async for raw in requests:
                self._queue.put_nowait(raw)
        finally:
            self._queue.put_nowait(_END_OF_REQUESTS)

    async def _handle(self, raw: bytes) -> None:
        request = self._parse(raw)
        if self.node_id is None:
            self._identify(request.node)
        type_url = request.type_url
        if type_url not in self.state.types:
            raise BadRequest(f"unknown type URL {type_url!r}; served: {', '.join(sorted(TYPE_URLS))}")
        await self._on_request(request, self.state.types[type_url])

    def _identify(self, node: Any) -> None:
        if not node.id:
            raise BadRequest("the first request of a stream must carry the node (with an id)")
        self.node_id = node.id
        self.node_cluster = node.cluster
        self._log = self._log.bind(node=node.id)
        self._unwatch = self._services.cache.watch(self._on_cache_change)
        self._metrics.connected_proxies.labels(mode=self.mode).inc()
        found = self._services.cache.for_node(node_id=node.id, node_cluster=node.cluster)
        self.group, self.snapshot = found.group, found.snapshot
        self._log.info("proxy connected", cluster=node.cluster, group=self.group)

    def _on_cache_change(self, _group: str | None) -> None:
        # Called on whichever thread set the snapshot; only hop onto this stream's loop (if it still runs).
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._schedule_refresh)

    def _schedule_refresh(self) -> None:
        # Leading edge: a change after a quiet spell is planned at once (a lone change pays no delay);
        # changes within ``debounce_seconds`` of the last refresh wait for the end of that window and are
        # planned together from the newest snapshot.
        if self._debounce is not None:
            return
        wait = self._last_refresh + self._services.settings.debounce_seconds - self._loop.time()
        if wait <= 0:
            self._debounce_elapsed()
        else:
            self._debounce = self._loop.call_later(wait, self._debounce_elapsed)

    def _debounce_elapsed(self) -> None:
        self._debounce = None
        self._last_refresh = self._loop.time()
        self._queue.put_nowait(_REFRESH)

    def _refresh(self) -> None:
        if self.node_id is None:
            return
        found = self._services.cache.for_node(node_id=self.node_id, node_cluster=self.node_cluster)
        self.group, self.snapshot = found.group, found.snapshot

    async def _push(self, context: Any) -> None:
        if self.snapshot is None:
            return
        planner = self.state.plan(self.snapshot, now=time.monotonic())
        wrote = False
        for type_url in TYPE_URLS:
            state = self.state.types[type_url]
            if not state.subscribed or state.in_flight is not None:
                continue
            if wrote:
                # Writing let the loop run (and other streams' work): this type's plan waits for a turn.
                await self._services.turns.take()
                wrote = False
            sequence = self._next_sequence + 1
            if thread_work.worth_a_thread(planner.work(type_url, enough=thread_work.ITEMS_WORTH_A_THREAD)):
                response = await self._in_thread(self._planned_response, planner, state, sequence)
            else:
                response = self._planned_response(planner, state, sequence)
            if response is None:
                continue
            self._next_sequence += 1
            reply, in_flight, resend = response
            if resend:
                self.state.types[ENDPOINT].resend.update(resend)
            if type_url == LISTENER:
                self._drain(in_flight)
            state.in_flight = in_flight
            state.last_nonce = in_flight.nonce
            state.response_owed = False
            state.resend.clear()
            labels = {"type": short_type_name(type_url), "mode": self.mode}
            self._metrics.pushes.labels(**labels).inc()
            self._metrics.resources_sent.labels(**labels).inc(len(in_flight.sent))
            self._emit("push", state, in_flight)
            await context.write(await reply.serialize(turns=self._services.turns))
            wrote = True

    def _planned_response(
        self, planner: Planner, state: TypeState, sequence: int
    ) -> tuple[Reply, InFlight, set[str]] | None:
        """The response numbered ``sequence`` that brings ``state``'s type to what ``planner`` plans for it,
        and the load assignments to send again; None when nothing needs saying (or can be sent yet)."""
        target = planner.target(state.type_url)
        response = None if target is None else self._response(state, target, sequence)
        if response is None:
            return None
        resend = state.endpoints_to_resend(response[1]) if state.type_url == CLUSTER else set()
        return *response, resend

    async def _in_thread(self, work: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``work``, which reads the stream's state, in a worker thread, this task waiting: only it changes
        the stream's state meanwhile. The stream goes on in a turn of its own (``turns.py``): a change's plans
        come back from the threads together, and every stream's next slice would run in one loop round."""
        done = await thread_work.in_worker_thread(self._reading, work, *args, **kwargs)
        await self._services.turns.take()
        return done

    def _reading(self, work: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``work`` run in a worker thread while the stream's state is not handed over (``_close``)."""
        with self._reading_state:
            if self._ended:
                # Queued before the stream ended: nobody waits for the result any more.
                raise _StreamEnded
            return work(*args, **kwargs)

    def _drain(self, in_flight: InFlight) -> None:
        delay = self._services.settings.listener_drain_seconds
        if self.state.drain_replaced_listeners(
            in_flight, full=self.mode == "sotw", until=in_flight.sent_at + delay
        ):
            # Re-plan when the drain ends, so what only the drained listener used is removed then.
            self._drain_timers = [timer for timer in self._drain_timers if timer.when() > self._loop.time()]
            self._drain_timers.append(self._loop.call_later(delay, self._queue.put_nowait, _REFRESH))

    def _settle(self, state: TypeState, nonce: str, error: Any | None) -> None:
        """Handle the answer to the in-flight response `nonce` (error: the NACK's google.rpc.Status)."""
        in_flight = state.in_flight
        if in_flight is None or in_flight.nonce != nonce:
            return
        state.in_flight = None
        self.state.answered_through = max(self.state.answered_through, in_flight.sequence)
        latency = time.monotonic() - in_flight.sent_at
        short = short_type_name(state.type_url)
        self._metrics.push_to_ack.labels(type=short).observe(latency)
        if error is None:
            self._apply_ack(state, in_flight)
            self._metrics.acks.labels(type=short, mode=self.mode).inc()
            self._emit("ack", state, in_flight, latency_seconds=latency)
            return
        # Envoy's reason quotes the message it refused, credentials and all: only the redacted text is kept.
        reason = redacted_envoy_text(error.message)
        refused = state.record_nack(in_flight, reason)
        if refused != in_flight.sent.keys():
            self._apply_ack(state, in_flight, refused=refused)
        self._metrics.nacks.labels(type=short, mode=self.mode).inc()
        self._log.warning(
            "proxy rejected configuration",
            type=short,
            nonce=nonce,
            refused=sorted(refused),
            error=reason,
        )
        self._emit(
            "nack",
            state,
            in_flight,
            error=reason,
            refused=tuple(sorted(refused)),
            latency_seconds=latency,
        )

    def _emit(
        self, kind: Literal["push", "ack", "nack"], state: TypeState, in_flight: InFlight, **extra: Any
    ) -> None:
        if not self._services.observers:
            return
        event = XdsEvent(
            kind=kind,
            mode=self.mode,
            node_id=self.node_id or "",
            type_url=state.type_url,
            nonce=in_flight.nonce,
            sent=in_flight.sent,
            removed=in_flight.removed,
            **extra,
        )
        notify(self._services.observers, event, log=self._log)

    def _close(self) -> None:
        if self._debounce is not None:
            self._debounce.cancel()
            self._debounce = None
        for timer in self._drain_timers:
            timer.cancel()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self.node_id is not None:
            self._metrics.connected_proxies.labels(mode=self.mode).dec()
            self._log.info("proxy disconnected")
        self._ended = True
        # What a proxy holds (thousands of names and resources per type) would be freed in one C call per
        # container as the stream goes, holding the loop: a worker thread frees it an item at a time. Not
        # while a worker thread reads it: it is then left to be freed as a whole.
        if self._reading_state.acquire(blocking=False):
            owned = [container for state in self.state.types.values() for container in state.hand_over()]
            self._reading_state.release()
            if thread_work.worth_a_thread(sum(map(len, owned))):
                self._release(*owned)

    def _release(self, *containers: dict[Any, Any] | set[Any] | list[Any]) -> None:
        """Has a worker thread free ``containers``, which only this stream held (see ``heap``)."""
        # At shutdown the loop's executor may be gone: then they are freed here, as before.
        with contextlib.suppress(RuntimeError):
            self._loop.run_in_executor(None, release_gradually, *containers)
