"""What every source of resources offers the running server, and what the server hands back.

A source calls its ``LoadHandler`` with the whole current configuration after every settled change; the
handler answers with each object's verdict, which a source that can report (Kubernetes status) writes back
and one that cannot (files) ignores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from controlplane.gatewayapi import ObjectStatus
    from controlplane.resources.parse import LoadResult
    from controlplane.resources.problems import ObjectKey


class SourceUnavailable(Exception):
    """A source that cannot start, with why in words for the user (``serve`` prints it and exits 1)."""


class LoadHandler(Protocol):
    async def __call__(self, result: LoadResult, /) -> Mapping[ObjectKey, ObjectStatus] | None:
        """The verdicts on ``result``'s objects; None when there are none to report (translating it failed
        and none of it is served: the verdicts written last stay)."""
        ...


class Source(Protocol):
    def state(self) -> dict[str, Any]:
        """What the source adds to ``/status`` about itself (nothing secret)."""
        ...

    def synced(self) -> bool:
        """Whether the source has read everything once (it may have served a partial view before, after
        waiting too long). Readiness waits for it, so a replica that cannot read its source is not sent
        Envoys to configure with a partial view; once true it stays true."""
        ...

    def report(self, statuses: Mapping[ObjectKey, ObjectStatus], /) -> None:
        """Verdicts that changed between loads (a proxy refused part of an object): written where the
        source can write status, like the ones ``on_load`` returns."""
        ...

    async def run(self, on_load: LoadHandler) -> None:
        """Calls ``on_load`` with the first full view, then after every settled change, until cancelled."""
        ...
