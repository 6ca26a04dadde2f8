"""The running control plane: a source of manifests feeding the pipeline, the snapshot cache and ADS.

The source is a folder of files or a Kubernetes API server; each object's verdict goes back to the source,
which writes it as status where it can.

Every load is translated as a whole and set as one snapshot, so Envoy always gets a consistent view. A
load that cannot become a consistent snapshot (a translator bug, never user input) is refused by the cache
and the previous snapshot keeps serving. Translating and building the snapshot run in a worker thread, one
load at a time, so the event loop keeps serving xDS streams (ACKs, new proxies, keepalives) meanwhile; only
setting the finished snapshot happens on the loop. Loads that arrive while one is being translated wait,
and only the newest of them is translated: it holds everything the older ones did.

Problems are logged when they appear or go away, not on every reload, so a log shows what changed; the
current list is always on the admin port's ``/status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from controlplane import defaults
from controlplane.admin import AdminServer, bound_socket
from controlplane.gatewayapi import ObjectStatus, TranslateOptions
from controlplane.heap import building_configuration
from controlplane.pipeline import Translator
from controlplane.refusals import ProxyRefusals
from controlplane.render import status_entries
from controlplane.resources.parse import LoadResult
from controlplane.resources.problems import ObjectKey, Problem, Severity, sorted_problems
from controlplane.resources.resource_set import ResourceSet
from controlplane.sources.base import Source
from controlplane.sources.file_reading import FileLimits
from controlplane.sources.files import FileSource
from controlplane.tokens.broker import TokenBroker
from controlplane.tokens.minting import HttpMinter, Minter
from controlplane.tokens.requests import MintRequest
from controlplane.tokens.state import Tokens
from controlplane.xds.cache import InconsistentSnapshotError, Snapshot, SnapshotCache
from controlplane.xds.server import XdsServer, XdsSettings, XdsTlsFiles

if TYPE_CHECKING:
    from controlplane.sources.kubernetes import KubernetesOptions

_log = structlog.get_logger(__name__)
FIRST_TOKEN_WAIT_SECONDS = 2.0
"""How long a load that needs a token never minted before waits for it (then goes out without it)."""


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
            "objects": status_entries(self.statuses),
        }


@dataclass(frozen=True, slots=True)
class _Translated:
    """One load's outcome, built in the worker thread."""

    statuses: dict[ObjectKey, ObjectStatus]
    problems: list[Problem]
    snapshot: Snapshot
    objects: int
    tokens: Tokens
    """The tokens it was translated with."""
    mint_requests: dict[ObjectKey, MintRequest]


class SnapshotPublisher:
    """Translates each load off the event loop and publishes it as the snapshot in ``cache``, keeping a
    status board. The access tokens the configuration needs are minted by a ``TokenBroker``; each change of
    one translates the newest load again, with the tokens as part of its input."""

    def __init__(
        self,
        *,
        cache: SnapshotCache,
        options: TranslateOptions,
        refusals: ProxyRefusals,
        reuse: bool = True,
        minter: Minter | None = None,
    ) -> None:
        self._cache = cache
        self._minter = minter or HttpMinter()
        self._tokens = TokenBroker(minter=self._minter, on_change=self._tokens_changed)
        self._last_load: LoadResult | None = None
        self._published_tokens: Tokens = {}
        self._again: set[asyncio.Task[None]] = set()
        self._translator = Translator(options=options, reuse=reuse)
        self._resources: ResourceSet | None = None
        """The last load's objects: the next set says what changed since (the translator then compares
        only those)."""
        self._refusals = refusals
        self._translated: dict[ObjectKey, ObjectStatus] = {}
        self.board = StatusBoard()
        self._one_at_a_time = asyncio.Lock()
        self._newest: LoadResult | None = None
        self._received = 0
        """Loads handed over so far; ``_published`` is how many of them the board reflects."""
        self._published = 0
        self._verdicts: Mapping[ObjectKey, ObjectStatus] | None = None
        """The verdicts on the newest load translated, None when translating it raised (none to report)."""

    async def __call__(self, result: LoadResult) -> Mapping[ObjectKey, ObjectStatus] | None:
        self._last_load = result
        self._newest = result
        self._received += 1
        mine = self._received
        async with self._one_at_a_time:
            if self._published >= mine:
                # A newer load was translated while this one waited: its verdicts are the current ones.
                return self._verdicts
            newest, covered = self._newest, self._received
            self._newest = None
            assert newest is not None  # set by every call that has not been covered yet
            translated = await self._translation(newest, self._tokens.tokens())
            if translated is not None:
                self._tokens.want(translated.mint_requests)
                if any(key not in translated.tokens for key in translated.mint_requests):
                    # A policy new to the broker: its first token usually takes a moment, so the
                    # configuration waits for it (briefly) instead of going out without the policy's backends.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(FIRST_TOKEN_WAIT_SECONDS):
                            await self._tokens.first_tokens()
                    translated = await self._translation(newest, self._tokens.tokens())
            if translated is not None:
                self._publish(translated)
            self._published = covered
            # No verdicts when translating raised: the last load's would be written as this load's (with the
            # objects' new generations) although none of it is served.
            self._verdicts = None if translated is None else self.board.statuses
            return self._verdicts

    async def _translation(self, load: LoadResult, tokens: Tokens) -> _Translated | None:
        """``load`` translated in a worker thread; None when translating raised. That is a bug of ours some
        input reaches: the input is not served, Envoy keeps the last configuration set, and the source goes
        on watching (a later load may translate again), as for a snapshot the cache refuses."""
        try:
            return await asyncio.to_thread(self._translate, load, tokens)
        except Exception:
            _log.exception("translation failed, previous configuration kept")
            return None

    async def close(self) -> None:
        """Stops minting (and translating again for new tokens)."""
        await self._tokens.close()
        for task in list(self._again):
            task.cancel()
        await self._minter.close()

    def _tokens_changed(self) -> None:
        task = asyncio.get_running_loop().create_task(self._translate_again(), name="tokens changed")
        self._again.add(task)
        task.add_done_callback(self._again.discard)

    async def _translate_again(self) -> None:
        # The newest load when this runs: one that arrived since the tokens changed must not be undone.
        load = self._last_load
        if load is None or self._tokens.tokens() == self._published_tokens:
            return  # nothing loaded yet, or a translation since the change already had these tokens
        statuses = await self(load)
        if statuses is not None and self.board.source is not None:
            self.board.source.report(statuses)

    def _translate(self, result: LoadResult, tokens: Tokens) -> _Translated:
        """The worker thread's part: everything but touching the cache and the board."""
        with building_configuration():
            resources = result.resource_set(previous=self._resources)
            self._resources = resources
            translated = self._translator.snapshot(resources.with_tokens(tokens))
            snapshot = translated.snapshot
            snapshot.consistency_problems()  # computed once here, not on the loop in ``set_snapshot``
            return _Translated(
                statuses=translated.statuses,
                problems=sorted_problems([*result.problems, *translated.problems]),
                snapshot=snapshot,
                objects=len(result.objects),
                tokens=tokens,
                mint_requests=translated.mint_requests,
            )

    def _publish(self, translated: _Translated) -> None:
        self._published_tokens = translated.tokens
        self._log_changes(translated.problems)
        snapshot = translated.snapshot
        try:
            self._cache.set_snapshot(snapshot)
        except InconsistentSnapshotError as exc:
            _log.error("translation refused, previous configuration kept", reason=exc.reason)
        else:
            self.board.snapshot_version = snapshot.version
            _log.info("configuration set", version=snapshot.version, objects=translated.objects)
            self._refusals.forget_outdated(snapshot)
        self._translated = translated.statuses
        self.board.statuses = self._refusals.apply(translated.statuses)
        self.board.problems = translated.problems
        self.board.loads += 1

    def refusals_changed(self) -> None:
        """A proxy refused part of the configuration: the statuses say so at once, not at the next load."""
        self.board.statuses = self._refusals.apply(self._translated)
        if self.board.source is not None:
            self.board.source.report(self.board.statuses)

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
    server = XdsServer(cache=cache, settings=XdsSettings(listener_drain_seconds=options.envoy_drain_seconds))
    refusals = ProxyRefusals(registry=server.metrics, on_new_refusal=lambda: publisher.refusals_changed())
    server.add_observer(refusals)
    publisher = SnapshotPublisher(cache=cache, options=options.translation, refusals=refusals)
    source = _source(options)
    publisher.board.source = source
    admin = AdminServer(registry=server.metrics, ready=lambda: server.ready and source.synced())
    admin.add_json_route("/status", publisher.board.document)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await _listen(server=server, admin=admin, options=options)
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
        await publisher.close()
        await server.stop(grace_seconds=options.shutdown_grace_seconds)
        await admin.stop()


class PortUnavailable(Exception):
    """The xDS or admin port cannot be bound (in use, privileged, no address of this host): the flag, and
    why in the operating system's words."""


_GRPC_BIND_FAILURE = "Failed to bind to address"
"""How grpc's ``RuntimeError`` for a port it cannot bind begins (it says no more than that)."""


async def _listen(*, server: XdsServer, admin: AdminServer, options: ServeOptions) -> None:
    """Binds the xDS port, then the admin port. One that cannot be bound is for the user to fix, so it is a
    ``PortUnavailable`` naming the flag; whatever the admin port's start raises, the xDS server already
    listening is stopped first (else it outlives the event loop)."""
    address, port = options.address, options.xds_port
    try:
        await server.start(host=address, port=port, tls=options.xds_tls)
    except (OSError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not str(error).startswith(_GRPC_BIND_FAILURE):
            raise
        why = _why_unbindable(host=address, port=port)
        raise PortUnavailable(f"--xds-port {port}: cannot listen on {address}:{port}: {why}") from error
    try:
        await admin.start(host=address, port=options.admin_port)
    except OSError as error:
        await server.stop(grace_seconds=0)
        raise PortUnavailable(
            f"--admin-port {options.admin_port}: cannot listen on {address}:{options.admin_port}: "
            f"{error.strerror}"
        ) from error
    except BaseException:
        await server.stop(grace_seconds=0)
        raise


def _why_unbindable(*, host: str, port: int) -> str:
    """Why grpc could not bind ``host:port``, found by binding it again with a plain socket: in use,
    permission denied (a port below 1024 without ``CAP_NET_BIND_SERVICE``), not this host's address."""
    try:
        bound_socket(host=host, port=port).close()
    except OSError as error:
        return error.strerror or str(error)
    # Free to a plain socket: whatever stopped grpc, only its own log says (GRPC_VERBOSITY=debug).
    return "grpc could not bind it (GRPC_VERBOSITY=debug says why)"


def _source(options: ServeOptions) -> Source:
    if options.kubernetes is None:
        return FileSource(
            options.paths, debounce_seconds=options.debounce_seconds, limits=options.file_limits
        )
    # Imported here: a file-only server need not load the Kubernetes client.
    from controlplane.sources.kubernetes import KubernetesSource

    return KubernetesSource(options.kubernetes)
