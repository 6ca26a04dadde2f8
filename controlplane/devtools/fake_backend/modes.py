"""Fault modes of the fake backend.

Failover, outlier detection and failback can only be tested against a backend that fails on command, in each
of the ways a hosted model provider fails. One immutable value per way keeps a mode switch a single atomic
assignment, safe to make from the test thread while the server thread reads it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["HoldStream", "Mode", "Normal", "Refuse", "Reset", "Slow", "StallStream", "Status"]


@dataclass(frozen=True)
class Normal:
    """Answer every request."""


@dataclass(frozen=True)
class Status:
    """Answer every request with this HTTP status and an OpenAI-style error body.

    ``retry_after`` (seconds) is sent as the ``retry-after`` header on 429 answers, as providers do.
    """

    code: int
    retry_after: int = 1

    def __post_init__(self) -> None:
        if not 400 <= self.code <= 599:
            raise ValueError(f"Status mode needs an error status (4xx/5xx), got {self.code}")


@dataclass(frozen=True)
class Slow:
    """Wait this many seconds after reading a request, then answer it normally."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"Slow mode needs a delay >= 0, got {self.seconds}")


@dataclass(frozen=True)
class StallStream:
    """Answer normally, but a streamed answer goes silent for this many seconds after its first chunk
    (a model that stalls mid-generation); non-streamed answers are not delayed."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"StallStream mode needs a delay >= 0, got {self.seconds}")


@dataclass(frozen=True)
class HoldStream:
    """Answer normally, but a streamed answer sends its first event and then waits for ``release`` (set from
    any thread) before the rest: a test sees the first chunk arrive while the backend has not finished.
    With ``after_done``, it sends every event, ``[DONE]`` included, and waits before ending the response: a
    client that leaves once it has ``[DONE]`` goes before the stream's end reaches Envoy."""

    release: threading.Event = field(default_factory=threading.Event, compare=False)
    after_done: bool = False
    max_hold_seconds: float = 60.0
    """A release never given ends the hold anyway, so a failed test leaves no stream open for ever."""


@dataclass(frozen=True)
class Reset:
    """Read the request, then reset the connection (TCP RST) without answering."""


@dataclass(frozen=True)
class Refuse:
    """Stop listening, keeping the port reserved: new connections are refused, open ones are closed."""


Mode = Normal | Status | Slow | StallStream | HoldStream | Reset | Refuse
