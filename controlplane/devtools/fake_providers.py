"""Fake hosted providers on loopback that speak their own APIs: Anthropic Messages and Gemini on Vertex AI.

A backend whose schema is Anthropic or GCPVertexAI is reached through Envoy's transcoder; the only proof that
the conversion is right is a server that accepts only what the provider documents. Each fake checks the path,
the auth and version headers and the required body fields (an error in the provider's own JSON otherwise),
records every request, and answers in the provider's shape: a JSON body, or its SSE stream (Anthropic's
named events ``message_start`` ... ``message_stop``; Gemini's ``data:`` events of
``streamGenerateContent?alt=sse``).
The answer's text is ``<name>,<model>,<last user text>`` so a test sees who answered what.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANTHROPIC_USAGE = {"input_tokens": 11, "output_tokens": 7}
GEMINI_USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}
_VERTEX_PATH = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/publishers/google/models/"
    r"(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)(?P<query>\?.*)?$"
)


Answer = list[tuple[str, dict[str, Any]]] | dict[str, Any]
"""A JSON body, or SSE events as (event name, data); an empty name sends a ``data:`` line only."""


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: dict[str, Any]


class FakeProvider:
    """``api`` is ``anthropic`` or ``vertex``; binds ``port`` on 127.0.0.1 (0: any free one)."""

    def __init__(self, *, api: str, name: str, port: int = 0) -> None:
        if api not in ("anthropic", "vertex"):
            raise ValueError(f"unknown provider API {api!r}")
        self.api = api
        self.name = name
        self.received: list[ProviderRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"fake-{name}", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def answer(self, request: ProviderRequest) -> tuple[int, Answer]:
        """The status and either a JSON body or SSE events (name, data) for one recorded request."""
        self.received.append(request)
        return _anthropic(self.name, request) if self.api == "anthropic" else _vertex(self.name, request)


def _text(model: str, name: str, last_user: str) -> str:
    return f"{name},{model},{last_user}"


def _anthropic(name: str, request: ProviderRequest) -> tuple[int, Answer]:
    def error(status: int, kind: str, message: str) -> tuple[int, Answer]:
        return status, {"type": "error", "error": {"type": kind, "message": message}}

    if request.path != "/v1/messages":
        return error(404, "not_found_error", f"no such path {request.path}")
    if not request.headers.get("x-api-key"):
        return error(401, "authentication_error", "x-api-key header is required")
    if not request.headers.get("anthropic-version"):
        return error(400, "invalid_request_error", "anthropic-version header is required")
    body = request.body
    for required in ("model", "max_tokens", "messages"):
        if required not in body:
            return error(400, "invalid_request_error", f"{required}: Field required")
    users = [m for m in body["messages"] if m.get("role") == "user"]
    if any(m.get("role") == "system" for m in body["messages"]):
        return error(400, "invalid_request_error", "messages: system is a top-level parameter")
    content = users[-1]["content"] if users else ""
    text = _text(body["model"], name, content if isinstance(content, str) else content[0].get("text", ""))
    message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"]}
    if not body.get("stream"):
        reply = {**message, "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}
        return 200, {**reply, "stop_sequence": None, "usage": ANTHROPIC_USAGE}
    pieces = text.split(",")
    start = {**message, "content": [], "stop_reason": None, "usage": {**ANTHROPIC_USAGE, "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        ),
        ("ping", {"type": "ping"}),
    ]
    for index, piece in enumerate(pieces):
        delta = {"type": "text_delta", "text": piece if index == 0 else "," + piece}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return 200, events


def _vertex(name: str, request: ProviderRequest) -> tuple[int, Answer]:
    def error(status: int, reason: str, message: str) -> tuple[int, Answer]:
        return status, {"error": {"code": status, "message": message, "status": reason}}

    matched = _VERTEX_PATH.match(request.path)
    if matched is None:
        return error(404, "NOT_FOUND", f"no such path {request.path}")
    streaming = matched["method"] == "streamGenerateContent"
    if streaming and matched["query"] != "?alt=sse":
        return error(400, "INVALID_ARGUMENT", "streamGenerateContent is served as SSE with alt=sse only")
    contents = request.body.get("contents")
    if not contents:
        return error(400, "INVALID_ARGUMENT", "contents is required")
    last = contents[-1]["parts"][0].get("text", "")
    text = _text(matched["model"], name, last)
    if not streaming:
        whole = {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
        return 200, {
            "candidates": [whole],
            "usageMetadata": GEMINI_USAGE,
            "modelVersion": matched["model"],
        }
    pieces = text.split(",")
    events: list[tuple[str, dict[str, Any]]] = []
    for index, piece in enumerate(pieces):
        final = index == len(pieces) - 1
        candidate: dict[str, Any] = {
            "content": {"role": "model", "parts": [{"text": piece if not index else "," + piece}]}
        }
        chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": matched["model"]}
        if final:
            candidate["finishReason"] = "STOP"
            chunk["usageMetadata"] = GEMINI_USAGE
        events.append(("", chunk))
    return 200, events


def _handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and the client's
            # delayed ACK hold the body ~40 ms (the benchmark would measure the fake, not Envoy).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: tests read ``received`` instead."""

        def do_POST(self) -> None:
            raw = self._body()
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer = provider.answer(ProviderRequest(path=self.path, headers=headers, body=body))
            if isinstance(answer, dict):
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(status)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event, data_obj in answer:
                head = f"event: {event}\n" if event else ""
                chunk = f"{head}data: {json.dumps(data_obj)}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def _body(self) -> bytes:
            if "chunked" not in self.headers.get("transfer-encoding", "").lower():
                return self.rfile.read(int(self.headers.get("content-length") or 0))
            # Envoy sends a body a filter rewrote (the model override) chunked.
            out = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline().strip():
                pass
            return out

    return Handler
