"""Hosted providers through a real Envoy configured only by our control plane: the OpenAI Python SDK talks to
a backend whose schema is Anthropic, and a fake that accepts only Anthropic's Messages API answers (path,
``x-api-key``, ``anthropic-version``, required fields, its JSON reply and its SSE event stream). Envoy's
transcoder converts both ways in the backend's hop, so a failover from an OpenAI backend to an Anthropic one
is converted on the retry only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from controlplane.devtools.fake_providers import ANTHROPIC_USAGE, FakeProvider
from controlplane.devtools.stack import LocalStack, free_port_map
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

MANIFESTS = Path(__file__).parent / "testdata" / "e2e" / "providers.yaml"
GATEWAY = 10091
ANTHROPIC_PORT = 18301
KEY = "sk-e2e-anthropic-provider"


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeProvider]:
    with FakeProvider(api="anthropic", name="anthropic") as provider:
        yield provider


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, anthropic: FakeProvider) -> Iterator[LocalStack]:
    # The fake bound its own port; every other port of the manifests gets a free one (the unreachable
    # backend's stays unbound).
    ports = {**free_port_map(MANIFESTS), ANTHROPIC_PORT: anthropic.port}
    workdir = tmp_path_factory.mktemp("providers")
    with LocalStack(MANIFESTS, port_map=ports, workdir=workdir, fake_backends=False) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack, anthropic: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=stack.url(GATEWAY, "/v1"), api_key="client-key", max_retries=0, timeout=10
    ) as sdk:

        def served() -> bool:
            try:
                sdk.chat.completions.create(model="claude-e2e", messages=[{"role": "user", "content": "up?"}])
            except openai.APIError:
                return False
            return True

        wait_until(served, timeout=30)
        anthropic.received.clear()
        yield sdk


def test_chat_completion_is_served_by_anthropic_messages(
    client: openai.OpenAI, anthropic: FakeProvider
) -> None:
    completion = client.chat.completions.create(
        model="claude-e2e",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        max_tokens=50,
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "anthropic,claude-e2e,hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
        completion.usage.total_tokens,
    ) == (
        ANTHROPIC_USAGE["input_tokens"],
        ANTHROPIC_USAGE["output_tokens"],
        ANTHROPIC_USAGE["input_tokens"] + ANTHROPIC_USAGE["output_tokens"],
    )
    (received,) = anthropic.received
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == KEY, "the policy's key replaces the client's"
    assert "authorization" not in received.headers or KEY not in received.headers["authorization"]
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert received.body["system"] == "be brief"
    assert received.body["messages"] == [{"role": "user", "content": "hello"}]
    assert received.body["max_tokens"] == 50


def test_streamed_completion_is_converted_from_anthropic_events(
    client: openai.OpenAI, anthropic: FakeProvider
) -> None:
    anthropic.received.clear()
    stream = client.chat.completions.create(
        model="claude-e2e", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    chunks = list(stream)
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert len([piece for piece in pieces if piece]) > 1, "the answer arrives in several chunks"
    assert "".join(pieces) == "anthropic,claude-e2e,hello"
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    finished = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finished[-1] == "stop"
    usage = [chunk.usage for chunk in chunks if chunk.usage is not None]
    assert usage, "the last chunk carries the usage"
    assert usage[-1].total_tokens == sum(ANTHROPIC_USAGE.values())
    (received,) = anthropic.received
    assert received.body["stream"] is True
    assert received.path == "/v1/messages"


def test_failover_from_an_openai_backend_is_transcoded_on_the_retry(
    client: openai.OpenAI, anthropic: FakeProvider
) -> None:
    anthropic.received.clear()
    completion = client.chat.completions.create(
        model="fallback-e2e", messages=[{"role": "user", "content": "hello"}]
    )
    assert completion.choices[0].message.content == "anthropic,claude-fallback,hello"
    (received,) = anthropic.received
    assert received.body["model"] == "claude-fallback", "the retry carries the Anthropic backend's model"
