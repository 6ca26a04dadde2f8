"""The fake backend over real HTTP: OpenAI-shaped answers, recording, fault modes, TLS, lifecycle."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.devtools.certs import generate_dev_certs
from controlplane.devtools.fake_backend import (
    BACKEND_HEADER,
    FakeBackend,
    HoldStream,
    Normal,
    ReceivedRequest,
    Refuse,
    Reset,
    ServerLoad,
    Slow,
    Status,
)
from tests.polling import wait_until

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hello to me"}]}


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    fake = FakeBackend(name="eu", model="gpt-4o")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def client(backend: FakeBackend) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=backend.url, timeout=5.0) as http:
        yield http


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5.0)


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


# --- fault modes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "kind", "code", "retry_after"),
    [
        (Status(429, retry_after=7), "rate_limit_error", "too_many_requests", "7"),
        (Status(503), "server_error", "service_unavailable", None),
    ],
)
def test_status_mode_answers_an_openai_error_until_set_back(
    backend: FakeBackend, client: httpx.Client, mode: Status, kind: str, code: str, retry_after: str | None
) -> None:
    backend.set_mode(mode)
    response = client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == mode.code
    assert response.headers.get("retry-after") == retry_after
    assert response.headers[BACKEND_HEADER] == "eu"
    assert response.json()["error"] == {
        "message": f"fake backend eu is set to answer {mode.code}",
        "type": kind,
        "code": code,
    }
    assert backend.received[0].model == "gpt-4o-mini"  # failed attempts are recorded too
    backend.set_mode(Normal())
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


@pytest.mark.parametrize("code", [200, 302, 600])
def test_status_mode_needs_an_error_status(code: int) -> None:
    with pytest.raises(ValueError, match="error status"):
        Status(code)


def test_slow_answers_after_the_delay(backend: FakeBackend, client: httpx.Client) -> None:
    backend.set_mode(Slow(0.2))
    started = time.monotonic()
    response = client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


def test_a_slow_answer_in_flight_does_not_hold_up_stop(backend: FakeBackend, client: httpx.Client) -> None:
    backend.set_mode(Slow(60))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json=CHAT, timeout=0.1)
    backend.stop()  # aborts the connection and cancels the sleeping handler instead of waiting a minute
    assert not [t for t in threading.enumerate() if t.name == "fake-backend-eu"]


def test_reset_closes_the_connection_without_an_answer(backend: FakeBackend, client: httpx.Client) -> None:
    backend.set_mode(Reset())
    with pytest.raises(httpx.TransportError):
        client.post("/v1/chat/completions", json=CHAT)
    assert backend.received[0].model == "gpt-4o-mini"
    backend.set_mode(Normal())
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_refuse_closes_open_connections_refuses_new_ones_and_recovers_on_the_same_port(
    backend: FakeBackend,
) -> None:
    port = backend.port
    keep_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
    try:
        keep_alive.request("GET", "/v1/models")
        assert keep_alive.getresponse().read()
        assert keep_alive.sock is not None
        backend.set_mode(Refuse())
        # An abort may arrive as a reset rather than an end of stream: either way the connection is gone.
        with contextlib.suppress(ConnectionResetError):
            assert keep_alive.sock.recv(1) == b""
    finally:
        keep_alive.close()
    with pytest.raises(ConnectionRefusedError):
        _connect(port).close()
    assert backend.port == port

    backend.set_mode(Normal())
    assert backend.port == port
    response = httpx.post(f"{backend.url}/v1/chat/completions", json=CHAT, timeout=5.0)
    assert response.json()["choices"][0]["message"]["content"] == "eu,gpt-4o,gpt-4o-mini"


def test_started_in_refuse_mode_holds_the_port_without_listening() -> None:
    fake = FakeBackend(name="late", model="m")
    fake.set_mode(Refuse())
    with fake:
        with pytest.raises(ConnectionRefusedError):
            _connect(fake.port).close()
        fake.set_mode(Normal())
        assert httpx.get(f"{fake.url}/v1/models", timeout=5.0).status_code == 200


def test_concurrent_mode_switches_leave_a_consistent_server(
    backend: FakeBackend, client: httpx.Client
) -> None:
    def flip() -> None:
        for _ in range(10):
            backend.set_mode(Refuse())
            backend.set_mode(Status(503))
            backend.set_mode(Normal())

    flippers = [threading.Thread(target=flip) for _ in range(3)]
    for flipper in flippers:
        flipper.start()
    for flipper in flippers:
        flipper.join(10.0)
    assert backend.mode == Normal()
    assert client.get("/v1/models").status_code == 200


# --- lifecycle ----------------------------------------------------------------------------------------------


def test_stop_then_start_serves_on_the_same_port_again() -> None:
    with FakeBackend(name="eu", model="gpt-4o") as fake:
        port = fake.port
        assert httpx.get(f"{fake.url}/v1/models", timeout=5.0).status_code == 200
        fake.stop()
        with pytest.raises(ConnectionRefusedError):
            _connect(port).close()
        fake.start()
        assert fake.port == port
        assert httpx.get(f"{fake.url}/v1/models", timeout=5.0).status_code == 200
        assert len(fake.received) == 2  # the record spans restarts


def test_port_is_unknown_before_start_and_start_twice_is_an_error_stop_twice_is_not() -> None:
    fake = FakeBackend(name="x", model="m")
    with pytest.raises(RuntimeError, match="start it first"):
        _ = fake.port
    with fake:
        with pytest.raises(RuntimeError, match="already started"):
            fake.start()
        fake.stop()
        fake.stop()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# A socket left for the garbage collector to close warns; these make that a failure, not a silent pass.
@pytest.mark.filterwarnings("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")
def test_many_start_stop_cycles_leak_no_threads_or_sockets() -> None:
    baseline_fds = _open_fds()
    for cycle in range(20):
        fake = FakeBackend(name="cycle", model="m")
        with fake:
            # A connection still open at stop() must be closed by the server, not leaked.
            held = _connect(fake.port)
            held.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
            fake.wait_for(1, timeout=5.0)
            if cycle % 2:
                fake.set_mode(Refuse())
        held.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("fake-backend-")]
    wait_until(
        lambda: _open_fds() <= baseline_fds,
        timeout=5.0,
        interval=0.01,
        message=f"open fds back to {baseline_fds} (the value is whether they are)",
    )


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


# --- command line -------------------------------------------------------------------------------------------


def _first_line(process: subprocess.Popen[str], *, timeout: float) -> str:
    """The first line the process prints, read within ``timeout`` (it may never print one)."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"nothing printed within {timeout} s (exit code {process.poll()})")
    return process.stdout.readline()


@pytest.mark.envoy
def test_command_line_serves_until_terminated() -> None:
    args = ["--name", "cli", "--model", "m", "--port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "controlplane.devtools.fake_backend", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        # It binds port 0 itself and says where it listens, in one line a script can parse.
        announced = _first_line(process, timeout=15.0)
        listening = re.fullmatch(
            r"fake backend cli \(m\) listening on (http://127\.0\.0\.1:\d+)\n", announced
        )
        assert listening is not None, announced
        url = listening.group(1)
        assert httpx.get(f"{url}/v1/models", timeout=5.0).json()["data"][0]["owned_by"] == "cli"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10.0)
        assert process.returncode == 0
        assert output == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


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
