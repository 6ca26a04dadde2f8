"""Azure OpenAI through a real Envoy configured by our xDS server: the provider's paths and its credentials.

The fake backend records what Envoy sent: the deployment path with the request's model (or the backendRef's
override), ``api-version`` from the schema, and the ``api-key`` header from the AzureAPIKey policy in place of
what the client sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.devtools.stack import LocalStack
from tests.e2e import answered_by, reset_backends, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

MANIFESTS = Path(__file__).parent / "data" / "e2e_azure"


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_stack(MANIFESTS, tmp_path_factory.mktemp("azure")) as running:
        wait_until(lambda: answered_by(httpx.post(running.url(10095), json=_chat("gpt-4o"), timeout=5)))
        reset_backends(running)
        yield running


def test_azure_api_key_backend_gets_the_deployment_path_and_its_key(stack: LocalStack) -> None:
    backend = stack.backends["azure-key-host"]
    headers = {"api-key": "client-key", "authorization": "Bearer client"}
    with httpx.Client(timeout=10, headers=headers) as client:
        assert answered_by(client.post(stack.url(10095), json=_chat("gpt-4o"))) == "azure-key-host"
        chat_url = stack.url(10095, "/v1/chat/completions?api-version=client&trace=1")
        assert answered_by(client.post(chat_url, json=_chat("chat"))) == "azure-key-host"
        unserved = client.post(stack.url(10095, "/v1/completions"), json=_chat("gpt-4o"))
    first, overridden = backend.received
    assert first.path == "/openai/deployments/gpt-4o/chat/completions"
    assert dict(first.query) == {"api-version": "2024-10-21"}
    assert first.headers.getall("api-key") == ["sk-e2e-azure-key-0b7e"]
    assert overridden.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert overridden.model == "gpt-4o-mini"
    # The schema's version wins over the client's; the client's other parameters travel on.
    assert overridden.query.getall("api-version") == ["2024-10-21"]
    assert overridden.query.getall("trace") == ["1"]
    assert unserved.status_code == 404
    assert "serves only /v1/chat/completions" in unserved.json()["error"]["message"]
