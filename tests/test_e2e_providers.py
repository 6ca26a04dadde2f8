"""Hosted providers through a real Envoy configured only by our control plane: the OpenAI Python SDK talks to
a backend whose schema is Anthropic, and a fake that accepts only Anthropic's Messages API answers (path,
``x-api-key``, ``anthropic-version``, required fields, its JSON reply and its SSE event stream). Envoy's
transcoder converts both ways in the backend's hop, so a failover from an OpenAI backend to an Anthropic one
is converted on the retry only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from controlplane.devtools.fake_backend import FakeBackend
from controlplane.devtools.fake_providers import ANTHROPIC_USAGE, FakeProvider
from controlplane.devtools.stack import LocalStack
from tests.e2e import envoy_samples, openai_client
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

MANIFESTS = Path(__file__).parent / "testdata" / "e2e" / "providers.yaml"
GATEWAY = 10091
ANTHROPIC_PORT = 18301
OPENAI_PORT = 18303
KEY = "sk-e2e-anthropic-provider"


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeProvider]:
    with FakeProvider(api="anthropic", name="anthropic") as provider:
        yield provider


@pytest.fixture(scope="module")
def openai_backend() -> Iterator[FakeBackend]:
    backend = FakeBackend(name="openai", model="gpt-e2e")
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, anthropic: FakeProvider, openai_backend: FakeBackend
) -> Iterator[LocalStack]:
    # The fakes bound their own ports; every other port of the manifests is moved to one reserved for it
    # (the unreachable backend's stays unbound).
    pinned = {ANTHROPIC_PORT: anthropic.port, OPENAI_PORT: openai_backend.port}
    workdir = tmp_path_factory.mktemp("providers")
    with LocalStack(
        MANIFESTS, port_map=pinned, move_ports=True, workdir=workdir, fake_backends=False
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack, anthropic: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai_client(stack, GATEWAY, model="claude-e2e") as sdk:
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


def test_token_costs_are_published_per_response_and_counted_per_route(
    client: openai.OpenAI, stack: LocalStack
) -> None:
    before = envoy_samples(stack, "ai_gateway_request_cost")
    client.chat.completions.create(model="claude-e2e", messages=[{"role": "user", "content": "hello"}])
    stream = client.chat.completions.create(
        model="claude-e2e", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    assert list(stream)
    route = 'route="route/default/providers/rule/0/match/0"'
    per_response = {
        "llm_input_token": ANTHROPIC_USAGE["input_tokens"],
        "llm_output_token": ANTHROPIC_USAGE["output_tokens"],
        "llm_total_token": sum(ANTHROPIC_USAGE.values()),
    }

    def counted() -> dict[str, float]:
        after = envoy_samples(stack, "ai_gateway_request_cost")
        return {
            key: after.get(f'{{cost="{key}",{route}}}', 0) - before.get(f'{{cost="{key}",{route}}}', 0)
            for key in per_response
        }

    # One JSON response and one stream, each publishing its usage under the route's keys.
    wait_until(lambda: counted() == {key: 2 * value for key, value in per_response.items()}, timeout=15)
    assert not any("llm_cel" in labels for labels in envoy_samples(stack, "ai_gateway_request_cost"))


def test_token_usage_histogram_per_route_backend_and_model(client: openai.OpenAI, stack: LocalStack) -> None:
    client.chat.completions.create(model="claude-e2e", messages=[{"role": "user", "content": "hello"}])

    def sums() -> dict[str, float]:
        return {
            labels: value
            for labels, value in envoy_samples(stack, "ai_gateway_gen_ai_client_token_usage_sum").items()
            if 'gen_ai_request_model="claude-e2e"' in labels
        }

    # The access log records the usage once the response is done; each read of the page flushes histograms.
    wait_until(lambda: len(sums()) == 2, timeout=30)
    by_type = {("input" if 'gen_ai_token_type="input"' in labels else "output"): labels for labels in sums()}
    assert set(by_type) == {"input", "output"}
    assert 'route="route/default/providers/rule/0/match/0"' in by_type["input"]
    # The backend is the hop (one per backendRef) that served.
    assert 'backend="envoy://route/default/providers/rule/0/backend/0/"' in by_type["output"]


def test_a_cel_cost_cel_refuses_is_reported_on_its_field(stack: LocalStack) -> None:
    statuses = httpx.get(f"http://127.0.0.1:{stack.admin_port}/status", timeout=10).json()["objects"]
    (route,) = [s for s in statuses if s["kind"] == "AIGatewayRoute"]
    assert "spec.llmRequestCosts[3].cel: no '*' between uint and int" in json.dumps(route)


def test_a_stream_to_an_openai_backend_is_asked_for_its_usage(
    client: openai.OpenAI, openai_backend: FakeBackend, stack: LocalStack
) -> None:
    openai_backend.clear()
    stream = client.chat.completions.create(
        model="gpt-e2e", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    chunks = list(stream)
    assert [chunk.usage for chunk in chunks if chunk.usage is not None], "the last chunk carries the usage"
    client.chat.completions.create(model="gpt-e2e", messages=[{"role": "user", "content": "hello"}])
    streamed, unary = (request.json for request in openai_backend.received)
    assert streamed is not None
    assert unary is not None
    assert streamed["stream_options"] == {"include_usage": True}
    assert "stream_options" not in unary, "OpenAI refuses stream_options without stream"
    assert "x-ai-eg-stream" not in openai_backend.received[0].headers
    total = '{cost="llm_total_token",route="route/default/providers/rule/1/match/0"}'
    wait_until(lambda: envoy_samples(stack, "ai_gateway_request_cost").get(total, 0) > 0, timeout=15)


def test_a_client_of_anthropics_own_api_goes_through_as_sent(
    client: openai.OpenAI, stack: LocalStack, anthropic: FakeProvider
) -> None:
    """Upstream's Anthropic examples: ``/anthropic/v1/messages`` with Anthropic's request, unary and
    streamed, reaches ``/v1/messages`` untouched (the client's version header kept) and answers as is."""
    anthropic.received.clear()
    url = stack.url(GATEWAY, "/anthropic/v1/messages")
    request = {"model": "claude-e2e", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}
    headers = {"anthropic-version": "2023-01-01", "x-api-key": "client-key"}
    with httpx.Client(timeout=10, headers=headers) as http:
        reply = http.post(url, json=request)
        assert reply.status_code == 200, reply.text
        assert reply.json()["type"] == "message"
        assert reply.json()["content"] == [{"type": "text", "text": "anthropic,claude-e2e,hello"}]
        with http.stream("POST", url, json={**request, "stream": True}) as streamed:
            events = [line for line in streamed.iter_lines() if line.startswith("event: ")]
    assert events[0] == "event: message_start"
    assert events[-1] == "event: message_stop"
    unary, stream = anthropic.received
    for received in (unary, stream):
        assert received.path == "/v1/messages"
        assert received.headers["anthropic-version"] == "2023-01-01", "the client's version wins"
        assert received.headers["x-api-key"] == KEY
    assert unary.body == request
    assert stream.body == {**request, "stream": True}, "no stream_options in Anthropic's API"


def test_the_anthropic_key_reaches_only_the_provider(
    client: openai.OpenAI, stack: LocalStack, anthropic: FakeProvider
) -> None:
    """The transcoded and the native requests carried the key (above); nothing else holds it."""
    reply = client.chat.completions.with_raw_response.create(
        model="claude-e2e", messages=[{"role": "user", "content": "hello"}]
    )
    assert anthropic.received[-1].headers["x-api-key"] == KEY
    envoy = stack.envoy
    assert envoy is not None
    places = {
        "control plane log": stack.control_plane_log(),
        "envoy log": envoy.log_path.read_text(encoding="utf-8", errors="replace"),
        "envoy config dump": envoy.admin("/config_dump", params={"include_eds": "true"}),
        "envoy prometheus stats": envoy.admin("/stats/prometheus"),
        "control plane status": httpx.get(f"http://127.0.0.1:{stack.admin_port}/status", timeout=10).text,
        "client answer": f"{reply.headers}\n{reply.text}",
    }
    for where, text in places.items():
        assert text, f"nothing read from the {where}"
        assert KEY not in text, f"the Anthropic key leaked into the {where}"
