"""What one stream knows about one resource type: what Envoy holds, what it was sent and refused, and which
names may have changed since the type was last planned (``stream_state`` plans from it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from controlplane.xds.cache import Snapshot
from controlplane.xds.content import XdsResource, content_version
from controlplane.xds.resource import ENDPOINT


@dataclass(frozen=True)
class InFlight:
    """A response sent and not yet ACKed or NACKed."""

    nonce: str
    sequence: int
    """Position among all responses of the stream (Envoy answers them in order)."""
    sent: Mapping[str, XdsResource]
    removed: tuple[str, ...]
    sent_at: float


def in_flight_of(sent: Mapping[str, XdsResource], *, sequence: int, removed: Sequence[str] = ()) -> InFlight:
    """An `InFlight` record stamped now; its nonce is the sequence number."""
    return InFlight(
        nonce=str(sequence),
        sequence=sequence,
        sent=dict(sent),
        removed=tuple(removed),
        sent_at=time.monotonic(),
    )


@dataclass
class TypeState:
    """A stream's knowledge about one resource type."""

    type_url: str
    wildcard: bool
    subscribed: bool = False
    names: set[str] = field(default_factory=set)
    acked: dict[str, XdsResource] = field(default_factory=dict)
    # False after a state-of-the-world reconnect whose reported version we cannot map to content: Envoy may
    # hold resources we do not know of, so leaving one out of a response could delete it.
    known: bool = True
    in_flight: InFlight | None = None
    last_nonce: str = ""
    rejected: set[tuple[str, str]] = field(default_factory=set)
    response_owed: bool = False
    # Names to send again although Envoy holds their version: an updated EDS cluster warms until it gets
    # its load assignment once more, even an unchanged one.
    resend: set[str] = field(default_factory=set)
    # The last response Envoy refused (its content version) and Envoy's reason, for proxy status.
    nacked_version: str = ""
    nack_message: str = ""
    # The snapshot's resources of this type when it was last planned, and the names that may since differ
    # between them and what Envoy holds (not yet sent, waiting, going, ACKed since, subscription changed):
    # every other name is settled, so the next plan looks only at these and the ones replaced since.
    planned_on: Mapping[str, XdsResource] | None = None
    unsettled: set[str] = field(default_factory=set)

    def unsettle(self, names: Iterable[str]) -> None:
        """Say that what Envoy holds of, wants of or refused of ``names`` changed."""
        self.unsettled.update(names)

    def differences(self, target: Mapping[str, XdsResource]) -> tuple[list[str], list[str]]:
        """What bringing Envoy to ``target`` (just planned) takes, names sorted: those it gives a version
        Envoy does not hold, and those Envoy holds that it leaves out. After a plan only the unsettled names
        can differ, so a large type costs nothing where little changed."""
        names = self.unsettled if self.planned_on is not None else target.keys() | self.held_names()
        changed, removed = [], []
        for name in sorted(names):
            held, wanted = self.holds(name), target.get(name)
            if wanted is None:
                if held is not None:
                    removed.append(name)
            elif held is not wanted and (held is None or held.version != wanted.version):
                changed.append(name)
        return changed, removed

    def hand_over(self) -> list[dict[str, XdsResource] | set[str]]:
        """This state's own containers of names (none shared with a snapshot or an event), replaced with empty
        ones: a stream that ends hands them to ``heap.release_gradually``."""
        owned: list[dict[str, XdsResource] | set[str]] = [self.acked, self.names, self.unsettled, self.resend]
        self.acked, self.names, self.unsettled, self.resend = {}, set(), set(), set()
        return owned

    def forget_plan(self) -> None:
        """Say that what Envoy holds is no longer known name by name: the next plan looks at every name."""
        self.planned_on = None
        self.unsettled.clear()

    def holds(self, name: str) -> XdsResource | None:
        """The version Envoy holds of `name` (by-name types: only while it is still subscribed)."""
        if not self.wildcard and name not in self.names:
            return None
        return self.acked.get(name)

    def held_names(self) -> AbstractSet[str]:
        """The names of what Envoy holds of this type (those of ``held``), as a set: set operations on it
        run in C, where large types are concerned."""
        return self.acked.keys() if self.wildcard else self.acked.keys() & self.names

    def held(self) -> Iterator[XdsResource]:
        """Every resource Envoy holds of this type (by-name types: only those still subscribed)."""
        if self.wildcard:
            return iter(self.acked.values())
        return (resource for name, resource in self.acked.items() if name in self.names)

    def endpoints_to_resend(self, in_flight: InFlight) -> set[str]:
        """The load assignments of the clusters ``in_flight`` updates (this being the cluster type): Envoy
        re-creates an updated cluster, which then warms until a load assignment arrives, and does not ask for
        it again (delta) or asks as if ACKing (SotW). The ACK of the CDS response also waits for that
        warming, so the resend cannot wait for it. A pass over every cluster sent (all of them in a
        reconnect's first response): part of a plan, so a large one runs in its worker thread."""
        names: set[str] = set()
        for name, resource in in_flight.sent.items():
            before = self.acked.get(name)
            if before is not None and before.version != resource.version:
                names.update(key.name for key in resource.warming if key.type_url == ENDPOINT)
        return names

    def record_nack(self, in_flight: InFlight, message: str) -> frozenset[str]:
        """Remember the versions Envoy refused so they are not sent again; return their names.

        Envoy applies what it can of a listener or cluster update and lists the failures by name; the rest
        of such a response is in effect (the caller records it as ACKed). Elsewhere, or when the message
        names nothing, every changed resource of the response counts as refused.
        """
        changed = {
            name: resource
            for name, resource in in_flight.sent.items()
            if name not in self.acked or self.acked[name].version != resource.version
        }
        self.nacked_version, self.nack_message = content_version(in_flight.sent), message
        named = _names_listed(message, changed) if self.wildcard else frozenset()
        refused = named or frozenset(changed)
        self.rejected.update((name, changed[name].version) for name in refused)
        self.unsettle(refused)
        return refused

    def forget_stale_rejections(self, snapshot: Snapshot) -> None:
        """A refused version no longer in the snapshot may come back later as a new push."""
        if not self.rejected:
            return
        current = snapshot.get(self.type_url)
        kept = {
            (name, version)
            for name, version in self.rejected
            if name in current and current[name].version == version
        }
        self.unsettle(name for name, _ in self.rejected - kept)
        self.rejected = kept


def _names_listed(message: str, names: Iterable[str]) -> frozenset[str]:
    # "Error adding/updating cluster(s) a: why, b: why" (listeners: one "name: why" per line).
    return frozenset(
        name for name in names if re.search(r"(?:\(s\) |, |\n)" + re.escape(name) + ": ", message)
    )


def same_versions(left: Mapping[str, XdsResource], right: Mapping[str, XdsResource]) -> bool:
    """Whether two contents hold the same names at the same versions."""
    return left.keys() == right.keys() and all(left[name].version == right[name].version for name in left)
