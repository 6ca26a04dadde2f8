"""The status writer's rules for failed writes, against a fake API: which failure stops a batch, what is
written again after the back-off, and when the back-off starts over.

A write whose request never left (the login or the connection failed) stops its batch: the next writes would
fail alike. A write that went out and failed (a slow admission webhook's read timeout) must not hold up the
other objects' writes, nor be retried in a loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import structlog

from controlplane.gatewayapi import Condition, ObjectStatus
from controlplane.resources.problems import ObjectKey
from controlplane.sources.kubernetes.api import ApiError, ApiResource
from controlplane.sources.kubernetes.reflector import Backoff
from controlplane.sources.kubernetes.status import Observed, StatusWriter
from tests.polling import wait_until

_ROUTES = ApiResource(
    group="aigateway.envoyproxy.io", version="v1alpha1", plural="aigatewayroutes", kind="AIGatewayRoute"
)
_KEYS = [ObjectKey("aigateway.envoyproxy.io", "AIGatewayRoute", "ns", f"route-{i}") for i in range(3)]
_OBSERVED = {key: Observed(resource=_ROUTES, generation=1, conditions=()) for key in _KEYS}


class HeldBackoff(Backoff):
    """Says when a wait is asked for, and answers 0 s once the test lets it go; records its calls in order."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = threading.Semaphore(0)
        self.go = threading.Event()
        self.calls: list[str] = []

    def next_delay(self) -> float:
        self.calls.append("next_delay")
        self.asked.release()
        self.go.wait(timeout=30)
        return 0.0

    def reset(self) -> None:
        self.calls.append("reset")
        super().reset()


class _FakeApi:
    """Records each status PATCH as (object name, reason of its first condition); ``answer`` runs inside
    each, with the call's index and the object's name, and may raise."""

    def __init__(self, answer: Callable[[int, str], None] = lambda index, name: None) -> None:
        self.answer = answer
        self.patched: list[tuple[str, str]] = []

    def patch_status(
        self, resource: ApiResource, *, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        index = len(self.patched)
        self.patched.append((name, status["conditions"][0]["reason"]))
        self.answer(index, name)


def _verdicts(reason: str, **others: str) -> dict[ObjectKey, ObjectStatus]:
    """Every key with an Accepted condition giving ``reason``, or ``others[name]`` for the names there."""
    reasons = {key: others.get(key.name, reason) for key in _KEYS}
    return {
        key: ObjectStatus(key, (Condition("Accepted", said == "Accepted", said, ""),))
        for key, said in reasons.items()
    }


_NOT_SENT = ApiError(0, "PATCH: connection refused", sent=False)
_TIMED_OUT = ApiError(0, "PATCH: read timed out")


def test_a_write_that_went_out_and_failed_does_not_stop_the_others() -> None:
    def route_0_times_out(index: int, name: str) -> None:
        if name == "route-0":
            raise _TIMED_OUT

    api = _FakeApi(route_0_times_out)
    backoff = HeldBackoff()
    backoff.go.set()
    writer = StatusWriter(api, may_write=lambda: True, backoff=backoff)
    with structlog.testing.capture_logs() as logged:
        writer.start()
        try:
            writer.submit(_verdicts("Accepted"), _OBSERVED)
            wait_until(lambda: writer.writes == 2, message="route-1 and route-2 to be written")
        finally:
            writer.stop()
    assert [name for name, _ in api.patched] == ["route-0", "route-1", "route-2"]
    assert "next_delay" not in backoff.calls
    failed = [entry for entry in logged if entry["event"] == "status write failed"]
    assert [entry["object"] for entry in failed] == [str(_KEYS[0])]


@pytest.mark.parametrize("newer", ["none", "during the back-off", "during the failed write"])
def test_a_batch_stopped_by_a_request_not_sent_is_written_after_the_back_off_unless_newer_verdicts_came(
    newer: str,
) -> None:
    """route-1's write fails unsent: the batch stops there and is tried again once the back-off ends, from
    route-1 on (route-0's write stays written), or newer verdicts submitted meanwhile are written instead."""
    newer_verdicts = _verdicts("Accepted", **{"route-1": "Invalid"})  # route-0's verdict is the same

    def second_write_not_sent(index: int, name: str) -> None:
        if index == 1:
            if newer == "during the failed write":
                writer.submit(newer_verdicts, _OBSERVED)
            raise _NOT_SENT

    api = _FakeApi(second_write_not_sent)
    backoff = HeldBackoff()
    writer = StatusWriter(api, may_write=lambda: True, backoff=backoff)
    writer.start()
    try:
        writer.submit(_verdicts("Accepted"), _OBSERVED)
        assert backoff.asked.acquire(timeout=30)
        assert api.patched == [("route-0", "Accepted"), ("route-1", "Accepted")]
        if newer == "during the back-off":
            writer.submit(newer_verdicts, _OBSERVED)
        backoff.go.set()
        wait_until(lambda: writer.writes == 3, message="route-1 and route-2 to be written")
    finally:
        writer.stop()
    retried = "Accepted" if newer == "none" else "Invalid"
    assert api.patched == [
        ("route-0", "Accepted"),
        ("route-1", "Accepted"),
        ("route-1", retried),
        ("route-2", "Accepted"),
    ]


@pytest.mark.parametrize("retry", ["may not write", "gets no answer"])
def test_the_back_off_starts_over_only_once_a_write_is_answered(retry: str) -> None:
    """After an unsent write, a batch that sent nothing (the replica no longer leads, or nothing differed)
    or got no answer says nothing of the API server being reachable: the back-off keeps growing."""
    route_0 = {_KEYS[0]: _OBSERVED[_KEYS[0]]}
    retried = threading.Event()
    may_write_answers = iter([True, retry != "may not write", True])

    def may_write() -> bool:
        answer = next(may_write_answers)
        if not answer:
            retried.set()
        return answer

    def unsent_then_unanswered(index: int, name: str) -> None:
        if index == 0:
            raise _NOT_SENT
        if index == 1 and retry == "gets no answer":
            retried.set()
            raise _TIMED_OUT

    backoff = HeldBackoff()
    backoff.go.set()
    writer = StatusWriter(_FakeApi(unsent_then_unanswered), may_write=may_write, backoff=backoff)
    writer.start()
    try:
        writer.submit(_verdicts("Accepted"), route_0)
        assert retried.wait(timeout=30)
        writer.submit(_verdicts("Invalid"), route_0)  # taken after the retry: it has begun
        wait_until(lambda: writer.writes == 1, message="the newer verdict to be written")
    finally:
        writer.stop()
    assert backoff.calls == ["next_delay", "reset"]
