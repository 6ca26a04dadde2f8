"""The Kubernetes source: watch the cluster, hand each settled change to the pipeline, write status back.

Reflectors (one thread per kind and namespace) feed an ``ObjectStore`` on the event loop; a change marks
the store dirty and, once events stop arriving for ``debounce_seconds`` (a burst of events, a relist), the
whole store is handed over as one load. Secrets and ConfigMaps are watched by name, exactly the ones the
current objects reference, and a load waits until new ones have been listed, so a route never goes out
without the credential it names. The verdicts come back from the pipeline and go to ``StatusWriter``,
which writes only while ``LeaderElector`` says this replica leads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from controlplane import defaults
from controlplane.gatewayapi import ObjectStatus
from controlplane.resources.problems import ObjectKey
from controlplane.resources.references import referenced_secrets_and_config_maps
from controlplane.sources.base import LoadHandler
from controlplane.sources.kubernetes.api import ApiResource, KubeApi
from controlplane.sources.kubernetes.kinds import CRDS, Scope, WatchedKind, watched_kinds
from controlplane.sources.kubernetes.leader import LeaderElector, LeaseSettings
from controlplane.sources.kubernetes.reflector import Reflector, ReflectorSink, VersionChooser, WatchScope
from controlplane.sources.kubernetes.status import Observed, StatusWriter
from controlplane.sources.kubernetes.store import ObjectStore

_log = structlog.get_logger(__name__)

_SYNC_TIMEOUT = 30.0
"""Longest wait for the first lists before serving what has arrived (the rest follows as it comes)."""
_MAX_BATCH_SECONDS = 1.0
"""Under a steady stream of events, a load still goes out at least this often."""
_SYNC_POLL_SECONDS = 0.01
"""How often the loop looks at the reflectors' first lists while it waits for them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KubernetesOptions:
    kubeconfig: Path | None = None
    """None: the Pod's in-cluster credentials."""
    kubeconfig_login_timeout: float = defaults.KUBECONFIG_LOGIN_TIMEOUT_SECONDS
    """How long logging the kubeconfig's user in may take, 0: no limit."""
    namespaces: tuple[str, ...] = ()
    """Watched namespaces; empty means all."""
    inference_extension: bool = False
    debounce_seconds: float = 0.05
    lease: LeaseSettings = field(default_factory=lambda: LeaseSettings(namespace="default"))
    write_status: bool = True


class KubernetesSource:
    def __init__(self, options: KubernetesOptions, *, api: KubeApi | None = None) -> None:
        self._options = options
        self._api = api or KubeApi.connect(
            kubeconfig=options.kubeconfig, login_timeout=options.kubeconfig_login_timeout
        )
        self._kinds = watched_kinds(inference_extension=options.inference_extension)
        self._store = ObjectStore(status_is_ours=[(k.group, k.kind) for k in self._kinds if k.writes_status])
        self._reflectors: dict[WatchScope, Reflector] = {}
        self._unavailable: dict[WatchScope, str] = {}
        self._changed = asyncio.Event()
        self._synced = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer = StatusWriter(self._api, may_write=self._may_write)
        self._elector = LeaderElector(self._api, options.lease, on_change=self._leadership_changed)

    def state(self) -> dict[str, Any]:
        """For ``/status``: whether this replica writes status, and what the watches went through."""
        return {
            "kubernetes": {
                "server": self._api.server,
                "leader": self._elector.is_leader,
                "statusWrites": self._writer.writes,
                "watches": len(self._reflectors),
                "watchExpirations": sum(reflector.expirations for reflector in self._reflectors.values()),
                "notWatched": {
                    str(scope): reason for scope, reason in sorted(self._unavailable.items(), key=str)
                },
            }
        }

    def synced(self) -> bool:
        """True once every watch started at the beginning has listed (or found its kind refused or not
        served): until then a first load sent after ``_SYNC_TIMEOUT`` is partial."""
        if not self._synced:
            initial = [reflector for scope, reflector in self._reflectors.items() if scope.name is None]
            self._synced = bool(initial) and all(reflector.synced.is_set() for reflector in initial)
        return self._synced

    async def run(self, on_load: LoadHandler) -> None:
        """Watches until cancelled, calling ``on_load`` with the first full view and after every change."""
        self._loop = asyncio.get_running_loop()
        _log.info(
            "watching Kubernetes", server=self._api.server, namespaces=self._options.namespaces or "all"
        )
        if self._options.write_status:
            self._writer.start()
            self._elector.start()
        self._start(self._crd_scope(), lambda api: CRDS, sink=_CrdSink(self))
        for kind in self._kinds:
            if kind.scope is Scope.ALL:
                for namespace in self._namespaces(kind):
                    self._start(WatchScope(kind.group, kind.kind, namespace), kind.resolve)
        try:
            await self._wait_synced()
            while True:
                await self._follow_references()
                self._changed.clear()  # what arrived so far is in this load
                statuses = await on_load(self._store.load())
                if statuses is not None:
                    self._submit_statuses(statuses)
                await self._settle()
        finally:
            await self.close()

    async def close(self) -> None:
        reflectors = list(self._reflectors.values())
        self._reflectors.clear()
        for reflector in reflectors:
            reflector.stop()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._stop_threads, reflectors)

    def _stop_threads(self, reflectors: Sequence[Reflector]) -> None:
        for reflector in reflectors:
            reflector.join(timeout=5)
        if self._options.write_status:
            self._elector.stop()
            self._writer.stop()

    # --- called from reflector threads, through the loop ---

    def deliver_replaced(self, scope: WatchScope, objects: Sequence[dict[str, Any]]) -> None:
        self._unavailable.pop(scope, None)
        self._store.replace(scope, objects)
        self._mark()

    def deliver_changed(self, scope: WatchScope, event_type: str, obj: dict[str, Any]) -> None:
        self._store.apply(scope, event_type, obj)
        self._mark()

    def deliver_unavailable(self, scope: WatchScope, reason: str) -> None:
        if self._unavailable.get(scope) != reason:
            _log.warning("cannot watch", scope=str(scope), reason=reason)
        self._unavailable[scope] = reason

    def crds_changed(self) -> None:
        for scope, reflector in self._reflectors.items():
            if scope in self._unavailable:
                reflector.wake()

    # --- internals ---

    def _mark(self) -> None:
        if self._store.dirty:
            self._changed.set()

    async def _settle(self) -> None:
        """Waits for a change, then for events to stop (at most ``_MAX_BATCH_SECONDS``)."""
        await self._changed.wait()
        started = time.monotonic()
        while time.monotonic() - started < _MAX_BATCH_SECONDS:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=self._options.debounce_seconds)
            except TimeoutError:
                break
        self._changed.clear()

    async def _wait_synced(self, scopes: Sequence[WatchScope] | None = None) -> None:
        late = (
            [self._reflectors[s] for s in scopes] if scopes is not None else list(self._reflectors.values())
        )
        deadline = time.monotonic() + _SYNC_TIMEOUT
        # Polled on the loop rather than waited for in a worker thread: a SIGTERM cancels this at once,
        # where a thread blocked on the reflectors would hold the process's exit until the deadline.
        while late := [reflector for reflector in late if not reflector.synced.is_set()]:
            if time.monotonic() >= deadline:
                _log.warning(
                    "serving before every watch has listed", waiting_for=[str(r.scope) for r in late]
                )
                return
            await asyncio.sleep(_SYNC_POLL_SECONDS)

    async def _follow_references(self) -> None:
        """Watches the Secrets and ConfigMaps the objects reference now, and no others."""
        wanted = {
            WatchScope(key.group, key.kind, key.namespace, key.name)
            for key in referenced_secrets_and_config_maps(self._store.resources())
            if self._in_watched_namespace(key.namespace)
        }
        current = {scope for scope in self._reflectors if scope.name is not None}
        for scope in current - wanted:
            self._reflectors.pop(scope).stop()
            self._store.drop(scope)
        started = sorted(wanted - current, key=str)
        by_kind = {(kind.group, kind.kind): kind for kind in self._kinds}
        for scope in started:
            kind = by_kind[(scope.group, scope.kind)]
            self._start(scope, kind.resolve, field_selector=f"metadata.name={scope.name}")
        if started:
            await self._wait_synced(started)

    def _start(
        self,
        scope: WatchScope,
        resolve: VersionChooser,
        *,
        sink: ReflectorSink | None = None,
        field_selector: str | None = None,
    ) -> None:
        reflector = Reflector(
            self._api, scope, resolve=resolve, sink=sink or _LoopSink(self), field_selector=field_selector
        )
        self._reflectors[scope] = reflector
        reflector.start()

    def _namespaces(self, kind: WatchedKind) -> tuple[str | None, ...]:
        if not kind.namespaced or not self._options.namespaces:
            return (None,)
        return self._options.namespaces

    def _in_watched_namespace(self, namespace: str) -> bool:
        return not self._options.namespaces or namespace in self._options.namespaces

    def _crd_scope(self) -> WatchScope:
        return WatchScope(CRDS.group, CRDS.kind)

    def report(self, statuses: Mapping[ObjectKey, ObjectStatus], /) -> None:
        self._submit_statuses(statuses)

    def _submit_statuses(self, statuses: Mapping[ObjectKey, ObjectStatus]) -> None:
        if not self._options.write_status:
            return
        ours = {(kind.group, kind.kind): kind for kind in self._kinds if kind.writes_status}
        observed: dict[ObjectKey, Observed] = {}
        for key in statuses:
            kind = ours.get((key.group, key.kind))
            raw = self._store.raw(key) if kind is not None else None
            if kind is None or raw is None:
                continue
            # The version the object was read in is one the server serves: write status in it too.
            version = str(raw.get("apiVersion", "")).rpartition("/")[2]
            resource = ApiResource(kind.group, version, kind.plural, kind.kind)
            generation = (raw.get("metadata") or {}).get("generation")
            status = raw.get("status") or {}
            if kind.status_parents_field is None:
                observed[key] = Observed(resource, generation, tuple(status.get("conditions") or ()))
            else:
                parents = tuple(status.get(kind.status_parents_field) or ())
                observed[key] = Observed(resource, generation, (), kind.status_parents_field, parents)
        self._writer.submit(statuses, observed)

    def _may_write(self) -> bool:
        return self._elector.is_leader

    def _leadership_changed(self, leading: bool) -> None:
        if leading:
            self._writer.resync()


class _LoopSink:
    """A reflector's sink that hands everything to the source on its event loop."""

    def __init__(self, source: KubernetesSource) -> None:
        self._source = source

    def _call(self, callback: Any, *args: Any) -> None:
        loop = self._source._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback, *args)

    def replaced(self, scope: WatchScope, objects: Sequence[dict[str, Any]], /) -> None:
        self._call(self._source.deliver_replaced, scope, list(objects))

    def changed(self, scope: WatchScope, event_type: str, obj: dict[str, Any], /) -> None:
        self._call(self._source.deliver_changed, scope, event_type, obj)

    def unavailable(self, scope: WatchScope, reason: str, /) -> None:
        self._call(self._source.deliver_unavailable, scope, reason)


class _CrdSink(_LoopSink):
    """CRD events only wake the reflectors of kinds that were not served."""

    def replaced(self, scope: WatchScope, objects: Sequence[dict[str, Any]], /) -> None:
        self._call(self._source.crds_changed)

    def changed(self, scope: WatchScope, event_type: str, obj: dict[str, Any], /) -> None:
        self._call(self._source.crds_changed)
