"""The control plane's admin HTTP port: Prometheus metrics, liveness and readiness, and pages others add.

Kubernetes probes `/healthz` (the process answers) and `/readyz` (it has read its source once, has
configuration to serve and serves it); Prometheus scrapes `/metrics` from the registry given here, which is
the xDS server's own registry rather than the process-wide default. Other components register extra pages
(a status document, a config dump) with `add_json_route` or `add_route`.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from operator import itemgetter
from typing import Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

_log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ReadinessCheck(Protocol):
    def __call__(self) -> bool: ...


class JsonDocument(Protocol):
    """Returns a JSON-serialisable value describing some state, computed on each request. Any iterable
    (a generator too) is written as an array, so a long list need not exist at once."""

    def __call__(self) -> object: ...


class AdminServer:
    """aiohttp server for `/metrics`, `/healthz`, `/readyz` and registered extra routes."""

    def __init__(self, *, registry: CollectorRegistry, ready: ReadinessCheck) -> None:
        self._registry = registry
        self._ready = ready
        self._app = web.Application()
        self._app.router.add_get("/metrics", self._metrics)
        self._app.router.add_get("/healthz", self._healthz)
        self._app.router.add_get("/readyz", self._readyz)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def add_route(self, path: str, handler: Handler, *, method: str = "GET") -> None:
        """Serve `handler` for `method` `path`; only before `start`."""
        if self._runner is not None:
            raise RuntimeError("routes must be added before the admin server starts")
        self._app.router.add_route(method, path, handler)

    def add_json_route(self, path: str, document: JsonDocument) -> None:
        """Serve ``GET path`` as the JSON of `document()` (keys sorted, so output is deterministic),
        streamed as it is encoded (``json_pieces``)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            value = document()  # before the headers go out: a failure here is still a plain 500
            response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
            await response.prepare(request)
            batch: list[str] = []
            size = 0
            for piece in json_pieces(value):
                batch.append(piece)
                size += len(piece)
                if size >= _WRITE_CHARS:
                    await response.write("".join(batch).encode())
                    batch.clear()
                    size = 0
                    await asyncio.sleep(0)  # a large document is encoded between other callbacks (xDS)
            batch.append("\n")
            await response.write("".join(batch).encode())
            await response.write_eof()
            return response

        self.add_route(path, handler)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the admin server is not started")
        return self._port

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on `host:port` (0: any free port) and return the bound port."""
        if self._runner is not None:
            raise RuntimeError("the admin server is already started")
        # Binding the socket here is what lets port 0 report the port the kernel chose.
        sock = bound_socket(host=host, port=port)
        runner = web.AppRunner(self._app, access_log=None)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(sock.getsockname()[1])
        _log.info("admin server listening", host=host, port=self._port)
        return self._port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = None

    async def _metrics(self, _request: web.Request) -> web.StreamResponse:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.StreamResponse:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")


def bound_socket(*, host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv6 when ``host`` has a colon), not yet listening. Whatever
    the bind raises (``OSError``; ``OverflowError`` for a port above 65535), the socket is closed first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


_WRITE_CHARS = 64 * 1024
_EXPANDED_LEVELS = 2
"""Objects and arrays this shallow are laid out one member per line; deeper ones are written on one line."""


def json_pieces(value: object, *, level: int = 0) -> Iterator[str]:
    """``value`` as JSON text, in pieces: the outer ``_EXPANDED_LEVELS`` levels indented one member per
    line (so a status page lists one object per line), everything deeper compact. Only those outer levels
    may be iterators.

    ``json.dumps(indent=...)`` would hold the whole text and millions of small pieces of it at once (about
    100 MiB for the status of 25,000 objects, and a second of encoding on the event loop); here one member
    at a time is encoded, by the C encoder."""
    members: Iterable[tuple[str | None, object]]
    if level >= _EXPANDED_LEVELS or isinstance(value, str | bytes):
        members, opening = (), ""
    elif isinstance(value, Mapping):
        members = sorted(((str(key), item) for key, item in value.items()), key=itemgetter(0))
        opening, closing = "{", "}"
    elif isinstance(value, Iterable):
        members = ((None, item) for item in value)
        opening, closing = "[", "]"
    else:
        opening = ""
    if not opening:
        yield json.dumps(value, sort_keys=True, default=str)
        return
    yield opening
    inner = "\n" + "  " * (level + 1)
    separator = inner
    for key, item in members:
        yield separator if key is None else f"{separator}{json.dumps(key)}: "
        separator = "," + inner
        yield from json_pieces(item, level=level + 1)
    yield closing if separator == inner else "\n" + "  " * level + closing
