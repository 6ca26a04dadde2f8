"""The benchmarks' ACK observer: when a node has ACKed exactly the resources and versions of a snapshot.

Rows 2 to 4 and ``bench.scale`` time a change from handing it to our server until the node ACKed all of it;
this observer, added to the server with ``XdsServer.add_observer``, is what tells them. It has a module of
its own because three benchmarks (``xds_push``, ``fanout``, ``scale``) and its tests use it, and because its
cost on the server's loop is part of what ``bench.scale`` measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence, Set
from operator import itemgetter

from controlplane.xds.cache import Snapshot
from controlplane.xds.content import versions
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE
from controlplane.xds.server import XdsEvent

SNAPSHOT_TYPES = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
"""The types a wait compares (secrets, with policies, are not waited for)."""
_ACK_TIMEOUT = 120.0
"""How long ``Acks.until`` waits for the ACKs: longer than a fresh Envoy takes at 5,000 clusters."""


class Acks:
    """Observer telling when a node has ACKed exactly the resources and versions of a snapshot.

    It runs on the server's event loop, whose stalls ``bench.scale`` measures, so an ACK costs there only in
    proportion to what it carries, in C: each wait keeps, per type, the names whose held version differs
    from the snapshot's, and an ACK moves only its own names in or out of that set (a Delta ACK of one
    change: a few names, not the 40,000 a node holds at 5,000 routes with policies). The snapshot's versions
    and the first such sets are made in a worker thread, from a copy of what the node held when the wait
    began (again, should an ACK come meanwhile)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], dict[str, str]] = {}
        self._last_ack: dict[str, float] = {}
        """perf_counter() of each node's latest ACK of a type a wait reads (when what it holds changed)."""
        self._waits: dict[str, list[_Wait]] = {}

    def __call__(self, event: XdsEvent, /) -> None:
        if event.kind != "ack" or event.type_url not in SNAPSHOT_TYPES:
            return  # secrets, with policies: no snapshot's wait reads them
        # When the ACK came: what follows is the observer's own work, not the server's.
        now = self._last_ack[event.node_id] = time.perf_counter()
        held = self._held.setdefault((event.node_id, event.type_url), {})
        acked = versions(event.sent)
        # SotW: the ACK names the whole type, so what it leaves out is gone (as many names as it carries).
        gone = (held.keys() if event.mode == "sotw" else set(event.removed)) - acked.keys()
        for name in gone:
            held.pop(name, None)
        held.update(acked)
        for wait in self._waits.get(event.node_id, ()):
            wait.acked(event.type_url, held, acked=acked, gone=gone, at=now)

    async def until(self, node_id: str, snapshot: Snapshot) -> float:
        """perf_counter() of the ACK that completed `snapshot` for `node_id` (the call's, had it before)."""
        (acked,) = await self.until_each([node_id], snapshot)
        return acked

    async def until_each(self, node_ids: Sequence[str], snapshot: Snapshot) -> list[float]:
        """``until`` for each of ``node_ids``, in that order: the snapshot's versions worked out once and
        every node compared in one worker thread. A wait per node, each with a thread of its own, cost a
        fleet's server loop 30-40 ms as a change began (103 nodes: their tasks, and the threads' turns at
        the interpreter), which ``bench.fanout`` then counted as the server's stall."""
        called = time.perf_counter()
        loop = asyncio.get_running_loop()
        waits = [_Wait(loop.create_future()) for _ in node_ids]
        for node_id, wait in zip(node_ids, waits, strict=True):
            self._waits.setdefault(node_id, []).append(wait)
        try:
            wanted = await asyncio.to_thread(self._wanted, snapshot)
            pending = list(zip(node_ids, waits, strict=True))
            while pending:  # an ACK changed what a node holds while the thread compared: that one again
                for _, wait in pending:
                    wait.touched = False
                differing = await asyncio.to_thread(
                    self._differing_each, [node_id for node_id, _ in pending], wanted
                )
                for (node_id, wait), found in zip(pending, differing, strict=True):
                    if not wait.touched:
                        wait.start(wanted, found)
                        if wait.complete:  # had it before: no ACK will complete it
                            wait.future.set_result(max(called, self._last_ack.get(node_id, called)))
                pending = [(node_id, wait) for node_id, wait in pending if wait.touched]
            return await asyncio.wait_for(asyncio.gather(*(wait.future for wait in waits)), _ACK_TIMEOUT)
        finally:
            for node_id, wait in zip(node_ids, waits, strict=True):
                self._waits[node_id].remove(wait)

    @staticmethod
    def _wanted(snapshot: Snapshot) -> dict[str, dict[str, str]]:
        """The snapshot's versions by type (in a worker thread)."""
        return {type_url: versions(snapshot.get(type_url)) for type_url in SNAPSHOT_TYPES}

    def _differing_each(
        self, node_ids: list[str], wanted: dict[str, dict[str, str]]
    ) -> list[dict[str, set[str]]]:
        return [self._differing(node_id, wanted) for node_id in node_ids]

    def _differing(self, node_id: str, wanted: dict[str, dict[str, str]]) -> dict[str, set[str]]:
        """Per type, the names whose version `node_id` holds is not the one in `wanted` (or that only one
        side has). In a worker thread, as tens of thousands of names would stall the loop: each type's held
        versions are copied in one C call, which the loop's ACKs cannot interleave (the GIL), and an ACK
        between two copies or after them sets the wait's ``touched``, making ``until`` compare again."""
        differing = {}
        for type_url in SNAPSHOT_TYPES:
            held = dict(self._held.get((node_id, type_url), {}))
            differing[type_url] = _names(held.items() ^ wanted[type_url].items())
        return differing


def _names(items: Iterable[tuple[str, str]]) -> set[str]:
    return set(map(itemgetter(0), items))


_WHOLE_TYPE_SHARE = 0.5
"""An ACK touching at least this share of a type's wanted names (SotW's always; Delta's first) is checked by
comparing the whole type in C, cheaper than classifying that many names one by one."""


class _Wait:
    """One ``Acks.until``: per type, the names whose held version is not yet the snapshot's."""

    def __init__(self, future: asyncio.Future[float]) -> None:
        self.future = future
        self.touched = False
        """An ACK came while a worker thread compared what the node held (its copy may be stale)."""
        self._wanted: dict[str, dict[str, str]] = {}
        self._differing: dict[str, set[str]] = {}

    @property
    def complete(self) -> bool:
        return bool(self._wanted) and not any(self._differing.values())

    def start(self, wanted: dict[str, dict[str, str]], differing: dict[str, set[str]]) -> None:
        self._wanted, self._differing = wanted, differing

    def acked(
        self, type_url: str, held: dict[str, str], *, acked: dict[str, str], gone: Set[str], at: float
    ) -> None:
        """The node now holds `held` of `type_url`: `acked` (name -> version) changed, `gone` names left, by
        the ACK that came at `at` (perf_counter())."""
        if not self._wanted:
            self.touched = True
            return
        wanted, differing = self._wanted[type_url], self._differing[type_url]
        if len(acked) + len(gone) >= _WHOLE_TYPE_SHARE * len(wanted):
            self._differing[type_url] = set() if held == wanted else _names(held.items() ^ wanted.items())
        else:
            matching = _names(acked.items() & wanted.items())
            differing.difference_update(matching, gone)
            differing.update(acked.keys() - matching, wanted.keys() & gone)
        if not self.future.done() and self.complete:
            self.future.set_result(at)
