"""Turns on the event loop for the streams' slices of work, one slice a loop round, first come first served.

One change reaches every stream at once: each stream's task wakes in the same loop round and, with nothing
between them, all of them plan and serialise their responses before the loop polls a socket or runs a timer
again. With 100 streams that held the loop for 150-450 ms (``bench.fanout``): meanwhile no ACK was read, no
connection accepted, no probe or ``/metrics`` answered. Yielding inside each stream (``asyncio.sleep(0)``)
does not help: every stream's next slice is then ready in the same following round, and the round is as long.

So a stream waits for its turn before each slice of work (a batch of requests, a slice of a response), and
turns are given one per loop round: everything else that is ready (sockets, timers, the other callbacks) runs
between two streams' slices. The work done is the same and in the same order per stream (a stream awaits
its own turns one after the other), and the loop's worst stall shrinks to about one slice. What it costs:
ACKs of the first streams are now handled before the last streams are written to, so the last response of a
small change goes out a little later (``bench.fanout``, Delta, 103 streams: all ACKed 5-16 ms later, of
60-170 ms). A turn is not held: nothing is released, so a stream that ends or is cancelled while waiting costs
the others nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Turns:
    """Gives waiting tasks their turn, one per loop round, in the order they asked (on the loop of the latest
    ``take``: a server's streams all run on one)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._granting = False
        """A grant is scheduled on the loop (at most one is, so turns are given one a round)."""

    async def take(self) -> None:
        """Returns when it is the caller's turn: the loop has run a round since the previous turn."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Waiters and a grant left on a loop that has ended (a server started again on another) would
            # never be served: start afresh.
            self._loop, self._waiting, self._granting = loop, deque(), False
        turn = loop.create_future()
        self._waiting.append(turn)
        if not self._granting:
            self._granting = True
            loop.call_soon(self._grant, loop)
        await turn

    def _grant(self, loop: asyncio.AbstractEventLoop) -> None:
        # The granted task resumes in the next round (a future's callbacks are scheduled, not called), ahead
        # of the next grant, which is scheduled after it: one turn a round.
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # a waiter cancelled meanwhile is skipped
                turn.set_result(None)
                break
        if self._waiting:
            loop.call_soon(self._grant, loop)
        else:
            self._granting = False
