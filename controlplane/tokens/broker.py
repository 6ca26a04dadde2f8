"""Keeps one access token fresh per policy, off the translation path, and says when one changed.

After each translation the server hands over the mint requests it found (``want``); each new or changed
request gets a task of its own that mints, then refreshes at ``REFRESH_FRACTION`` of the token's lifetime.
A failed mint is retried with a growing back-off (never later than the current token's expiry); meanwhile
the last good token is kept, with the failure noted, until it expires, and only then does the policy have
no token (``MintFailure``). Every change of a policy's state calls ``on_change`` so the server translates
again with the new tokens as input. A request that goes away (policy deleted) stops its task and forgets
its token; a changed one (its Secret rotated) is minted anew while the token it had keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

import structlog

from controlplane.resources.problems import ObjectKey
from controlplane.tokens.minting import Minted, Minter, MintError
from controlplane.tokens.requests import MintRequest
from controlplane.tokens.state import MintedToken, MintFailure, TokenState

_log = structlog.get_logger(__name__)

REFRESH_FRACTION: Final = 0.8
MIN_REFRESH_SECONDS: Final = 1.0
"""However short a token's lifetime, refresh no faster than this (expires_in=1 is not spun on)."""
RETRY_BASE_SECONDS: Final = 1.0
RETRY_MAX_SECONDS: Final = 60.0


class TokensChanged(Protocol):
    """Called on the event loop when some policy's token or failure changed."""

    def __call__(self) -> None: ...


class TokenBroker:
    def __init__(
        self,
        *,
        minter: Minter,
        on_change: TokensChanged,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._minter = minter
        self._on_change = on_change
        self._clock = clock
        self._sleep = sleep
        self._wanted: dict[ObjectKey, MintRequest] = {}
        self._tasks: dict[ObjectKey, asyncio.Task[None]] = {}
        self._states: dict[ObjectKey, TokenState] = {}
        self._changed = asyncio.Event()
        """Set (and replaced) on every change of a state: what ``first_tokens`` waits on."""

    def tokens(self) -> dict[ObjectKey, TokenState]:
        """Each policy's current token or failure (a policy being minted for the first time is absent)."""
        return dict(self._states)

    def want(self, requests: Mapping[ObjectKey, MintRequest]) -> None:
        """Mint for exactly these policies from now on (call on the event loop)."""
        forgotten = False
        for key in [key for key in self._wanted if self._wanted[key] != requests.get(key)]:
            del self._wanted[key]
            self._tasks.pop(key).cancel()
            if key not in requests:
                forgotten |= self._states.pop(key, None) is not None
        for key, request in requests.items():
            if key not in self._wanted:
                # A changed request (a rotated client secret) keeps serving the token it has meanwhile.
                current = self._states.get(key)
                kept = Minted(current.value, current.expires_at) if isinstance(current, MintedToken) else None
                self._wanted[key] = request
                self._tasks[key] = asyncio.get_running_loop().create_task(
                    self._keep_fresh(key, request, kept), name=f"token {key}"
                )
        if forgotten:
            self._on_change()

    async def first_tokens(self) -> None:
        """Returns once every wanted policy has its first token (or failure); callers bound the wait."""
        while any(key not in self._states for key in self._wanted):
            await self._changed.wait()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._wanted.clear()

    async def _keep_fresh(self, key: ObjectKey, request: MintRequest, good: Minted | None) -> None:
        failures = 0
        while True:
            started = self._clock()
            try:
                good = await self._minter(request)
            except MintError as error:
                failures += 1
                now = self._clock()
                retry = min(RETRY_BASE_SECONDS * 2 ** (failures - 1), RETRY_MAX_SECONDS)
                if good is not None and good.expires_at > now:
                    state: TokenState = MintedToken(good.value, good.expires_at, refresh_problem=str(error))
                    retry = min(retry, good.expires_at - now)
                else:
                    state = MintFailure(str(error))
                _log.warning("minting an access token failed", policy=str(key), reason=str(error))
                delay = max(retry, 0.0)
            else:
                if failures or key not in self._states:
                    _log.info(
                        "access token minted", policy=str(key), expires_in=round(good.expires_at - started)
                    )
                failures = 0
                state = MintedToken(good.value, good.expires_at)
                delay = max((good.expires_at - started) * REFRESH_FRACTION, MIN_REFRESH_SECONDS)
            if self._states.get(key) != state:
                self._states[key] = state
                self._changed.set()
                self._changed = asyncio.Event()
                self._on_change()
            await self._sleep(delay)
