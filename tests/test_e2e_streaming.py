"""A streamed (SSE) chat completion through Envoy's model routing, override and credential filters.

The backend holds its answer after the first event until the test lets it go: the client reading that event
meanwhile proves no filter buffers the response. A primary that fails before its first byte (an error status,
a reset, a refused connection) is retried on the next priority, which streams the answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.devtools.fake_backend import HoldStream, Mode, Refuse, Reset, Status
from controlplane.devtools.stack import LocalStack
from tests.e2e import answered_by, reset_backends, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

KEYS = Path(__file__).parent / "data" / "e2e_keys"
STREAMED: dict[str, Any] = {
    "model": "chat",
    "stream": True,
    "messages": [{"role": "user", "content": "stream to me"}],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_stack(KEYS, tmp_path_factory.mktemp("streaming")) as running:
        url = running.url(10090)
        wait_until(lambda: answered_by(httpx.post(url, json={**STREAMED, "stream": False}, timeout=5)))
        yield running


@pytest.fixture
def backends(stack: LocalStack) -> Iterator[LocalStack]:
    """The stack with its backends answering and nothing recorded, and so again after the test."""
    reset_backends(stack)
    yield stack
    reset_backends(stack)


def _events(lines: Iterator[str]) -> Iterator[str]:
    return (line.removeprefix("data: ") for line in lines if line.startswith("data: "))


def _content(events: list[str]) -> str:
    chunks = [json.loads(event) for event in events if event != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def test_the_first_chunk_arrives_while_the_backend_still_holds_the_rest(backends: LocalStack) -> None:
    openai = backends.backends["openai-host"]
    # A failover test before this one may have had the primary ejected for a few seconds.
    unstreamed = {**STREAMED, "stream": False}
    wait_until(
        lambda: answered_by(httpx.post(backends.url(10090), json=unstreamed, timeout=5)) == "openai-host",
        timeout=30,
        message="the primary to answer",
    )
    openai.clear()
    hold = HoldStream()
    openai.set_mode(hold)
    try:
        with (
            httpx.Client(timeout=30) as client,
            client.stream("POST", backends.url(10090), json=STREAMED) as reply,
        ):
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            events = _events(reply.iter_lines())
            first = json.loads(next(events))
            assert not hold.release.is_set()
            assert first["choices"][0]["delta"]["role"] == "assistant"
            hold.release.set()
            rest = list(events)
    finally:
        hold.release.set()
    assert rest[-1] == "[DONE]"
    assert _content([json.dumps(first), *rest]) == "openai-host,openai-host,openai-model"
    (received,) = openai.received
    assert received.model == "openai-model", "the override reached the backend"
    assert received.headers["authorization"] == "Bearer sk-e2e-openai-7d1f0c"


@pytest.mark.parametrize("failure", [Status(503), Reset(), Refuse()], ids=["503", "reset", "refused"])
def test_a_primary_failing_before_its_first_byte_streams_from_the_next_priority(
    backends: LocalStack, failure: Mode
) -> None:
    openai, azure = backends.backends["openai-host"], backends.backends["azure-host"]
    openai.set_mode(failure)
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", backends.url(10090), json=STREAMED) as reply,
    ):
        assert reply.status_code == 200
        events = list(_events(reply.iter_lines()))
    assert events[-1] == "[DONE]"
    assert _content(events) == "azure-host,azure-host,azure-model@50%"
    (received,) = azure.received
    assert received.model == "azure-model@50%", "a '%' in the override arrives as written"
    assert received.json is not None
    assert received.json["stream"] is True
    assert received.headers["api-key"] == "sk-e2e-azure-93ce4a"
    assert "authorization" not in received.headers, "the primary's credential stays with the primary"
