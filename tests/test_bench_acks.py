"""The benchmarks' ACK observer (``bench.acks.Acks``) keeps per wait only the names still differing, so a
wait must end exactly when the node holds the snapshot's resources at its versions: no earlier (a name
missing, extra or at another version), not later, whatever the protocol and whenever the ACKs come; of nodes
awaited together (``until_each``), only one whose ACK came while they were compared is compared again."""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

import pytest

from bench.acks import SNAPSHOT_TYPES, Acks
from bench.clusters import ClusterConfig
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import ENDPOINT
from controlplane.xds.server import XdsEvent

_NODE = "node"


def _ack(
    snapshot: Snapshot,
    type_url: str,
    *,
    mode: Literal["sotw", "delta"] = "delta",
    only: tuple[str, ...] | None = None,
    removed: tuple[str, ...] = (),
    node: str = _NODE,
) -> XdsEvent:
    """An ACK by `node` of `snapshot`'s resources of `type_url` (`only` these names: a Delta ACK of a few)."""
    resources = snapshot.get(type_url)
    return XdsEvent(
        kind="ack",
        mode=mode,
        node_id=node,
        type_url=type_url,
        nonce="1",
        sent=resources if only is None else {name: resources[name] for name in only},
        removed=removed,
    )


async def _settled(task: asyncio.Task[object], *, within: float = 30.0) -> bool:
    """Whether `task` ended within `within` seconds (a wait that must not end gets a short while: its worker
    thread compares a few names)."""
    done, _ = await asyncio.wait({task}, timeout=within)
    return bool(done)


_MUST_NOT_END = 0.3


def test_a_wait_ends_with_the_ack_that_completes_the_snapshot_and_not_before() -> None:
    config = ClusterConfig(size=8, listener_port=10000)
    base, moved = config.snapshot(), config.snapshot(endpoint_offset=1, changed=2)
    changed, extra = "cluster-00002", "cluster-00008"

    async def scenario() -> None:
        acks = Acks()
        waiting = asyncio.create_task(acks.until(_NODE, base))
        *first, last = SNAPSHOT_TYPES
        for type_url in first:
            acks(_ack(base, type_url))
        assert not await _settled(waiting, within=_MUST_NOT_END)
        acks(_ack(base, last))
        assert await _settled(waiting)

        # One load assignment moves: ACKing another version of it, or an extra name, completes nothing;
        # each Delta ACK below carries one or two of the eight names.
        waiting = asyncio.create_task(acks.until(_NODE, moved))
        assert not await _settled(waiting, within=_MUST_NOT_END)
        acks(_ack(config.snapshot(endpoint_offset=2, changed=2), ENDPOINT, only=(changed,)))
        assert not await _settled(waiting, within=_MUST_NOT_END)
        bigger = ClusterConfig(size=9, listener_port=10000).snapshot(endpoint_offset=1, changed=2)
        acks(_ack(bigger, ENDPOINT, only=(changed, extra)))
        assert not await _settled(waiting, within=_MUST_NOT_END)
        acks(_ack(moved, ENDPOINT, only=(), removed=(extra,)))
        assert await _settled(waiting)
        assert waiting.result() > 0

        # A Delta removal of a wanted name is a difference until the name comes back.
        waiting = asyncio.create_task(acks.until(_NODE, base))
        assert not await _settled(waiting, within=_MUST_NOT_END)  # started, comparing per ACK
        acks(_ack(moved, ENDPOINT, only=(), removed=(changed,)))
        assert not await _settled(waiting, within=_MUST_NOT_END)
        acks(_ack(base, ENDPOINT, only=(changed,)))
        assert await _settled(waiting)

        # State of the world: what an ACK leaves out is gone.
        waiting = asyncio.create_task(acks.until(_NODE, moved))
        assert not await _settled(waiting, within=_MUST_NOT_END)  # started, comparing per ACK
        acks(_ack(bigger, ENDPOINT, mode="sotw"))
        assert not await _settled(waiting, within=_MUST_NOT_END)
        acks(_ack(moved, ENDPOINT, mode="sotw"))
        assert await _settled(waiting)

    asyncio.run(scenario())


def test_acks_while_the_first_comparison_runs_are_counted_and_a_held_snapshot_needs_none() -> None:
    config = ClusterConfig(size=3000, listener_port=10000)
    base = config.snapshot()

    async def scenario() -> None:
        acks = Acks()
        waiting = asyncio.create_task(acks.until(_NODE, base))
        await asyncio.sleep(0)  # the wait is registered and its worker thread started
        for type_url in SNAPSHOT_TYPES:
            acks(_ack(base, type_url))
        assert await _settled(waiting)

        held = asyncio.create_task(acks.until(_NODE, base))
        assert await _settled(held)
        assert held.result() >= waiting.result()

    asyncio.run(scenario())


def test_of_two_nodes_only_the_one_that_acked_while_compared_is_compared_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ClusterConfig(size=8, listener_port=10000).snapshot()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        acks = Acks()
        for type_url in SNAPSHOT_TYPES:
            acks(_ack(base, type_url, node="holding"))
        compared: list[list[str]] = []
        differing_each = acks._differing_each

        def comparing(node_ids: list[str], wanted: dict[str, dict[str, str]]) -> list[dict[str, set[str]]]:
            differing = differing_each(node_ids, wanted)
            compared.append(list(node_ids))
            if len(compared) == 1:
                # Node "acking" ACKs everything on the loop once its held versions were copied: the first
                # comparison is stale for it, not for the other node.
                acked = threading.Event()

                def ack_everything() -> None:
                    for type_url in SNAPSHOT_TYPES:
                        acks(_ack(base, type_url, node="acking"))
                    acked.set()

                loop.call_soon_threadsafe(ack_everything)
                acked.wait()
            return differing

        monkeypatch.setattr(acks, "_differing_each", comparing)
        waiting = asyncio.create_task(acks.until_each(["acking", "holding"], base))
        assert await _settled(waiting)
        assert compared == [["acking", "holding"], ["acking"]]
        acking, holding = waiting.result()
        # The node holding the snapshot had it before the call; the other completed it with its last ACK.
        assert holding <= acking

    asyncio.run(scenario())
