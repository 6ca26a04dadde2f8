"""Azure OpenAI and minted credentials through a real Envoy configured by our xDS server.

The fake backends record what Envoy sent: the deployment path with the request's model (or the backendRef's
override), ``api-version`` from the schema, the ``api-key`` header from the AzureAPIKey policy in place of
what the client sent, and ``Authorization: Bearer`` with the tokens the control plane minted from a fake
identity provider on loopback (Entra ID for AzureCredentials; OIDC, STS and IAM, a key file, or the metadata
server of Application Default Credentials for GCPCredentials), then
refreshed before they expire, then kept while refreshing fails until they expire. No secret or token shows
anywhere but the upstream requests.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controlplane.devtools.stack import LocalStack
from tests.e2e import answered_by, everywhere_but_upstream, reset_backends, running_stack
from tests.polling import wait_until
from tests.token_endpoints import ENTRA_SECRET, OIDC_SECRET, TOKEN_MARK, TokenEndpoints

pytestmark = pytest.mark.envoy

MANIFESTS = Path(__file__).parent / "data" / "e2e_azure"
TOKEN_LIFETIME = 6
"""Seconds: refreshed after 4.8 s, so the test sees a refresh and an expiry without waiting long."""


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def idp() -> Iterator[TokenEndpoints]:
    with TokenEndpoints(lifetime_seconds=TOKEN_LIFETIME).running() as running:
        yield running


@pytest.fixture(scope="module")
def stack(idp: TokenEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    manifests = tmp_path_factory.mktemp("azure-manifests")
    shutil.copy(MANIFESTS / "route.yaml", manifests)
    template = (MANIFESTS / "minted.yaml.in").read_text(encoding="utf-8")
    for placeholder, value in {
        "IDP_URL": idp.url,
        "ENTRA_SECRET": ENTRA_SECRET,
        "OIDC_SECRET": OIDC_SECRET,
    }.items():
        template = template.replace(placeholder, value)
    key_file = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "vertex-key-file", "namespace": "default"},
        "stringData": {"service_account.json": idp.service_account_key()},
    }
    (manifests / "minted.yaml").write_text(f"{template}---\n{yaml.safe_dump(key_file)}", encoding="utf-8")
    with contextlib.ExitStack() as cleanup:
        # The control plane reads where the token endpoints are when it starts.
        with pytest.MonkeyPatch.context() as patch:
            for name, value in idp.environment().items():
                patch.setenv(name, value)
            # Application Default Credentials: no file to find, so the (fake) metadata server's token.
            patch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
            patch.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("gcloud")))
            running = cleanup.enter_context(running_stack(manifests, tmp_path_factory.mktemp("azure")))
        for model in ("gpt-4o", "entra", "gemini", "gemini-key", "gemini-adc"):
            wait_until(functools.partial(_answered, running, model))
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


def test_azure_streams_from_the_deployment_path(stack: LocalStack) -> None:
    backend = stack.backends["azure-key-host"]
    backend.clear()
    streamed = {**_chat("gpt-4o"), "stream": True}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", stack.url(10095), json=streamed) as reply,
    ):
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    (received,) = backend.received
    assert received.path == "/openai/deployments/gpt-4o/chat/completions"
    assert received.json["stream"] is True


def test_minted_tokens_reach_the_providers_as_bearer_tokens(stack: LocalStack, idp: TokenEndpoints) -> None:
    with httpx.Client(timeout=10, headers={"authorization": "Bearer client"}) as client:
        assert answered_by(client.post(stack.url(10095), json=_chat("entra"))) == "azure-entra-host"
        assert answered_by(client.post(stack.url(10095), json=_chat("gemini"))) == "vertex-host"
        assert answered_by(client.post(stack.url(10095), json=_chat("gemini-key"))) == "vertex-key-host"
        assert answered_by(client.post(stack.url(10095), json=_chat("gemini-adc"))) == "vertex-adc-host"
    azure = stack.backends["azure-entra-host"].received[-1]
    assert azure.path == "/openai/deployments/gpt-4o/chat/completions"
    assert dict(azure.query) == {"api-version": "2025-01-01-preview"}
    assert azure.headers.getall("authorization")[0] in [f"Bearer {token}" for token in idp.issued("entra")]
    adc = stack.backends["vertex-adc-host"].received[-1]
    assert adc.headers.getall("authorization")[0] in [f"Bearer {token}" for token in idp.issued("adc")]
    keyed = stack.backends["vertex-key-host"].received[-1]
    assert keyed.headers.getall("authorization")[0] in [f"Bearer {token}" for token in idp.issued("gcpkey")]
    vertex = stack.backends["vertex-host"].received[-1]
    assert (
        vertex.path == "/v1beta1/projects/my-project/locations/us-central1/endpoints/openapi/chat/completions"
    )
    assert vertex.headers.getall("authorization")[0] in [f"Bearer {token}" for token in idp.issued("gcp")]
    steps = {where for where, _ in idp.received}
    assert {"entra e2e-tenant", "oidc discovery", "oidc", "sts", "google oauth", "metadata"} <= steps
    assert "iam vertex-caller@my-project.iam.gserviceaccount.com" in steps


def test_tokens_are_refreshed_before_they_expire(stack: LocalStack, idp: TokenEndpoints) -> None:
    first = _bearer_received(stack, "entra", "azure-entra-host")
    # The next token is minted at 80% of the lifetime and pushed to Envoy: requests carry it from then on.
    wait_until(lambda: _bearer_received(stack, "entra", "azure-entra-host") != first, timeout=30)
    assert _bearer_received(stack, "entra", "azure-entra-host").removeprefix("Bearer ") in idp.issued("entra")


def test_no_secret_or_token_leaks(stack: LocalStack) -> None:
    models = ("entra", "gemini", "gemini-key", "gemini-adc")
    answers = [httpx.post(stack.url(10095), json=_chat(model), timeout=10) for model in models]
    places = everywhere_but_upstream(stack, answers, translate_exit=0)
    for where, text in places.items():
        for secret in (ENTRA_SECRET, OIDC_SECRET, TOKEN_MARK, "sk-e2e-", "PRIVATE KEY"):
            assert secret not in text, f"a secret or token leaked into the {where}"
    assert "credential/default/azure-entra" in places["envoy secrets"]


def test_a_failing_refresh_keeps_the_token_until_it_expires_then_says_why(
    stack: LocalStack, idp: TokenEndpoints
) -> None:
    idp.failing = True
    status = f"http://127.0.0.1:{stack.admin_port}/status"
    # Refreshing fails: the policy says so, and requests still carry the last good token.
    wait_until(lambda: "TokenRefreshFailed" in httpx.get(status).text, timeout=30)
    assert _bearer_received(stack, "entra", "azure-entra-host").removeprefix("Bearer ") in idp.issued("entra")
    # Once it expired, the policy has no token and says why; the backend is no longer used.
    wait_until(lambda: "TokenMintFailed" in httpx.get(status).text, timeout=30)
    text = httpx.get(status).text
    assert "temporarily_unavailable" in text
    assert ENTRA_SECRET not in text
    backend = stack.backends["azure-entra-host"]
    wait_until(lambda: httpx.post(stack.url(10095), json=_chat("entra"), timeout=10).status_code >= 400)
    backend.clear()
    refused = httpx.post(stack.url(10095), json=_chat("entra"), timeout=10)
    assert refused.status_code >= 400, refused.text
    assert backend.received == []


def _answered(stack: LocalStack, model: str) -> str:
    return answered_by(httpx.post(stack.url(10095), json=_chat(model), timeout=10))


def _bearer_received(stack: LocalStack, model: str, backend: str) -> str:
    assert _answered(stack, model) == backend
    return str(stack.backends[backend].received[-1].headers["authorization"])
