"""How ``KubeApi`` tells failed requests apart: whether the request left matters to its callers.

A request that never reached the API server (the connection was refused) was not applied and the next one
fails alike, so the status writer stops its batch; one that went out and got no answer may have been
applied, and only that object's write failed. Against local sockets, no API server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import kubernetes.client
import pytest

from controlplane.sources.kubernetes.api import ApiError, ApiResource, KubeApi

_ROUTES = ApiResource(
    group="aigateway.envoyproxy.io", version="v1alpha1", plural="aigatewayroutes", kind="AIGatewayRoute"
)


def _api(port: int) -> KubeApi:
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    return KubeApi(kubernetes.client.ApiClient(configuration))


def _patch(api: KubeApi) -> ApiError:
    with pytest.raises(ApiError) as failed:
        api.patch_status(_ROUTES, namespace="ns", name="route", status={"conditions": []})
    return failed.value


Server = Callable[[Callable[[socket.socket], None]], int]
"""Serves each connection with the given handler on 127.0.0.1; returns the port."""


@pytest.fixture
def serve() -> Iterator[Server]:
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(handle: Callable[[socket.socket], None]) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def accept() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:  # closed: the test is over
                    return
                with connection:
                    handle(connection)

        thread = threading.Thread(target=accept, name="fake-api-server", daemon=True)
        thread.start()
        threads.append(thread)
        port: int = listener.getsockname()[1]
        return port

    yield start
    for listener in listeners:
        listener.shutdown(socket.SHUT_RDWR)  # wakes its accept(); close alone would not
        listener.close()
    for thread in threads:
        thread.join(timeout=10)


def _read_request(connection: socket.socket) -> None:
    """Reads one request whole (headers and body), so that the client sees it taken."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)


def test_a_refused_connection_is_a_request_not_sent() -> None:
    with socket.socket() as bound:  # bound, not listening: connections to it are refused
        bound.bind(("127.0.0.1", 0))
        api = _api(bound.getsockname()[1])
        try:
            error = _patch(api)
        finally:
            api.close()
    assert (error.status, error.sent) == (0, False)


def test_a_request_taken_and_never_answered_was_sent(serve: Server) -> None:
    api = _api(serve(_read_request))  # then the connection closes, no answer
    try:
        error = _patch(api)
    finally:
        api.close()
    assert (error.status, error.sent) == (0, True)


@pytest.mark.parametrize("status", [200, 500])
def test_an_answer_cut_short_is_an_api_error(serve: Server, status: int) -> None:
    """Responses are read after the call returns (not preloaded): urllib3's error there is one too, not
    an exception that would end the status writer's (or another loop's) thread."""

    def cut_short(connection: socket.socket) -> None:
        _read_request(connection)
        connection.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"message": '
        )

    api = _api(serve(cut_short))
    try:
        error = _patch(api)
    finally:
        api.close()
    assert (error.status, error.sent) == (0, True)
    assert "reading the answer failed" in str(error)


@pytest.mark.parametrize("body", [b"<html>a proxy's page</html>", b"[1, 2]"])
def test_an_answer_that_is_no_json_object_is_an_api_error(serve: Server, body: bytes) -> None:
    """A 200 with another body (a proxy in front of the API server) is an ``ApiError`` too, naming no part of
    the body."""

    def answer(connection: socket.socket) -> None:
        _read_request(connection)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n"
        connection.sendall(head.encode() + body)

    api = _api(serve(answer))
    try:
        error = _patch(api)
    finally:
        api.close()
    assert (error.status, error.sent) == (0, True)
    assert "no JSON object" in str(error)
    assert body.decode() not in str(error)
