"""The admin HTTP port: Prometheus metrics, liveness and readiness, and JSON views of the control plane.

Kept apart from the xDS port so that probes and scrapes never compete with config pushes, and so it can be
bound differently (e.g. only on a pod's network) in production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_log = structlog.get_logger(__name__)

ReadyCheck = Callable[[], bool]
JsonProvider = Callable[[], Any]


class AdminServer:
    def __init__(self, *, registry: CollectorRegistry, ready: ReadyCheck) -> None:
        self._registry = registry
        self._ready = ready
        self._app = web.Application()
        self._app.router.add_get("/metrics", self._metrics)
        self._app.router.add_get("/healthz", self._healthz)
        self._app.router.add_get("/readyz", self._readyz)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the admin server is not started")
        return self._port

    def add_json_route(self, path: str, provider: JsonProvider) -> None:
        """Serve ``provider()`` as JSON at ``path`` (before ``start``)."""

        async def handler(_: web.Request) -> web.Response:
            return web.json_response(provider())

        self._app.router.add_get(path, handler)

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> int:
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only through the asyncio server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]
        self._runner = runner
        _log.info("admin server listening", host=host, port=self._port)
        return self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")
