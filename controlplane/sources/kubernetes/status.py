"""Writes the translator's verdict on each object into its ``status.conditions``, as users read it.

``kubectl get aigatewayroutes`` and ``kubectl describe`` are where users learn whether an object was
accepted and why not, so conditions follow ``metav1.Condition``: ``observedGeneration`` says which spec the
verdict is about, ``lastTransitionTime`` moves only when the condition's status flips. A write goes through
the status subresource and only when something a user can see changed: every write wakes every watcher of
the kind, and a controller that rewrites unchanged status keeps a cluster busy for nothing. Only the leader
writes (see ``leader``); it checks that it still leads before each write.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from controlplane.gatewayapi import ObjectStatus
from controlplane.resources.problems import ObjectKey
from controlplane.resources.status import MAX_CONDITION_MESSAGE
from controlplane.sources.kubernetes.api import ApiError, ApiResource, KubeApi

_log = structlog.get_logger(__name__)

_SEEN_KEYS = ("type", "status", "reason", "message", "observedGeneration")


@dataclass(frozen=True, slots=True)
class Observed:
    """What the source last saw of an object: enough to judge whether its status needs writing."""

    resource: ApiResource
    generation: int | None
    conditions: tuple[dict[str, Any], ...]


def desired_conditions(
    status: ObjectStatus, *, generation: int | None, current: tuple[dict[str, Any], ...], now: str
) -> list[dict[str, Any]]:
    """``status`` as Kubernetes conditions, keeping ``lastTransitionTime`` where the status did not flip."""
    by_type = {condition.get("type"): condition for condition in current}
    out = []
    for condition in status.conditions:
        value = "True" if condition.status else "False"
        previous = by_type.get(condition.type)
        unchanged = previous is not None and previous.get("status") == value
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": value,
            "reason": condition.reason,
            "message": condition.message[:MAX_CONDITION_MESSAGE],
            "lastTransitionTime": previous.get("lastTransitionTime", now) if unchanged and previous else now,
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    return out


def needs_write(desired: list[dict[str, Any]], current: tuple[dict[str, Any], ...]) -> bool:
    def seen(conditions: Any) -> list[tuple[Any, ...]]:
        return sorted(tuple(str(c.get(key, "")) for key in _SEEN_KEYS) for c in conditions)

    return seen(desired) != seen(current)


class StatusWriter:
    """Takes the latest verdicts (newest wins) and writes what differs from what the cluster shows.

    Runs on its own thread so that slow or failing writes never hold up translation or xDS.
    """

    def __init__(self, api: KubeApi, *, may_write: Callable[[], bool]) -> None:
        self._api = api
        self._may_write = may_write
        self._lock = threading.Lock()
        self._pending: tuple[dict[ObjectKey, ObjectStatus], dict[ObjectKey, Observed]] | None = None
        self._latest: tuple[dict[ObjectKey, ObjectStatus], dict[ObjectKey, Observed]] | None = None
        self._written: dict[ObjectKey, tuple[int | None, list[dict[str, Any]]]] = {}
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self.writes = 0
        """Status writes made (successful PATCHes), for metrics and tests."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def submit(
        self, statuses: Mapping[ObjectKey, ObjectStatus], observed: Mapping[ObjectKey, Observed]
    ) -> None:
        """Queues a write of ``statuses`` for the objects in ``observed`` (others are not ours to write)."""
        with self._lock:
            self._pending = self._latest = (dict(statuses), dict(observed))
        self._wake.set()

    def resync(self) -> None:
        """Writes the latest verdicts again (after gaining leadership, when another leader may have
        written something else)."""
        with self._lock:
            self._written.clear()
            self._pending = self._latest
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                work, self._pending = self._pending, None
            if work is not None and not self._stopped.is_set():
                self._write_all(*work)

    def _write_all(
        self, statuses: dict[ObjectKey, ObjectStatus], observed: dict[ObjectKey, Observed]
    ) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for key, seen in sorted(observed.items()):
            status = statuses.get(key)
            if status is None or self._stopped.is_set():
                continue
            desired = desired_conditions(status, generation=seen.generation, current=seen.conditions, now=now)
            if not needs_write(desired, seen.conditions):
                continue
            # The watch may not have shown our last write yet: do not write the same thing twice.
            if self._written.get(key) == (seen.generation, _without_times(desired)):
                continue
            if not self._may_write():
                return
            try:
                self._api.patch_status(
                    seen.resource, namespace=key.namespace, name=key.name, status={"conditions": desired}
                )
            except ApiError as error:
                if error.status != 404:  # deleted meanwhile: nothing to say
                    _log.warning("status write failed", object=str(key), error=str(error))
                continue
            self._written[key] = (seen.generation, _without_times(desired))
            self.writes += 1


def _without_times(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions]
