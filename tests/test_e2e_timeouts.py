"""Rule timeouts through a real Envoy, as upstream means them: ``request`` bounds the whole request,
``backendRequest`` each attempt (one backend or a failover pair), ``streamIdleTimeout`` each attempt's
silence, mid-stream included. One stack serves the module; each test switches its backends' modes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.devtools.fake_backend import Normal, Slow, StallStream
from controlplane.devtools.stack import LocalStack
from tests.e2e import reset_backends, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

MANIFESTS = Path(__file__).parent / "testdata" / "e2e" / "parity.yaml"
GATEWAY = 10090
SLOWER_THAN_ANY_LIMIT = 4.0
"""How long a slow backend takes: longer than every timeout of the manifests (1 s), shorter than the
client's own timeout, so only Envoy can cut the request."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_stack(MANIFESTS, tmp_path_factory.mktemp("timeouts")) as running:
        wait_until(lambda: _chat(running, "gpt-parity").status_code == 200, timeout=30)
        yield running


@pytest.fixture
def fresh(stack: LocalStack) -> Iterator[LocalStack]:
    reset_backends(stack)
    yield stack
    reset_backends(stack)


def _chat(stack: LocalStack, model: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(stack.url(GATEWAY), json=body, timeout=SLOWER_THAN_ANY_LIMIT * 3)


def _assert_gateway_timeout(reply: httpx.Response) -> None:
    assert reply.status_code == 504, reply.text
    error = reply.json()["error"]
    assert error["type"] == "server_error"
    assert "timeout" in error["message"]


def test_backend_request_cuts_one_attempt_on_a_single_backend(fresh: LocalStack) -> None:
    fresh.backends["slow"].set_mode(Slow(SLOWER_THAN_ANY_LIMIT))
    _assert_gateway_timeout(_chat(fresh, "slow-single"))
    assert len(fresh.backends["slow"].received) == 1, "one backend: the timed-out attempt is not retried"


def test_request_timeout_cuts_the_request(fresh: LocalStack) -> None:
    fresh.backends["slow"].set_mode(Slow(SLOWER_THAN_ANY_LIMIT))
    _assert_gateway_timeout(_chat(fresh, "slow-request"))


def test_backend_request_timeout_fails_over_to_the_next_priority(fresh: LocalStack) -> None:
    fresh.backends["slow"].set_mode(Slow(SLOWER_THAN_ANY_LIMIT))
    reply = _chat(fresh, "slow-failover")
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"].startswith("normal,")
    assert len(fresh.backends["slow"].received) == 1


def test_a_stream_idle_longer_than_stream_idle_timeout_is_cut(fresh: LocalStack) -> None:
    stall = fresh.backends["stall"]
    stall.set_mode(Normal())
    whole: list[bytes] = []
    _read_stream(fresh, "stalling", into=whole)
    assert b"data: [DONE]" in b"".join(whole), "a stream that never pauses is not cut"
    stall.set_mode(StallStream(SLOWER_THAN_ANY_LIMIT))
    received: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError):
        _read_stream(fresh, "stalling", into=received)
    assert b"".join(received).startswith(b"data: "), "the first chunk arrived before the stall"
    assert b"[DONE]" not in b"".join(received)


def _read_stream(stack: LocalStack, model: str, *, into: list[bytes]) -> None:
    with httpx.stream(
        "POST",
        stack.url(GATEWAY),
        json={"model": model, "messages": [], "stream": True},
        timeout=SLOWER_THAN_ANY_LIMIT * 3,
    ) as reply:
        assert reply.status_code == 200
        into.extend(reply.iter_bytes())
