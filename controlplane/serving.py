"""The running control plane: a source of manifests feeding the pipeline, the snapshot cache and ADS.

The source is a folder of files or a Kubernetes API server; each object's verdict goes back to the source,
which writes it as status where it can.

Every load is translated as a whole and set as one snapshot, so Envoy always gets a consistent view. A
load that cannot become a consistent snapshot (a translator bug, never user input) is refused by the cache
and the previous snapshot keeps serving. Problems are logged when they appear or go away, not on every
reload, so a log shows what changed; the current list is always on the admin port's ``/status``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from controlplane import defaults
from controlplane.admin import AdminServer
from controlplane.gatewayapi import ObjectStatus, TranslateOptions
from controlplane.pipeline import translate
from controlplane.render import status_document
from controlplane.resources.parse import LoadResult
from controlplane.resources.problems import ObjectKey, Problem, Severity, sorted_problems
from controlplane.sources.base import Source
from controlplane.sources.files import FileLimits, FileSource
from controlplane.xds.cache import InconsistentSnapshotError, SnapshotCache
from controlplane.xds.server import XdsServer, XdsSettings, XdsTlsFiles

if TYPE_CHECKING:
    from controlplane.sources.kubernetes import KubernetesOptions

_log = structlog.get_logger(__name__)


@dataclass
class StatusBoard:
    """The latest translation's outcome, for ``/status`` and for logging only what changed."""

    statuses: dict[ObjectKey, ObjectStatus] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    snapshot_version: str | None = None
    loads: int = 0
    source: Source | None = None

    def document(self) -> dict[str, Any]:
        return {
            "source": self.source.state() if self.source else {},
            "snapshotVersion": self.snapshot_version,
            "loads": self.loads,
            "problems": [problem.format() for problem in self.problems],
            "objects": status_document(self.statuses),
        }


class SnapshotPublisher:
    """Translates each load and publishes it as the snapshot in ``cache``, keeping a status board."""

    def __init__(self, *, cache: SnapshotCache, options: TranslateOptions) -> None:
        self._cache = cache
        self._options = options
        self.board = StatusBoard()

    async def __call__(self, result: LoadResult) -> Mapping[ObjectKey, ObjectStatus]:
        translated = translate(result.resource_set(), options=self._options)
        problems = sorted_problems([*result.problems, *translated.problems])
        self._log_changes(problems)
        snapshot = translated.snapshot()
        try:
            self._cache.set_snapshot(snapshot)
        except InconsistentSnapshotError as exc:
            _log.error("translation refused, previous configuration kept", reason=exc.reason)
        else:
            self.board.snapshot_version = snapshot.version
            _log.info("configuration set", version=snapshot.version, objects=len(result.objects))
        self.board.statuses = translated.statuses
        self.board.problems = problems
        self.board.loads += 1
        return translated.statuses

    def _log_changes(self, problems: list[Problem]) -> None:
        before = {problem.format() for problem in self.board.problems}
        now = {problem.format() for problem in problems}
        for problem in problems:
            line = problem.format()
            if line in before:
                continue
            if problem.severity is Severity.ERROR:
                _log.error("rejected", problem=line)
            elif problem.severity is Severity.WARNING:
                _log.warning("warning", problem=line)
            else:
                _log.info("note", problem=line)
        for line in sorted(before - now):
            _log.info("resolved", problem=line)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    paths: tuple[Path, ...] = ()
    kubernetes: KubernetesOptions | None = None
    """Watch a Kubernetes API server instead of ``paths``."""
    address: str = defaults.BIND_ADDRESS
    xds_port: int = defaults.XDS_PORT
    xds_tls: XdsTlsFiles | None = None
    """Serve xDS over TLS (mTLS when it names a client CA) instead of plaintext."""
    admin_port: int = defaults.ADMIN_PORT
    translation: TranslateOptions = field(default_factory=TranslateOptions)
    debounce_seconds: float = defaults.DEBOUNCE_SECONDS
    file_limits: FileLimits = field(default_factory=FileLimits)
    envoy_drain_seconds: float = defaults.ENVOY_DRAIN_SECONDS
    shutdown_grace_seconds: float = 5.0


async def serve(options: ServeOptions) -> None:
    """Runs until SIGINT/SIGTERM, then drains the streams and returns."""
    cache = SnapshotCache()
    publisher = SnapshotPublisher(cache=cache, options=options.translation)
    source = _source(options)
    publisher.board.source = source
    server = XdsServer(cache=cache, settings=XdsSettings(listener_drain_seconds=options.envoy_drain_seconds))
    admin = AdminServer(registry=server.metrics, ready=lambda: server.ready and source.synced())
    admin.add_json_route("/status", publisher.board.document)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start(host=options.address, port=options.xds_port, tls=options.xds_tls)
    await admin.start(host=options.address, port=options.admin_port)
    watcher = asyncio.create_task(source.run(publisher), name="source")
    stopped = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait({watcher, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if watcher in done:
            watcher.result()  # a crash of the source is a bug: surface it
    finally:
        watcher.cancel()
        stopped.cancel()
        _log.info("shutting down")
        await server.stop(grace_seconds=options.shutdown_grace_seconds)
        await admin.stop()


def _source(options: ServeOptions) -> Source:
    if options.kubernetes is None:
        return FileSource(
            options.paths, debounce_seconds=options.debounce_seconds, limits=options.file_limits
        )
    # Imported here: a file-only server need not load the Kubernetes client.
    from controlplane.sources.kubernetes import KubernetesSource

    return KubernetesSource(options.kubernetes)
