"""What the fake backend received, kept for assertions.

Tests check what Envoy actually sent upstream (the rewritten ``model``, the injected credential, the path
after a rewrite, a chunked body), so every request is recorded exactly as it arrived. Requests are appended by
the server thread and read by the test thread, hence the lock; readers get copies, never the live list.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from multidict import CIMultiDictProxy, MultiDictProxy

__all__ = ["ReceivedRequest", "RequestLog", "RequestPredicate"]


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake backend received it.

    ``headers`` is case-insensitive (``headers["Authorization"] == headers["authorization"]``). ``json`` is
    the parsed body when it was valid JSON, else None. ``sni`` is the server name the TLS client sent (None
    over plain HTTP or when the client sent none). ``tcp_nodelay`` is whether the connection it came on had
    TCP_NODELAY set. ``received_at`` is ``time.monotonic()`` on arrival.
    """

    method: str
    path: str
    query: MultiDictProxy[str]
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any
    chunked: bool
    tls: bool
    sni: str | None
    tcp_nodelay: bool
    received_at: float

    @property
    def model(self) -> str | None:
        """The body's ``model`` field, if the body was a JSON object naming one."""
        if isinstance(self.json, dict) and isinstance(self.json.get("model"), str):
            return str(self.json["model"])
        return None


class RequestPredicate(Protocol):
    """Selects the requests :meth:`RequestLog.wait_for` counts."""

    def __call__(self, request: ReceivedRequest, /) -> bool: ...


class RequestLog:
    """Thread-safe, append-only (until cleared) list of received requests."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._requests: list[ReceivedRequest] = []

    def append(self, request: ReceivedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def snapshot(self) -> list[ReceivedRequest]:
        with self._changed:
            return list(self._requests)

    def clear(self) -> None:
        with self._changed:
            self._requests.clear()

    def wait_for(
        self, count: int, *, timeout: float, where: RequestPredicate | None = None
    ) -> list[ReceivedRequest]:
        """Block until at least ``count`` matching requests were received; return all matching ones.

        Raises TimeoutError (saying how many arrived) when the deadline passes first.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [r for r in self._requests if where is None or where(r)]
                remaining = deadline - time.monotonic()
                if len(matching) >= count:
                    return matching
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} matching requests within {timeout}s, got {len(matching)}"
                    )
                self._changed.wait(remaining)
