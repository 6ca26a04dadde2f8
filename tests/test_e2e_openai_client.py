"""The official ``openai`` Python SDK against a real Envoy configured only by our control plane: the model
list Envoy answers itself (kept up to date on every push), a chat completion, a streamed completion and an
error, as users' code sees them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest

from controlplane.devtools.stack import LocalStack
from tests.e2e import running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

MANIFESTS = Path(__file__).parent / "testdata" / "e2e" / "parity.yaml"
GATEWAY = 10090
ROUTE_CREATED = int(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
"""The AIGatewayRoute's creationTimestamp: ``created`` of models whose rule sets no modelsCreatedAt."""
DECLARED = ["gpt-parity", "gpt-parity-mini", "slow-single", "slow-request", "slow-failover", "stalling"]
"""Every Exact x-ai-eg-model match of the manifests, in order; the RegularExpression one is not a model."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_stack(MANIFESTS, tmp_path_factory.mktemp("openai")) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=stack.url(GATEWAY, "/v1"), api_key="unused", max_retries=0, timeout=10
    ) as sdk:
        wait_until(lambda: [model.id for model in sdk.models.list()] == DECLARED, timeout=30)
        yield sdk


def test_models_list_is_answered_by_envoy_from_the_routes(client: openai.OpenAI, stack: LocalStack) -> None:
    models = {model.id: model for model in client.models.list()}
    assert list(models) == DECLARED
    assert (models["gpt-parity"].owned_by, models["gpt-parity"].created) == (
        "acme",
        int(datetime(2024, 5, 21, 10, tzinfo=UTC).timestamp()),
    )
    assert (models["slow-single"].owned_by, models["slow-single"].created) == (
        "Envoy AI Gateway",
        ROUTE_CREATED,
    )
    assert {model.object for model in models.values()} == {"model"}
    assert not any(
        request.path.endswith("/models") for b in stack.backends.values() for request in b.received
    )


def test_models_list_follows_the_configuration(client: openai.OpenAI, stack: LocalStack) -> None:
    original = MANIFESTS.read_text(encoding="utf-8")
    added = original.replace(
        "value: gpt-parity-mini}]",
        "value: gpt-parity-mini}]\n    - headers: [{name: x-ai-eg-model, value: gpt-parity-new}]",
    )
    assert added != original
    try:
        stack.rewrite_config(MANIFESTS.name, added)
        wait_until(lambda: "gpt-parity-new" in [model.id for model in client.models.list()], timeout=30)
    finally:
        stack.rewrite_config(MANIFESTS.name, original)
    wait_until(lambda: [model.id for model in client.models.list()] == DECLARED, timeout=30)


def test_chat_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-parity", messages=[{"role": "user", "content": "hello"}]
    )
    assert completion.choices[0].message.content == "normal,normal,gpt-parity"


def test_streamed_chat_completion(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-parity-mini", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(pieces) > 1, "the answer arrives in several chunks"
    assert "".join(pieces) == "normal,normal,gpt-parity-mini"


def test_an_unknown_model_is_an_sdk_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 404
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert "No matching route found" in body["message"]


def test_a_json_body_that_does_not_parse_gets_400_from_envoy(stack: LocalStack) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8"):
        reply = httpx.post(
            stack.url(GATEWAY),
            content=b'{"model": "gpt-parity", "messages": [',
            headers={"content-type": content_type},
        )
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"] == {
            "message": "malformed request: the request body is not valid JSON",
            "type": "invalid_request_error",
            "code": "direct_response",
        }
    assert not any(
        request.path.endswith("/completions") and request.json is None
        for backend in stack.backends.values()
        for request in backend.received
    )


def test_a_multipart_request_is_routed_by_its_model_field(client: openai.OpenAI, stack: LocalStack) -> None:
    transcription = client.audio.transcriptions.create(
        model="gpt-parity", file=("hello.wav", b"RIFF0000WAVE")
    )
    assert transcription.text == "normal,normal,gpt-parity"
    (received,) = [r for r in stack.backends["normal"].received if r.path == "/v1/audio/transcriptions"]
    assert received.headers["x-ai-eg-model"] == "gpt-parity"


def test_a_model_header_sent_by_the_client_is_ignored(stack: LocalStack) -> None:
    """Only Envoy sets the model header: a client's own is dropped whatever the body (here none names a
    model, so the catch-all answers)."""
    claimed = {"x-ai-eg-model": "gpt-parity"}
    not_json = httpx.post(
        stack.url(GATEWAY), content=b"not json", headers={**claimed, "content-type": "text/plain"}
    )
    assert not_json.status_code == 404, not_json.text
    form_without_model = httpx.post(
        stack.url(GATEWAY), files={"file": ("a.wav", b"RIFF")}, data={"language": "en"}, headers=claimed
    )
    assert form_without_model.status_code == 404, form_without_model.text
