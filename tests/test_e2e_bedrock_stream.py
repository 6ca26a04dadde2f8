"""Claude on Bedrock streamed through a real Envoy configured only by our control plane.

Bedrock's ``invoke-with-response-stream`` answers in AWS event-stream frames (the fake sends them as Bedrock
does, CRCs included; the main one splits each frame across chunks); the hop's Lua filter turns them into
Anthropic's server-sent events, which Envoy's transcoder converts into OpenAI's chunks. The OpenAI SDK
streams with the usage chunk (the route's token cost counts it); a client of Anthropic's own API gets
Anthropic's events; a failover from an OpenAI backend streams from Bedrock on the retry; an event larger
than many chunks arrives whole; an exception Bedrock sends mid-stream, or a frame whose CRC is wrong, ends
the stream with an error event.
Every attempt is signed (SigV4, checked by botocore's signer) and the key shows nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from controlplane import ir
from controlplane.devtools.fake_providers import ANTHROPIC_USAGE, FakeProvider, ProviderRequest
from controlplane.devtools.stack import LocalStack
from controlplane.xds.translator.filters.bedrock_stream import LUA_SOURCE
from tests.aws_sigv4 import AwsKey, ReceivedRequest, verify_sigv4
from tests.e2e import openai_client
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

MANIFESTS = Path(__file__).parent / "testdata" / "e2e" / "bedrock-stream.yaml"
GATEWAY = 10095
BEDROCK_PORT, THROTTLED_PORT, CORRUPT_PORT = 18311, 18312, 18314
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
FALLBACK_MODEL = "anthropic.claude-sonnet-4-20250514-v1:0"
KEY = AwsKey(access_key_id="AKIDBEDROCKSTREAM", secret_access_key="bedrock-stream-e2e-secret")
HELLO: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeProvider]:
    with FakeProvider(api="bedrock-anthropic", name="bedrock", bedrock_split_frames=True) as provider:
        yield provider


@pytest.fixture(scope="module")
def throttled() -> Iterator[FakeProvider]:
    with FakeProvider(
        api="bedrock-anthropic", name="throttled", bedrock_exception="throttlingException"
    ) as provider:
        yield provider


@pytest.fixture(scope="module")
def corrupt() -> Iterator[FakeProvider]:
    with FakeProvider(api="bedrock-anthropic", name="corrupt", bedrock_bad_crc=True) as provider:
        yield provider


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    bedrock: FakeProvider,
    throttled: FakeProvider,
    corrupt: FakeProvider,
) -> Iterator[LocalStack]:
    pinned = {BEDROCK_PORT: bedrock.port, THROTTLED_PORT: throttled.port, CORRUPT_PORT: corrupt.port}
    with LocalStack(
        MANIFESTS,
        port_map=pinned,
        move_ports=True,
        workdir=tmp_path_factory.mktemp("bedrock-stream"),
        fake_backends=False,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Iterator[openai.OpenAI]:
    with openai_client(stack, GATEWAY, model=MODEL) as sdk:
        yield sdk


def _assert_streamed_call(request: ProviderRequest, *, model: str) -> None:
    """What Bedrock's InvokeModelWithResponseStream takes: the model and method in the path, the Anthropic
    body without ``model`` or ``stream``, signed with the policy's key."""
    assert request.path == f"/model/{model}/invoke-with-response-stream"
    assert request.body["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in request.body
    assert "stream" not in request.body, "Bedrock refuses the key: its path names the method"
    assert "accept-encoding" not in request.headers, "frames come uncompressed (clients ask for gzip)"
    assert request.body["messages"] == HELLO
    signed = ReceivedRequest(
        method="POST", path=request.path, query={}, headers=request.headers, body=request.raw
    )
    verify_sigv4(signed, key=KEY, region="us-east-1", service="bedrock")


def _total_token_cost(stack: LocalStack) -> int:
    """The route's ``llm_total_token`` cost counter (the first rule), as Envoy counts it."""
    assert stack.envoy is not None
    name = "ai_gateway.request_cost.cost.llm_total_token.route.route/default/bedrock-stream/rule/0/match/0"
    return stack.envoy.stats(filter_regex="request_cost").get(name, 0)


def test_openai_stream_is_converted_from_event_stream_frames_with_its_usage(
    stack: LocalStack, client: openai.OpenAI, bedrock: FakeProvider
) -> None:
    bedrock.received.clear()
    costs_before = _total_token_cost(stack)
    stream = client.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert len([piece for piece in pieces if piece]) > 1, "the answer arrives in several chunks"
    assert "".join(pieces) == f"bedrock,{MODEL},hello"
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    usage = [chunk.usage for chunk in chunks if chunk.usage is not None]
    assert usage, "the usage chunk arrives"
    assert (usage[-1].prompt_tokens, usage[-1].completion_tokens, usage[-1].total_tokens) == (
        ANTHROPIC_USAGE["input_tokens"],
        ANTHROPIC_USAGE["output_tokens"],
        sum(ANTHROPIC_USAGE.values()),
    )
    # The access log counts the cost once the stream is done, after the client saw its end: poll.
    assert wait_until(lambda: _total_token_cost(stack) - costs_before == sum(ANTHROPIC_USAGE.values()))
    (received,) = bedrock.received
    _assert_streamed_call(received, model=MODEL)


def test_a_client_of_anthropics_own_api_gets_anthropics_events(
    stack: LocalStack, bedrock: FakeProvider
) -> None:
    bedrock.received.clear()
    request = {"model": MODEL, "max_tokens": 20, "messages": HELLO, "stream": True}
    url = stack.url(GATEWAY, ir.ANTHROPIC_CLIENT_PATH)
    with (
        httpx.Client(timeout=10, headers={"anthropic-version": "2023-06-01"}) as http,
        http.stream("POST", url, json=request) as answer,
    ):
        lines = list(answer.iter_lines())
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/event-stream"
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert names[0] == "message_start"
    assert names[-1] == "message_stop"
    assert names == [event["type"] for event in data], "each event is named after its data's type"
    assert "amazon-bedrock-invocationMetrics" in data[-1], "each event's JSON as Bedrock sent it"
    text = "".join(event["delta"]["text"] for event in data if event["type"] == "content_block_delta")
    assert text == f"bedrock,{MODEL},hello"
    (received,) = bedrock.received
    _assert_streamed_call(received, model=MODEL)


def test_a_streamed_failover_from_openai_streams_from_bedrock_on_the_retry(
    client: openai.OpenAI, bedrock: FakeProvider
) -> None:
    bedrock.received.clear()
    stream = client.chat.completions.create(model="fallback-e2e", messages=HELLO, stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces) == f"bedrock,{FALLBACK_MODEL},hello"
    (received,) = bedrock.received
    _assert_streamed_call(received, model=FALLBACK_MODEL)


def test_an_event_larger_than_many_chunks_arrives_whole(client: openai.OpenAI) -> None:
    """The fake echoes the question: a 300 KB text is one delta event, a ~400 KB frame (base64) that reaches
    Envoy in many reads."""
    long_text = "x" * 300_000
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": long_text}], stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces) == f"bedrock,{MODEL},{long_text}"


def _anthropic_events(stack: LocalStack, model: str) -> list[str]:
    """The non-blank lines of a stream to Anthropic's own API."""
    request = {"model": model, "max_tokens": 20, "messages": HELLO, "stream": True}
    with (
        httpx.Client(timeout=10, headers={"anthropic-version": "2023-06-01"}) as http,
        http.stream("POST", stack.url(GATEWAY, ir.ANTHROPIC_CLIENT_PATH), json=request) as answer,
    ):
        assert answer.status_code == 200
        return [line for line in answer.iter_lines() if line]


def test_an_exception_mid_stream_ends_the_stream_with_an_error_event(
    stack: LocalStack, client: openai.OpenAI, throttled: FakeProvider
) -> None:
    lines = _anthropic_events(stack, "throttled-e2e")
    assert lines[0] == "event: message_start"
    assert lines[-2] == "event: error", "Bedrock's exception ends Anthropic's events"
    assert json.loads(lines[-1].removeprefix("data: ")) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Bedrock throttlingException: try again"},
    }
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as failed:  # noqa: PT012 - the error arrives while iterating
        for chunk in client.chat.completions.create(model="throttled-e2e", messages=HELLO, stream=True):
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
    assert "".join(pieces) == "throttled", "what streamed before the exception reached the client"
    assert "Bedrock throttlingException: try again" in str(failed.value)
    assert len(throttled.received) == 2


def test_a_frame_whose_crc_is_wrong_ends_the_stream_with_an_error_event(
    stack: LocalStack, corrupt: FakeProvider
) -> None:
    lines = _anthropic_events(stack, "corrupt-e2e")
    assert lines[-2] == "event: error"
    assert json.loads(lines[-1].removeprefix("data: ")) == {
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "Bedrock's event stream is malformed: a message CRC mismatch",
        },
    }
    deltas = [line for line in lines if line == "event: content_block_delta"]
    assert len(deltas) == 1, "the frames before the bad one arrive, none after it"
    assert "event: message_stop" not in lines
    assert len(corrupt.received) == 1


def test_the_lua_source_is_the_packaged_constant_and_no_key_shows(
    stack: LocalStack, client: openai.OpenAI
) -> None:
    """The filter's source is the same text whatever the backend: nothing of a policy or a backend is ever
    written into it, and the key is in neither Envoy's configuration nor its log."""
    assert stack.envoy is not None
    dump = stack.envoy.admin("/config_dump")
    sources = [source["inline_string"] for source in _lua_sources(json.loads(dump))]
    assert len(sources) == 4, "one per AWSAnthropic hop: two rules' Bedrock, the throttled and corrupt ones"
    assert set(sources) == {LUA_SOURCE}
    for secret in (KEY.secret_access_key, KEY.access_key_id, MODEL, "bedrock-keys"):
        assert secret not in LUA_SOURCE
    log = stack.envoy.log_path.read_text(encoding="utf-8", errors="replace")
    assert [
        place for place, text in {"config dump": dump, "log": log}.items() if KEY.secret_access_key in text
    ] == []


def _lua_sources(node: object) -> Iterator[dict[str, str]]:
    """Every Lua ``source_codes`` entry anywhere in a config dump."""
    if isinstance(node, dict):
        if node.get("@type", "").endswith("filters.http.lua.v3.Lua"):
            yield from node.get("source_codes", {}).values()
        for value in node.values():
            yield from _lua_sources(value)
    elif isinstance(node, list):
        for value in node:
            yield from _lua_sources(value)
