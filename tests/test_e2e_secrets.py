"""API keys reach the upstream request and nothing else, for each key type, through a real Envoy.

OpenAI's ``Authorization: Bearer``, Azure's ``api-key`` and Anthropic's ``x-api-key`` are injected from SDS
secrets, replacing what the client sent. Then every place a key could leak is read: both processes' logs,
Envoy's admin (config dump, secrets, stats, clusters), the control plane's metrics, status and proxy-status,
the answers clients got, and ``controlplane translate``: no key is in any of them. Envoy itself redacts SDS
secret values in its config dump; this checks it stays so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.devtools.fake_backend import Status
from controlplane.devtools.stack import LocalStack
from tests.e2e import answered_by, everywhere_but_upstream, reset_backends, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

KEYS = Path(__file__).parent / "data" / "e2e_keys"
KEY_MARK = "sk-e2e-"
"""Every key value in the manifests starts so (the unparsable Secret's too)."""
CLIENT_CREDENTIALS = {
    "authorization": "Bearer client-key",
    "api-key": "client-key",
    "x-api-key": "client-key",
}


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_stack(KEYS, tmp_path_factory.mktemp("secrets")) as running:
        wait_until(lambda: answered_by(httpx.post(running.url(10090), json=_chat("chat"), timeout=5)))
        reset_backends(running)
        yield running


def test_each_key_type_replaces_what_the_client_sent_and_leaks_nowhere(stack: LocalStack) -> None:
    answers: list[httpx.Response] = []
    with httpx.Client(timeout=10, headers=CLIENT_CREDENTIALS) as client:
        answers.append(client.post(stack.url(10090), json=_chat("chat")))
        answers.append(client.post(stack.url(10090), json=_chat("claude")))
        stack.backends["openai-host"].set_mode(Status(503))  # the next priority, keyed for Azure, answers
        answers.append(client.post(stack.url(10090), json=_chat("chat")))
        answers.append(client.post(stack.url(10090, "/v1/no-such-api"), json=_chat("chat")))
    assert [answered_by(reply) for reply in answers[:3]] == ["openai-host", "anthropic-host", "azure-host"]

    injected = {
        "openai-host": ("authorization", "Bearer sk-e2e-openai-7d1f0c"),
        "anthropic-host": ("x-api-key", "sk-e2e-anthropic-51b0e8"),
        "azure-host": ("api-key", "sk-e2e-azure-93ce4a"),
    }
    for backend, (header, value) in injected.items():
        received = stack.backends[backend].received[-1]
        assert received.headers.getall(header) == [value], f"{backend} got the client's {header}"

    places = everywhere_but_upstream(stack, answers, translate_exit=1)  # 1: the unparsable Secret
    assert len(places) >= 14
    for where, text in places.items():
        assert text, f"nothing read from the {where}"
        assert KEY_MARK not in text, f"an API key leaked into the {where}"
    # The checks read something real: the secrets are in Envoy (redacted), the bad Secret is reported.
    assert "credential/default/azure-key" in places["envoy secrets"]
    assert '"inline_string": "[redacted]"' in places["envoy secrets"]
    assert "Secret/default/broken: data.apiKey: is not valid base64" in places["control plane status"]
