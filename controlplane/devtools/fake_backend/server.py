"""Lifecycle of a fake backend: its own event loop in a daemon thread, driven from synchronous test code.

Tests, the demo and benchmarks are synchronous and also drive Envoy and the control plane, so the backend
runs an asyncio loop in a thread of its own; every public method hands work to that loop and waits for it,
which keeps all server state confined to one thread. Listening is managed here rather than by aiohttp's runner
because the ``Refuse`` mode must stop listening while keeping the port: the listening socket is replaced by a
bound socket that does not listen (the kernel refuses connections to it), which listens again on recovery.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from controlplane.devtools.fake_backend._responses import Responder
from controlplane.devtools.fake_backend.metrics import ServerLoad
from controlplane.devtools.fake_backend.modes import Mode, Normal, Refuse
from controlplane.devtools.fake_backend.recorder import ReceivedRequest, RequestLog, RequestPredicate

__all__ = ["FakeBackend", "TlsFiles", "TlsKeyPair"]

_log = structlog.get_logger(__name__)
_T = TypeVar("_T")
# Bounds on how long the calling thread waits for the server thread; generous, since CI machines stall.
_CALL_TIMEOUT = 10.0
_JOIN_TIMEOUT = 5.0
_BACKLOG = 128


class TlsKeyPair(Protocol):
    """Server certificate chain and key files (``controlplane.devtools.certs.DevCerts`` is one)."""

    @property
    def cert_file(self) -> Path: ...

    @property
    def key_file(self) -> Path: ...


@dataclass(frozen=True)
class TlsFiles:
    """A plain :class:`TlsKeyPair`, e.g. from command-line arguments."""

    cert_file: Path
    key_file: Path


class _ConnectionServer(web.Server):
    """aiohttp's low-level server, setting TCP_NODELAY on every accepted connection and able to drop them all.

    Without TCP_NODELAY, Envoy's delayed ACKs and Nagle's algorithm here stall each answer by ~40 ms. aiohttp
    and asyncio happen to set it today; the benchmarks depend on it, so it is not left to their defaults.
    """

    def __init__(self, responder: Responder) -> None:
        # handler_cancellation: a handler (e.g. a slow answer) is cancelled when its connection goes.
        super().__init__(responder, handler_cancellation=True, access_log=None)
        self._open: dict[RequestHandler, asyncio.Transport] = {}
        self._none_open = asyncio.Event()
        self._none_open.set()

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open[handler] = transport
        self._none_open.clear()
        super().connection_made(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._open.pop(handler, None)
        if not self._open:
            self._none_open.set()
        super().connection_lost(handler, exc)

    async def drop_connections(self) -> None:
        """Abort every open connection and return once all are closed."""
        for transport in list(self._open.values()):
            # abort, not close: a TLS close would wait for the peer's close_notify.
            transport.abort()
        async with asyncio.timeout(_CALL_TIMEOUT / 2):
            await self._none_open.wait()


class FakeBackend:
    """An OpenAI-compatible fake model backend on loopback, with recording and switchable faults.

    ``port=0`` lets the OS choose; the chosen port is kept for the object's life, so ``stop()`` then
    ``start()`` (and ``Refuse`` then ``Normal``) serve on the same port again.
    """

    def __init__(
        self,
        *,
        name: str,
        model: str,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TlsKeyPair | None = None,
    ) -> None:
        self._name = name
        self._model = model
        self._host = host
        self._port = port
        self._ssl = _server_context(tls) if tls is not None else None
        self._server_names: weakref.WeakKeyDictionary[ssl.SSLObject, str] = weakref.WeakKeyDictionary()
        if self._ssl is not None:
            self._ssl.sni_callback = self._remember_server_name
        self._log = RequestLog()
        self._mode: Mode = Normal()
        self._load = ServerLoad()
        # Serialises start/stop/set_mode callers; server state itself is only touched on the loop thread.
        self._lifecycle = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._web_server: _ConnectionServer | None = None
        self._listener: asyncio.Server | None = None
        self._held_port: socket.socket | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self) -> str:
        return self._model

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError(f"fake backend {self._name} has no port yet: start it first")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{'https' if self._ssl is not None else 'http'}://{host}:{self.port}"

    @property
    def received(self) -> list[ReceivedRequest]:
        """A copy of every request received so far (since the last :meth:`clear`), oldest first."""
        return self._log.snapshot()

    def clear(self) -> None:
        self._log.clear()

    def wait_for(
        self, count: int, *, timeout: float = 5.0, where: RequestPredicate | None = None
    ) -> list[ReceivedRequest]:
        """Wait for ``count`` requests (matching ``where``, if given); return all the matching ones.

        Raises TimeoutError when fewer arrived within ``timeout`` seconds.
        """
        return self._log.wait_for(count, timeout=timeout, where=where)

    def set_mode(self, mode: Mode) -> None:
        """Switch the fault mode; in force for every request read after this returns."""
        with self._lifecycle:
            if self._loop is None:
                self._mode = mode
                return
            self._call(self._loop, self._apply_mode(mode))
        _log.info("fake backend mode changed", backend=self._name, mode=repr(mode))

    def set_load(self, load: ServerLoad) -> None:
        """What ``/metrics`` reports from now on (one assignment: safe while the server thread reads it)."""
        self._load = load

    def start(self) -> None:
        """Start serving (listening, or holding the port if the mode is ``Refuse``); returns once ready."""
        with self._lifecycle:
            if self._loop is not None:
                raise RuntimeError(f"fake backend {self._name} is already started")
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=_run_loop, args=(loop,), name=f"fake-backend-{self._name}", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
            try:
                self._call(loop, self._open())
            except BaseException:
                self._halt()
                raise
        _log.info("fake backend started", backend=self._name, model=self._model, url=self.url)

    def stop(self) -> None:
        """Close the listener and all connections, and end the thread. Safe to repeat, or if never started."""
        with self._lifecycle:
            if self._loop is None:
                return
            try:
                self._call(self._loop, self._close())
            finally:
                self._halt()
        _log.info("fake backend stopped", backend=self._name)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- everything below runs on the loop thread, except _call and _halt -------------------------------

    def _call(self, loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, _T]) -> _T:
        name = repr(work)
        future = asyncio.run_coroutine_threadsafe(work, loop)
        try:
            return future.result(timeout=_CALL_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"fake backend {self._name}: {name} not done after {_CALL_TIMEOUT} s on its loop"
            ) from None

    def _halt(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(_JOIN_TIMEOUT)
            if thread.is_alive():
                _log.warning("fake backend thread did not end", backend=self._name)

    async def _open(self) -> None:
        self._web_server = _ConnectionServer(
            Responder(
                name=self._name,
                model=self._model,
                log=self._log,
                mode=lambda: self._mode,
                server_names=self._server_names,
                load=lambda: self._load,
            )
        )
        if isinstance(self._mode, Refuse):
            self._held_port = self._bind()
        else:
            await self._listen()

    async def _close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._held_port is not None:
            self._held_port.close()
            self._held_port = None
        await self._manager().drop_connections()
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None

    async def _apply_mode(self, mode: Mode) -> None:
        refusing = isinstance(self._mode, Refuse)
        self._mode = mode
        if isinstance(mode, Refuse) and not refusing:
            await self._stop_listening()
        elif refusing and not isinstance(mode, Refuse):
            await self._listen()

    async def _listen(self) -> None:
        sock, self._held_port = self._held_port or self._bind(), None
        try:
            sock.listen(_BACKLOG)
            self._listener = await asyncio.get_running_loop().create_server(
                self._manager(), sock=sock, ssl=self._ssl
            )
        except BaseException:
            sock.close()
            raise

    async def _stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.close()  # closes the listening socket now, freeing the port for _bind
            self._held_port = self._bind()
            await self._manager().drop_connections()
            await self._listener.wait_closed()
            self._listener = None

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Lets the port be bound again while connections of its previous listener linger in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        return sock

    def _manager(self) -> _ConnectionServer:
        if self._web_server is None:
            raise RuntimeError("fake backend server used before it was opened")
        return self._web_server

    def _remember_server_name(
        self, ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        if server_name is not None:
            self._server_names[ssl_object] = server_name


def _server_context(tls: TlsKeyPair) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    # aiohttp speaks HTTP/1.1 only; offering it keeps an ALPN-using client (Envoy) from picking h2.
    context.set_alpn_protocols(["http/1.1"])
    return context


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
