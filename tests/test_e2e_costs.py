"""CEL costs computed inside a real Envoy configured only by our control plane: the OpenAI SDK asks an
Anthropic backend (transcoded in its hop, reporting cache reads and writes) and an OpenAI one, unary and
streamed, and each cost reaches the dynamic metadata under its key, read back through the per-route cost
counter Envoy's stats access logger keeps from ``%DYNAMIC_METADATA(io.envoy.ai_gateway:KEY)%``. A cost CEL
refuses is reported on its field and the route serves; a cost that fails at run time is not published, the
others are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from controlplane.devtools.fake_backend import FakeBackend, HoldStream, Normal
from controlplane.devtools.fake_providers import FakeProvider
from controlplane.devtools.stack import LocalStack
from controlplane.gatewayapi.cel_costs import CelCostError, evaluate, parse_cost
from tests.e2e import envoy_samples, openai_client
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

MANIFESTS = Path(__file__).parent / "testdata" / "e2e" / "costs.yaml"
GATEWAY = 10097
USAGE = {
    "input_tokens": 11,
    "output_tokens": 7,
    "cache_read_input_tokens": 3,
    "cache_creation_input_tokens": 5,
}
"""What the Anthropic fake reports; Envoy's transcoder counts the cache reads and writes into the input."""
COSTS: dict[str, str | None] = {
    cost["metadataKey"]: cost.get("cel")
    for document in yaml.safe_load_all(MANIFESTS.read_text())
    if document["kind"] == "AIGatewayRoute"
    for cost in document["spec"]["llmRequestCosts"]
}
"""Every cost of the route by key: its CEL, None for a count type."""
WORKED = ("weighted", "cache_aware", "cache_write", "halved", "output_over_input")
"""The costs the first tests work out by hand; the rest are CEL's semantics, checked by the last one."""
ROUTES = {
    "claude-cost": "route/default/costs/rule/0/match/0",
    "gpt-cost": "route/default/costs/rule/1/match/0",
}


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeProvider]:
    with FakeProvider(api="anthropic", name="anthropic", anthropic_usage=USAGE) as provider:
        yield provider


@pytest.fixture(scope="module")
def openai_backend() -> Iterator[FakeBackend]:
    backend = FakeBackend(name="openai", model="gpt-cost")
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, anthropic: FakeProvider, openai_backend: FakeBackend
) -> Iterator[LocalStack]:
    pinned = {18401: anthropic.port, 18402: openai_backend.port}
    workdir = tmp_path_factory.mktemp("costs")
    with LocalStack(
        MANIFESTS, port_map=pinned, move_ports=True, workdir=workdir, fake_backends=False
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Iterator[openai.OpenAI]:
    with openai_client(stack, GATEWAY, model="gpt-cost") as sdk:
        yield sdk


def _counted(stack: LocalStack, model: str) -> dict[str, float]:
    """What each cost counter of ``model``'s route holds (absent: never published)."""
    samples = envoy_samples(stack, "ai_gateway_request_cost")
    route = ROUTES[model]
    return {
        key: samples[labels] for key in COSTS if (labels := f'{{cost="{key}",route="{route}"}}') in samples
    }


def _added(
    before: dict[str, float], after: dict[str, float], keys: Iterable[str] = WORKED
) -> dict[str, float]:
    """What ``keys``' counters gained (those that gained anything)."""
    return {key: after[key] - before.get(key, 0) for key in keys if after.get(key, 0) != before.get(key, 0)}


def _ask(client: openai.OpenAI, model: str, *, stream: bool) -> None:
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
    if not stream:
        client.chat.completions.create(model=model, messages=messages)
        return
    chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True))
    assert len(chunks) > 2, "the stream arrives in pieces"
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
def test_cel_costs_of_an_anthropic_answer_are_computed_in_envoy(
    client: openai.OpenAI, stack: LocalStack, *, stream: bool
) -> None:
    before = _counted(stack, "claude-cost")
    _ask(client, "claude-cost", stream=stream)
    input_tokens = sum(USAGE.values()) - USAGE["output_tokens"]
    expected = {
        # model == 'claude-cost': input_tokens + output_tokens * 3u
        "weighted": input_tokens + USAGE["output_tokens"] * 3,
        # uncached input + a tenth of the cache reads (integer division) + twice the cache writes + output
        "cache_aware": USAGE["input_tokens"] + 3 // 10 + 5 * 2 + USAGE["output_tokens"],
        "cache_write": USAGE["cache_creation_input_tokens"],
        # output_over_input: 7 - 19 goes below zero in a uint, so it is not published.
    }
    wait_until(lambda: _added(before, _counted(stack, "claude-cost")) == expected, timeout=15)


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
def test_cel_costs_of_an_openai_answer_read_its_model_and_counts(
    client: openai.OpenAI, stack: LocalStack, openai_backend: FakeBackend, *, stream: bool
) -> None:
    before = _counted(stack, "gpt-cost")
    _ask(client, "gpt-cost", stream=stream)
    # The fake counts the prompt's words and answers in three pieces, one token each.
    prompt, completion = 1, 3
    expected = {
        "weighted": prompt + completion,  # another model: total_tokens
        "cache_aware": prompt + completion,  # no cache counts: zero
        "output_over_input": completion - prompt,
    }
    wait_until(lambda: _added(before, _counted(stack, "gpt-cost")) == expected, timeout=15)


def test_a_cel_cost_cel_refuses_is_reported_on_its_field_and_the_route_serves(
    client: openai.OpenAI, stack: LocalStack
) -> None:
    statuses = httpx.get(f"http://127.0.0.1:{stack.admin_port}/status", timeout=10).json()["objects"]
    (route,) = [status for status in statuses if status["kind"] == "AIGatewayRoute"]
    assert "spec.llmRequestCosts[3].cel: no '*' between uint and double" in json.dumps(route)
    reply = client.chat.completions.create(model="gpt-cost", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "openai,gpt-cost,gpt-cost"
    assert not any('cost="halved"' in labels for labels in envoy_samples(stack, "ai_gateway_request_cost"))


@pytest.mark.parametrize("model", ["claude-cost", "gpt-cost"])
def test_envoy_computes_what_the_translator_evaluates(
    client: openai.OpenAI, stack: LocalStack, model: str
) -> None:
    """Every CEL cost of the route, Lua in Envoy against the translator's evaluation of the same counts: a
    value where it has one, nothing where it fails (a uint below zero, a division by zero, a negative int)."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )
    assert not any(name.startswith("x-ai-xds") for name in raw.headers), "the backend's name stays inside"
    reply = raw.parse()
    assert reply.usage is not None
    cached = reply.usage.prompt_tokens_details.cached_tokens if reply.usage.prompt_tokens_details else None
    values: dict[str, int | str] = {
        "model": model,
        "route_name": "default/costs",
        "backend": "anthropic.default" if model == "claude-cost" else "openai.default",
        "input_tokens": reply.usage.prompt_tokens,
        "output_tokens": reply.usage.completion_tokens,
        "total_tokens": reply.usage.total_tokens,
        "cached_input_tokens": cached or 0,
        "cache_creation_input_tokens": USAGE["cache_creation_input_tokens"] if model == "claude-cost" else 0,
        "reasoning_tokens": 0,
    }
    expected = {}
    for key, cel in COSTS.items():
        try:
            expected[key] = evaluate(parse_cost(cel), values) if cel is not None else None
        except CelCostError:
            continue
    counted = {key for key in COSTS if COSTS[key] is not None}
    expected = {key: value for key, value in expected.items() if key in counted and value}
    assert {"truncated", "remainder", "logic", "reasoning"} <= set(expected), expected
    assert expected["per_route"] == 5
    assert expected["per_backend"] == (100 if model == "claude-cost" else 10)
    before = _counted(stack, model)
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
    wait_until(lambda: _added(before, _counted(stack, model), counted) == expected, timeout=15)


@contextmanager
def _held_stream(stack: LocalStack, backend: FakeBackend, hold: HoldStream) -> Iterator[httpx.Response]:
    """A streamed chat completion for ``gpt-cost`` while ``backend`` holds it as ``hold`` says; released and
    the backend back to normal at the end, whatever happened."""
    backend.set_mode(hold)
    body = {"model": "gpt-cost", "messages": [{"role": "user", "content": "hello"}], "stream": True}
    try:
        with (
            httpx.Client(timeout=30) as http,
            http.stream("POST", stack.url(GATEWAY, "/v1/chat/completions"), json=body) as reply,
        ):
            assert reply.status_code == 200
            yield reply
    finally:
        hold.release.set()
        backend.set_mode(Normal())


def test_the_costs_filter_holds_no_stream_back(
    stack: LocalStack, openai_backend: FakeBackend, client: openai.OpenAI
) -> None:
    """The Lua walks the body's chunks as they pass: the first event reaches the client while the backend
    holds the rest, and the cost is still computed at the end."""
    before = _counted(stack, "gpt-cost")
    hold = HoldStream()
    with _held_stream(stack, openai_backend, hold) as reply:
        lines = (line for line in reply.iter_lines() if line.startswith("data: "))
        first = json.loads(next(lines).removeprefix("data: "))
        assert not hold.release.is_set()
        assert first["choices"][0]["delta"]["role"] == "assistant"
        hold.release.set()
        rest = list(lines)
    assert rest[-1] == "data: [DONE]"
    wait_until(lambda: _added(before, _counted(stack, "gpt-cost")).get("weighted") == 4, timeout=15)


def test_a_stream_its_client_leaves_at_done_is_costed_before_it_ends(
    stack: LocalStack, openai_backend: FakeBackend, client: openai.OpenAI
) -> None:
    """A client may close its connection once it has ``[DONE]`` (the OpenAI SDK does); a backend ending its
    stream after that leaves Envoy resetting the stream before its end reaches the Lua, so the costs are
    worked out on ``[DONE]``: counted while the backend still holds the stream open."""
    before = _counted(stack, "gpt-cost")
    hold = HoldStream(after_done=True)
    with _held_stream(stack, openai_backend, hold) as reply:
        assert "data: [DONE]" in reply.iter_lines()
        reply.close()  # with the body unfinished: httpx drops the connection
        wait_until(lambda: _added(before, _counted(stack, "gpt-cost")).get("weighted") == 4, timeout=15)
        assert not hold.release.is_set()
