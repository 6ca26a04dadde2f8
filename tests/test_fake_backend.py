"""The fake backend over real HTTP, as a client sees it: OpenAI-shaped answers (streamed too), what it records
of each request, TLS with the SNI it got, and the load metrics an endpoint picker scrapes. Its fault modes,
lifecycle and command line are ``test_fake_backend_control.py``.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.devtools.certs import generate_dev_certs
from controlplane.devtools.fake_backend import (
    BACKEND_HEADER,
    FakeBackend,
    HoldStream,
    ReceivedRequest,
    ServerLoad,
    Status,
)
from tests.fake_backend_support import CHAT

# Fixtures, found by pytest by name in this module.
from tests.fake_backend_support import backend as backend
from tests.fake_backend_support import client as client


def _message(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


# --- answers ------------------------------------------------------------------------------------------------


def test_chat_completion_answers_with_its_own_name_and_model(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert response.headers[BACKEND_HEADER] == "eu"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice == {"index": 0, "message": _message("eu,gpt-4o,gpt-4o-mini"), "finish_reason": "stop"}
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def test_any_path_ending_in_chat_completions_and_a_missing_model(client: httpx.Client) -> None:
    response = client.post("/openai/v1/chat/completions", json={"messages": []})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"] == _message("eu,gpt-4o,-")


def test_text_completion(client: httpx.Client) -> None:
    response = client.post("/v1/completions", json={"model": "m", "prompt": "once upon"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "eu,gpt-4o,m"
    assert body["usage"]["prompt_tokens"] == 2


def test_model_list(client: httpx.Client) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [{"id": "gpt-4o", "object": "model", "owned_by": "eu"}],
    }


@pytest.mark.parametrize(("method", "path"), [("GET", "/v2/unknown"), ("GET", "/v1/chat/completions")])
def test_unknown_route_is_an_openai_style_404(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 404
    assert response.headers[BACKEND_HEADER] == "eu"
    error = {
        "message": f"Invalid URL ({method} {path})",
        "type": "invalid_request_error",
        "code": "not_found",
    }
    assert response.json() == {"error": error}


def test_a_body_that_is_not_a_json_object_is_a_400(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", content=b"[1, 2")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def _sse_events(response: httpx.Response) -> list[str]:
    return [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]


def test_streamed_chat_completion_is_sse_ending_with_done(client: httpx.Client) -> None:
    request = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers[BACKEND_HEADER] == "eu"
        events = _sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["model"] for chunk in chunks} == {"gpt-4o"}
    with_choices = [chunk["choices"][0] for chunk in chunks if chunk["choices"]]
    assert with_choices[0]["delta"]["role"] == "assistant"
    assert "".join(c["delta"].get("content", "") for c in with_choices) == "eu,gpt-4o,gpt-4o-mini"
    assert [c["finish_reason"] for c in with_choices][-1] == "stop"
    assert len(with_choices) > 2  # really in pieces
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_streamed_text_completion_without_usage(client: httpx.Client) -> None:
    with client.stream("POST", "/v1/completions", json={"prompt": "x", "stream": True}) as response:
        events = _sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == "eu,gpt-4o,-"


def test_a_held_stream_sends_its_first_event_then_waits_for_the_release(
    backend: FakeBackend, client: httpx.Client
) -> None:
    hold = HoldStream()
    backend.set_mode(hold)
    request = {**CHAT, "stream": True}
    try:
        with client.stream("POST", "/v1/chat/completions", json=request) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert json.loads(first.removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"
            assert not hold.release.is_set()  # the first event came while the answer was held
            hold.release.set()
            rest = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    finally:
        hold.release.set()
    assert rest[-1] == "[DONE]"
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200, "unstreamed: answered at once"


# --- recording ----------------------------------------------------------------------------------------------


def test_records_what_it_received(backend: FakeBackend, client: httpx.Client) -> None:
    client.post("/v1/chat/completions?api-version=2&x=1", json=CHAT, headers={"Authorization": "Bearer k"})
    snapshot = backend.received
    [received] = snapshot
    assert received.method == "POST"
    assert received.path == "/v1/chat/completions"
    assert dict(received.query) == {"api-version": "2", "x": "1"}
    assert received.headers["authorization"] == received.headers["AUTHORIZATION"] == "Bearer k"
    assert json.loads(received.body) == CHAT
    assert received.json == CHAT
    assert received.model == "gpt-4o-mini"
    assert not received.chunked
    assert not received.tls
    assert received.sni is None
    assert received.tcp_nodelay
    backend.clear()
    assert backend.received == []
    assert snapshot == [received]  # a copy, untouched by clear()


def test_chunked_request_body_is_accepted(backend: FakeBackend, client: httpx.Client) -> None:
    payload = json.dumps(CHAT).encode()

    def pieces() -> Iterator[bytes]:
        # A generator has no length, so httpx sends it with transfer-encoding: chunked, as Envoy does.
        yield payload[:10]
        yield payload[10:]

    response = client.post(
        "/v1/chat/completions", content=pieces(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    [received] = backend.received
    assert received.chunked
    assert received.body == payload
    assert received.model == "gpt-4o-mini"


def test_wait_for_counts_matching_requests_and_times_out(backend: FakeBackend, client: httpx.Client) -> None:
    def is_chat(request: ReceivedRequest) -> bool:
        return request.path.endswith("/chat/completions")

    client.get("/v1/models")
    client.post("/v1/chat/completions", json=CHAT)
    assert [r.path for r in backend.wait_for(1, where=is_chat)] == ["/v1/chat/completions"]
    assert len(backend.wait_for(2)) == 2
    with pytest.raises(TimeoutError, match="expected 2 matching requests"):
        backend.wait_for(2, timeout=0.05, where=is_chat)


# --- TLS ----------------------------------------------------------------------------------------------------


def test_tls_with_the_dev_ca_records_the_sni(tmp_path: Path) -> None:
    certs = generate_dev_certs(tmp_path, dns_names=["backend.test"], ip_addresses=["127.0.0.1"])
    trusting = ssl.create_default_context(cafile=str(certs.ca_file))
    with FakeBackend(name="tls", model="m", tls=certs) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        # Separate clients: a reused keep-alive connection would report the first handshake's SNI again.
        with httpx.Client(verify=trusting, timeout=5.0) as http:
            named = http.post(
                f"{fake.url}/v1/chat/completions", json=CHAT, extensions={"sni_hostname": "backend.test"}
            )
        with httpx.Client(verify=trusting, timeout=5.0) as http:
            by_ip = http.get(f"{fake.url}/v1/models")
        with (
            httpx.Client(verify=ssl.create_default_context(), timeout=5.0) as untrusting,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            untrusting.get(f"{fake.url}/v1/models")
        assert named.status_code == by_ip.status_code == 200
        first, second = fake.received
    assert (first.tls, first.sni) == (True, "backend.test")
    assert (second.tls, second.sni) == (True, None)  # clients send no SNI for an IP address


# --- load metrics -------------------------------------------------------------------------------------------


def test_metrics_report_the_load_the_test_sets_in_vllm_names_and_are_not_recorded(
    backend: FakeBackend, client: httpx.Client
) -> None:
    assert 'vllm:num_requests_waiting{model_name="gpt-4o"} 0' in client.get("/metrics").text
    backend.set_load(ServerLoad(waiting=12, running=3, kv_cache_usage=0.75))
    text = client.get("/metrics").text
    for line in (
        'vllm:num_requests_waiting{model_name="gpt-4o"} 12',
        'vllm:num_requests_running{model_name="gpt-4o"} 3',
        'vllm:gpu_cache_usage_perc{model_name="gpt-4o"} 0.75',
    ):
        assert line in text.splitlines(), text
    assert backend.received == [], "a picker scrapes every few ms: scrapes are not requests"
    backend.set_mode(Status(503))
    assert client.get("/metrics").status_code == 200, "an erroring model server still reports its load"


def test_a_load_that_cannot_be_is_refused() -> None:
    with pytest.raises(ValueError, match="not a possible load"):
        ServerLoad(kv_cache_usage=1.5)
