"""What a test controls about the fake backend: its fault modes (an error status, slow, reset, refused
connections, switched while in use), its lifecycle (stop and start on the same port, no threads or sockets
leaked) and running it from the command line. Its answers over HTTP are ``test_fake_backend.py``.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from controlplane.devtools.fake_backend import (
    BACKEND_HEADER,
    FakeBackend,
    Normal,
    Refuse,
    Reset,
    Slow,
    Status,
)
from tests.fake_backend_support import CHAT

# Fixtures, found by pytest by name in this module.
from tests.fake_backend_support import backend as backend
from tests.fake_backend_support import client as client
from tests.open_files import open_files, wait_until_closed


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5.0)


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


def _threads_started_since(before: set[threading.Thread]) -> list[threading.Thread]:
    """The fake backends' threads alive now that were not in ``before``: this test's, not another's a test
    left running (a backend of the same name among them)."""
    return [t for t in threading.enumerate() if t not in before and t.name.startswith("fake-backend-")]


def test_a_slow_answer_in_flight_does_not_hold_up_stop() -> None:
    before = set(threading.enumerate())
    with FakeBackend(name="eu", model="gpt-4o") as fake, httpx.Client(base_url=fake.url) as client:
        (serving,) = _threads_started_since(before)
        fake.set_mode(Slow(60))
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/chat/completions", json=CHAT, timeout=0.1)
        fake.wait_for(1, timeout=15.0)  # the request is in the handler, not still on its way
        fake.stop()  # aborts the connection and cancels the sleeping handler instead of waiting a minute
        assert not serving.is_alive()


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


# A socket left for the garbage collector to close warns; these make that a failure, not a silent pass.
@pytest.mark.filterwarnings("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")
def test_many_start_stop_cycles_leak_no_threads_or_sockets() -> None:
    threads, files = set(threading.enumerate()), open_files()
    for cycle in range(20):
        fake = FakeBackend(name="cycle", model="m")
        with fake:
            # A connection still open at stop() must be closed by the server, not leaked.
            held = _connect(fake.port)
            try:
                held.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
                fake.wait_for(1, timeout=15.0)
                if cycle % 2:
                    fake.set_mode(Refuse())
            except BaseException:
                held.close()
                raise
        held.close()
    assert _threads_started_since(threads) == []
    wait_until_closed(files)


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
