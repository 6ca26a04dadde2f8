"""List-then-watch of one kind in one scope, kept alive for as long as the control plane runs.

This is client-go's reflector, the contract every Kubernetes controller relies on: list (in pages), then
watch from the list's ``resourceVersion`` with bookmarks so a quiet watch still advances; when the server
answers ``410 Gone`` (the version was compacted away) list again, and hand the new list over as a whole so
nothing the old list had is dropped before its replacement is known; on any other failure (API server
restart, network, throttling) wait with exponential back-off and jitter, then resume the watch from the last
version seen. A kind the server does not serve (its CRD is not installed) is reported once and waits until
``wake`` is called (the source calls it when a CRD appears) instead of retrying in a loop.

Runs on its own thread: list and watch calls block.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from controlplane.sources.kubernetes.api import ApiError, ApiResource, KubeApi, WatchStream

_log = structlog.get_logger(__name__)

_GONE = 410
_NOT_FOUND = 404
_WATCH_SECONDS = (240, 480)
"""Each watch request asks the server to end it after a random time in this range (client-go does so too),
so that watches of many replicas do not all restart at once."""
_UNAVAILABLE_RECHECK_SECONDS = 300.0
"""A kind that is not served is checked again this often even without a CRD event (a missed event)."""


@dataclass(frozen=True, slots=True)
class WatchScope:
    """What one reflector covers: a kind (by group and kind), a namespace or all, maybe one object's name."""

    group: str
    kind: str
    namespace: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        where = self.namespace or "*"
        return f"{self.kind}/{where}/{self.name}" if self.name else f"{self.kind}/{where}"


class ReflectorSink(Protocol):
    """Receives a reflector's view of its scope. Called on the reflector's thread."""

    def replaced(self, scope: WatchScope, objects: Sequence[dict[str, Any]], /) -> None:
        """A (re)list: these are all the objects of ``scope`` now."""

    def changed(self, scope: WatchScope, event_type: str, obj: dict[str, Any], /) -> None:
        """A watch event: ``ADDED``, ``MODIFIED`` or ``DELETED``."""

    def unavailable(self, scope: WatchScope, reason: str, /) -> None:
        """The scope cannot be read now (kind not served, forbidden); said once per distinct reason."""


class Backoff:
    """Exponential back-off with jitter: 0.2 s doubling to ``cap``, each wait drawn from [d/2, d]."""

    def __init__(self, *, base: float = 0.2, cap: float = 30.0) -> None:
        self._base = base
        self._cap = cap
        self._attempt = 0

    def next_delay(self) -> float:
        delay: float = min(self._cap, self._base * 2.0**self._attempt)
        self._attempt += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self._attempt = 0


VersionChooser = Callable[[KubeApi], ApiResource | None]
"""Finds the served version of the reflector's kind (None: not served); asked before every list."""


class Reflector:
    def __init__(
        self,
        api: KubeApi,
        scope: WatchScope,
        *,
        resolve: VersionChooser,
        sink: ReflectorSink,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> None:
        self._api = api
        self.scope = scope
        self._resolve = resolve
        self._sink = sink
        self._field_selector = field_selector
        self._page_size = page_size
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stream: WatchStream | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch {scope}", daemon=True)
        self.synced = threading.Event()
        """Set once the first list (or the first "not served" answer) has been handed to the sink."""
        self.expirations = 0
        """Watches that ended in ``410 Gone`` and were followed by a new list."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the watch now (closing its connection) and lets the thread exit."""
        self._stopped.set()
        self._wake.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def wake(self) -> None:
        """Something this reflector may be waiting for changed (a CRD appeared): try again now."""
        self._wake.set()

    def _run(self) -> None:
        backoff = Backoff()
        resource: ApiResource | None = None
        version: str | None = None
        reported: str | None = None
        while not self._stopped.is_set():
            try:
                if version is None:
                    resource = self._resolve(self._api)
                    if resource is None:
                        reported = self._not_served(reported)
                        continue
                    version = self._list(resource)
                    reported = None
                    backoff.reset()
                assert resource is not None
                version = self._watch(resource, version)
                backoff.reset()
            except ApiError as error:
                if error.status == _GONE:
                    _log.info("watch expired, listing again", scope=str(self.scope))
                    self.expirations += 1
                    version = None
                    continue
                if error.status == _NOT_FOUND:
                    # The kind went away (its CRD was deleted) or was never there: find its version again.
                    version = None
                    reported = self._not_served(reported)
                    continue
                if error.status in (401, 403):
                    # Keep what was listed before: a permission taken away is not the objects' deletion.
                    reported = self._report(f"not allowed: {error.message}", reported)
                delay = backoff.next_delay()
                if not self._stopped.is_set():
                    _log.warning(
                        "watch failed, retrying", scope=str(self.scope), error=str(error), delay=delay
                    )
                self._sleep(delay, wake=False)

    def _list(self, resource: ApiResource) -> str:
        objects: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._api.list(
                resource,
                namespace=self.scope.namespace,
                field_selector=self._field_selector,
                limit=self._page_size,
                continue_token=token,
            )
            for item in page.get("items", []):
                # Items of a list carry no apiVersion/kind; the parser needs them.
                objects.append({"apiVersion": resource.api_version, "kind": resource.kind, **item})
            metadata = page.get("metadata", {})
            token = metadata.get("continue")
            if not token:
                break
        self._sink.replaced(self.scope, objects)
        self.synced.set()
        version: str = metadata.get("resourceVersion", "")
        return version

    def _watch(self, resource: ApiResource, version: str) -> str:
        stream = self._api.watch(
            resource,
            namespace=self.scope.namespace,
            resource_version=version,
            field_selector=self._field_selector,
            timeout_seconds=random.randint(*_WATCH_SECONDS),
        )
        with self._lock:
            if self._stopped.is_set():
                stream.close()
                return version
            self._stream = stream
        try:
            for event in stream:
                event_type = event.get("type", "")
                obj = event.get("object") or {}
                if event_type == "ERROR":
                    raise ApiError(int(obj.get("code", 0)), str(obj.get("message", "watch error")))
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if event_type in ("ADDED", "MODIFIED", "DELETED"):
                    self._sink.changed(self.scope, event_type, obj)
        finally:
            with self._lock:
                self._stream = None
        return version

    def _not_served(self, reported: str | None) -> str:
        reason = f"kind {self.scope.kind} ({self.scope.group or 'core'}) is not served by the API server"
        if reason != reported:
            self._sink.replaced(self.scope, [])
        reported = self._report(reason, reported)
        self._sleep(_UNAVAILABLE_RECHECK_SECONDS, wake=True)
        return reported

    def _report(self, reason: str, reported: str | None) -> str:
        if reason != reported:
            self._sink.unavailable(self.scope, reason)
        self.synced.set()
        return reason

    def _sleep(self, seconds: float, *, wake: bool) -> None:
        if wake:
            self._wake.wait(seconds)
            self._wake.clear()
        else:
            self._stopped.wait(seconds)
