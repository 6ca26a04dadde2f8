"""Configuration a proxy refused, reported on the object that produced it.

The translator validates what it can, but Envoy has the last word (a listener on a port already in use,
a limit we do not know). The xDS server already holds a refused version back and keeps serving the rest;
this module makes the refusal visible where users look: a ``Programmed=False`` condition with Envoy's
reason on the object whose resource was refused (in ``/status``, in ``translate``'s status shape, and
written to the cluster), one log line per refusal, and a gauge of objects with a refusal. A refusal
lasts as long as the refused version is what the snapshot serves: a change that alters or removes the
resource clears it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Gauge

from controlplane.gatewayapi import Condition, ObjectStatus
from controlplane.gatewayapi.provenance import Owners
from controlplane.resources.problems import ObjectKey
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import TYPE_URLS, short_type_name
from controlplane.xds.server import XdsEvent

_log = structlog.get_logger(__name__)

PROGRAMMED = "Programmed"
REFUSED_BY_PROXY = "RefusedByProxy"


@dataclass(frozen=True, slots=True)
class Refusal:
    type_url: str
    resource: str
    version: str
    node_id: str
    message: str

    def describe(self) -> str:
        return (
            f"Envoy {self.node_id} refused {short_type_name(self.type_url)} {self.resource}: {self.message}"
        )


class ProxyRefusals:
    """Refused resource versions, kept while the snapshot still serves them (an ``XdsObserver``)."""

    def __init__(
        self, *, registry: CollectorRegistry | None = None, on_new_refusal: Callable[[], None] = lambda: None
    ) -> None:
        self._refused: dict[tuple[str, str], Refusal] = {}
        self._on_new_refusal = on_new_refusal
        self._gauge = Gauge(
            "xds_refused_resources",
            "Resource versions a proxy refused that the snapshot still serves, by type.",
            ["type"],
            registry=registry if registry is not None else CollectorRegistry(),
        )

    def __call__(self, event: XdsEvent, /) -> None:
        if event.kind != "nack":
            return
        new = False
        for name in event.refused:
            sent = event.sent.get(name)
            version = sent.version if sent is not None else ""
            refusal = Refusal(event.type_url, name, version, event.node_id, event.error)
            if (event.type_url, name) not in self._refused:
                self._refused[(event.type_url, name)] = refusal
                new = True
                _log.error("proxy refused configuration", refusal=refusal.describe())
        if new:
            self._count()
            self._on_new_refusal()

    def forget_outdated(self, snapshot: Snapshot) -> None:
        """Drops refusals of versions the snapshot no longer serves (changed or removed since)."""
        for key, refusal in list(self._refused.items()):
            served = snapshot.get(refusal.type_url).get(refusal.resource)
            if served is None or served.version != refusal.version:
                del self._refused[key]
                _log.info("proxy refusal resolved", resource=refusal.resource)
        self._count()

    def _count(self) -> None:
        for type_url in TYPE_URLS:
            refused = sum(1 for known_type, _ in self._refused if known_type == type_url)
            self._gauge.labels(type=short_type_name(type_url)).set(refused)

    def count_objects(self, statuses: Mapping[ObjectKey, ObjectStatus]) -> int:
        return len(self._by_owner(statuses))

    def apply(self, statuses: dict[ObjectKey, ObjectStatus]) -> dict[ObjectKey, ObjectStatus]:
        """``statuses`` with a ``Programmed=False`` condition on each object a proxy refused a part of (the
        same mapping when there is none: tens of thousands of statuses are not copied on the event loop)."""
        by_owner = self._by_owner(statuses)
        if not by_owner:
            return statuses
        out = dict(statuses)
        for owner, refusals in by_owner.items():
            message = "; ".join(refusal.describe() for refusal in refusals)
            condition = Condition(PROGRAMMED, False, REFUSED_BY_PROXY, message)
            out[owner] = dataclasses.replace(out[owner], conditions=(*out[owner].conditions, condition))
        return out

    def _by_owner(self, statuses: Mapping[ObjectKey, ObjectStatus]) -> dict[ObjectKey, list[Refusal]]:
        if not self._refused:
            return {}  # the usual case, without indexing thousands of statuses on the event loop
        owners = Owners(statuses)
        found: dict[ObjectKey, list[Refusal]] = {}
        for key in sorted(self._refused):
            refusal = self._refused[key]
            owner = owners.owner_of(refusal.resource)
            if owner is not None:
                found.setdefault(owner, []).append(refusal)
        return found
