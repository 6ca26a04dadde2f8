"""What a stream tells its observers (tests, benchmarks, the refusals record, status pages) and how.

Kept apart from the stream's machinery: observers depend only on these shapes, and a stream hands every
event to each of them the same way, one failing observer never stopping the others or the stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from controlplane.xds.content import XdsResource, versions

Mode = Literal["sotw", "delta"]


@dataclass(frozen=True)
class XdsEvent:
    """Something a stream did, for observers (tests, benchmarks, status pages)."""

    kind: Literal["push", "ack", "nack"]
    mode: Mode
    node_id: str
    type_url: str
    nonce: str
    sent: Mapping[str, XdsResource]
    """The response's resources by name: the stream's own record of it, shared rather than copied (a proxy's
    first responses carry tens of thousands), so observers must not change it."""
    removed: tuple[str, ...] = ()
    error: str = ""
    refused: tuple[str, ...] = ()
    """A NACK's refused resource names (Envoy applied the rest of the response)."""
    latency_seconds: float | None = None

    @property
    def resources(self) -> tuple[tuple[str, str], ...]:
        """(name, version) of each resource in the response, made on each call: an observer that needs only
        a few names looks them up in ``sent`` instead."""
        return tuple(versions(self.sent).items())


class XdsObserver(Protocol):
    """Called on the server's event loop for every push, ACK and NACK; must return quickly: work in
    proportion to the whole response (thousands of resources) stalls every stream."""

    def __call__(self, event: XdsEvent, /) -> None: ...


def notify(observers: Sequence[XdsObserver], event: XdsEvent, *, log: structlog.stdlib.BoundLogger) -> None:
    """Hands `event` to each observer in turn; one that raises is logged on `log` and skipped."""
    for observer in observers:
        try:
            observer(event)
        except Exception:
            log.exception("xDS observer failed")
