"""Writes the translator's verdict on each object into its ``status.conditions``, as users read it.

``kubectl get aigatewayroutes`` and ``kubectl describe`` are where users learn whether an object was
accepted and why not, so conditions follow ``metav1.Condition``: ``observedGeneration`` says which spec the
verdict is about, ``lastTransitionTime`` moves only when the condition's status flips. A write goes through
the status subresource and only when something a user can see changed: every write wakes every watcher of
the kind, and a controller that rewrites unchanged status keeps a cluster busy for nothing. Only the leader
writes (see ``leader``); it checks that it still leads before each write. A write whose request never
reached the API server (the kubeconfig's login or the connection failed) stops its batch, which is tried
again after a back-off: the other writes would fail alike, each running the login again. A write that went
out and failed (an error answer, a read timeout: a slow admission webhook) is told and skipped: the other
objects' writes do not wait on it.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from controlplane.gatewayapi import ObjectStatus
from controlplane.resources.groups import GATEWAY_API_GROUP
from controlplane.resources.problems import ObjectKey
from controlplane.resources.status import MAX_CONDITION_MESSAGE
from controlplane.sources.kubernetes.api import ApiError, ApiResource
from controlplane.sources.kubernetes.reflector import Backoff

_log = structlog.get_logger(__name__)

_SEEN_KEYS = ("type", "status", "reason", "message", "observedGeneration")


@dataclass(frozen=True, slots=True)
class Observed:
    """What the source last saw of an object: enough to judge whether its status needs writing."""

    resource: ApiResource
    generation: int | None
    conditions: tuple[dict[str, Any], ...]
    parents_field: str | None = None
    """Set for kinds whose status is a list of per-Gateway entries (``WatchedKind.status_parents_field``);
    ``parents`` is then what the list holds now and ``conditions`` is unused."""
    parents: tuple[dict[str, Any], ...] = ()


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
    return _seen(desired) != _seen(current)


def _seen(conditions: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(str(c.get(key, "")) for key in _SEEN_KEYS) for c in conditions)


def desired_parents(
    status: ObjectStatus, *, generation: int | None, current: tuple[dict[str, Any], ...], now: str
) -> list[dict[str, Any]]:
    """The per-Gateway status list with our entries as ``status`` says: one per Gateway in
    ``status.parents``; entries naming another of our Gateways are dropped (no longer served there);
    entries naming anyone else's Gateway are kept as they are, first, as other controllers wrote them."""
    namespace = status.key.namespace
    ours = set(status.parents)
    previous = {_parent_key(entry, namespace): entry for entry in current}
    kept = [
        entry
        for entry in current
        if (key := _parent_key(entry, namespace)) not in ours and key not in status.managed_parents
    ]
    entries = list(kept)
    for gateway in status.parents[: max(0, _MAX_PARENTS - len(kept))]:
        before = tuple((previous.get(gateway) or {}).get("conditions") or ())
        entries.append(
            {
                "parentRef": {
                    "group": GATEWAY_API_GROUP,
                    "kind": "Gateway",
                    "namespace": gateway.namespace,
                    "name": gateway.name,
                },
                "conditions": desired_conditions(status, generation=generation, current=before, now=now),
            }
        )
    return entries


def parents_need_write(desired: list[dict[str, Any]], current: tuple[dict[str, Any], ...]) -> bool:
    def seen(entries: Any) -> list[tuple[Any, ...]]:
        # Order does not matter: rewriting a list only to reorder it would wake every watcher for nothing.
        return sorted((_parent_ref(entry), _seen(entry.get("conditions") or ())) for entry in entries)

    return seen(desired) != seen(current)


_MAX_PARENTS = 32
"""The Inference Extension's CRD caps the list (``maxItems``); other controllers' entries go first."""


def _parent_ref(entry: dict[str, Any]) -> tuple[str, ...]:
    ref = entry.get("parentRef") or {}
    return tuple(str(ref.get(field) or "") for field in ("group", "kind", "namespace", "name"))


def _parent_key(entry: dict[str, Any], namespace: str) -> ObjectKey:
    """A parentRef as an object key, with the API's defaults (a Gateway in the pool's own namespace)."""
    ref = entry.get("parentRef") or {}
    return ObjectKey(
        str(ref.get("group") or GATEWAY_API_GROUP),
        str(ref.get("kind") or "Gateway"),
        str(ref.get("namespace") or namespace),
        str(ref.get("name") or ""),
    )


class StatusPatcher(Protocol):
    """Where status writes go: ``KubeApi`` (a fake in unit tests)."""

    def patch_status(
        self, resource: ApiResource, *, namespace: str, name: str, status: dict[str, Any]
    ) -> None: ...


class StatusWriter:
    """Takes the latest verdicts (newest wins) and writes what differs from what the cluster shows.

    Runs on its own thread so that slow or failing writes never hold up translation or xDS.
    """

    def __init__(
        self, api: StatusPatcher, *, may_write: Callable[[], bool], backoff: Backoff | None = None
    ) -> None:
        self._api = api
        self._may_write = may_write
        self._backoff = backoff if backoff is not None else Backoff()
        """How long to wait before trying again when no request reaches the API server."""
        self._lock = threading.Lock()
        self._pending: tuple[dict[ObjectKey, ObjectStatus], dict[ObjectKey, Observed]] | None = None
        self._latest: tuple[dict[ObjectKey, ObjectStatus], dict[ObjectKey, Observed]] | None = None
        self._written: dict[ObjectKey, tuple[int | None, Any]] = {}
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
            if work is None or self._stopped.is_set():
                continue
            try:
                answered = self._write_all(*work)
            except ApiError as error:  # not sent: the login or the connection failed, for any object alike
                with self._lock:
                    if self._pending is None:  # newer verdicts replace these; what was written stays written
                        self._pending = work
                delay = self._backoff.next_delay()
                _log.warning("status writes failed, retrying", error=str(error), retry_in=round(delay, 1))
                self._stopped.wait(delay)
                self._wake.set()
            else:
                if answered:  # a batch that sent nothing, or got no answer, says nothing of the server
                    self._backoff.reset()

    def _write_all(
        self, statuses: dict[ObjectKey, ObjectStatus], observed: dict[ObjectKey, Observed]
    ) -> bool:
        """Writes what differs, and says whether the API server answered any write; raises the ``ApiError``
        of a write whose request was not sent: the writes after it would fail alike, each running the
        kubeconfig's login again (a ``gcp`` cmd-path)."""
        answered = False
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for key, seen in sorted(observed.items()):
            status = statuses.get(key)
            if status is None or self._stopped.is_set():
                continue
            body = _status_body(status, seen, now=now)
            if body is None:
                continue
            # The watch may not have shown our last write yet: do not write the same thing twice.
            if self._written.get(key) == (seen.generation, _without_times(body)):
                continue
            if not self._may_write():
                return answered
            try:
                self._api.patch_status(seen.resource, namespace=key.namespace, name=key.name, status=body)
            except ApiError as error:
                if not error.sent:
                    raise
                answered = answered or error.status != 0
                if error.status != 404:  # deleted meanwhile: nothing to say
                    _log.warning("status write failed", object=str(key), error=str(error))
                continue
            self._written[key] = (seen.generation, _without_times(body))
            self.writes += 1
            answered = True
        return answered


def _status_body(status: ObjectStatus, seen: Observed, *, now: str) -> dict[str, Any] | None:
    """The status to write (a merge patch: it replaces the fields it names), or None when the cluster
    already shows it."""
    if seen.parents_field is None:
        conditions = desired_conditions(status, generation=seen.generation, current=seen.conditions, now=now)
        return {"conditions": conditions} if needs_write(conditions, seen.conditions) else None
    parents = desired_parents(status, generation=seen.generation, current=seen.parents, now=now)
    return {seen.parents_field: parents} if parents_need_write(parents, seen.parents) else None


def _without_times(value: Any) -> Any:
    """``value`` with every ``lastTransitionTime`` left out, for comparing what a write says."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_without_times(item) for item in value]
    return value
