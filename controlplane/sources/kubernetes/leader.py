"""Leader election on a ``coordination.k8s.io/v1`` Lease, so that one replica writes status.

Every replica watches and serves xDS on its own; status is the one thing they would fight over (each write
bumps the object and wakes every watcher). This follows client-go's leaderelection: the holder renews the
Lease every ``retry_period``; a candidate takes it over only when the holder has not renewed it for
``lease_duration``, judged by the candidate's own clock from when it last saw the Lease change (so clocks
need not agree); a holder that cannot renew within ``renew_deadline`` stops leading at once, before anyone
else may take over. Updates use the Lease's ``resourceVersion``, so two candidates cannot both win.
"""

from __future__ import annotations

import datetime
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from controlplane import defaults
from controlplane.sources.kubernetes.api import ApiError, ApiResource, KubeApi

_log = structlog.get_logger(__name__)

LEASES = ApiResource("coordination.k8s.io", "v1", "leases", "Lease")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseSettings:
    namespace: str
    name: str = "ai-xds-controlplane"
    lease_duration: float = defaults.LEASE_DURATION_SECONDS
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    @classmethod
    def for_duration(cls, *, namespace: str, lease_duration: float) -> LeaseSettings:
        """client-go's proportions (15 s / 10 s / 2 s) scaled to ``lease_duration``."""
        return cls(
            namespace=namespace,
            lease_duration=lease_duration,
            renew_deadline=lease_duration * 2 / 3,
            retry_period=lease_duration * 2 / 15,
        )


def default_identity() -> str:
    """The host name (the Pod name in a cluster) plus a random suffix, unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    """Runs on its own thread; ``is_leader`` says whether this replica may write now."""

    def __init__(
        self,
        api: KubeApi,
        settings: LeaseSettings,
        *,
        identity: str | None = None,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self._api = api
        self._settings = settings
        self.identity = identity or default_identity()
        self._on_change = on_change
        self._leading = threading.Event()
        self._stopped = threading.Event()
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    @property
    def is_leader(self) -> bool:
        # Checked before every write: leadership also ends when renewing has been failing too long.
        if self._leading.is_set() and time.monotonic() - self._renewed_at > self._settings.renew_deadline:
            self._set_leading(False)
        return self._leading.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops campaigning; a leader gives the Lease up so another replica takes over at once."""
        self._stopped.set()
        self._thread.join(timeout=self._settings.retry_period + 5)
        if self._leading.is_set():
            self._set_leading(False)
            try:
                self._release()
            except ApiError as error:
                _log.warning("could not release the lease", error=str(error))

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                acquired = self._try_acquire_or_renew()
            except ApiError as error:
                _log.warning("lease update failed", error=str(error))
                acquired = False
            if acquired:
                self._renewed_at = time.monotonic()
                self._set_leading(True)
            else:
                self.is_leader  # noqa: B018 - drops leadership once the renew deadline has passed
            self._stopped.wait(self._settings.retry_period)

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading.is_set():
            return
        if leading:
            self._leading.set()
        else:
            self._leading.clear()
        _log.info("leadership changed", leading=leading, identity=self.identity, lease=self._settings.name)
        self._on_change(leading)

    def _try_acquire_or_renew(self) -> bool:
        settings = self._settings
        now = _micro_time()
        current = self._api.get(LEASES, namespace=settings.namespace, name=settings.name)
        if current is None:
            body = {
                "apiVersion": LEASES.api_version,
                "kind": LEASES.kind,
                "metadata": {"name": settings.name, "namespace": settings.namespace},
                "spec": self._spec(now, acquire_time=now, transitions=0),
            }
            try:
                self._api.create(LEASES, namespace=settings.namespace, body=body)
            except ApiError as error:
                if error.status == 409:  # another candidate created it first
                    return False
                raise
            return True
        spec: dict[str, Any] = current.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime", "")))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or settings.lease_duration)
        expired = time.monotonic() - self._observed_at > duration
        if holder and holder != self.identity and not expired:
            self._set_leading(False)  # someone else holds it: stop writing now, not at the renew deadline
            return False
        mine = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        acquire_time = spec.get("acquireTime") if mine else now
        current["spec"] = self._spec(now, acquire_time=acquire_time or now, transitions=transitions)
        try:
            self._api.replace(LEASES, namespace=settings.namespace, name=settings.name, body=current)
        except ApiError as error:
            if error.status == 409:  # someone else updated it in between: not ours this round
                return False
            raise
        return True

    def _release(self) -> None:
        settings = self._settings
        current = self._api.get(LEASES, namespace=settings.namespace, name=settings.name)
        if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        current["spec"]["holderIdentity"] = ""
        current["spec"]["leaseDurationSeconds"] = 1
        self._api.replace(LEASES, namespace=settings.namespace, name=settings.name, body=current)

    def _spec(self, now: str, *, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self._settings.lease_duration),
            "acquireTime": acquire_time,
            "renewTime": now,
            "leaseTransitions": transitions,
        }


def _micro_time() -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
