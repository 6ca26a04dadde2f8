"""Fake hosted providers on loopback that speak their own APIs: Anthropic Messages, Gemini on Vertex AI,
Claude on Vertex AI (``rawPredict``) and on Bedrock (``invoke``, ``invoke-with-response-stream``), and
Cohere's Rerank v2.

A backend whose schema is Anthropic, GCPVertexAI, GCPAnthropic or AWSAnthropic is reached through Envoy's
transcoder; the only proof that the conversion is right is a server that accepts only what the provider
documents. Each fake checks the path, the auth and version headers and the body fields (an error in the
provider's own JSON otherwise), records every request, and answers in the provider's shape: a JSON body, or
its SSE stream (Anthropic's named events ``message_start`` ... ``message_stop``, which Vertex AI's
``streamRawPredict`` sends too; Gemini's ``data:`` events of ``streamGenerateContent?alt=sse``). The cloud
Claude endpoints take the model in the path and refuse it in the body, and want ``anthropic_version`` in the
body (``VERTEX_ANTHROPIC_VERSION``, ``BEDROCK_ANTHROPIC_VERSION``); Bedrock also refuses ``stream``, and
streams the same events in AWS event-stream frames (``aws_event_stream``), one write per frame as Bedrock
does or split across writes so that a frame straddles chunks (``bedrock_split_frames``), optionally ending
in an exception frame (``bedrock_exception``) or with a frame whose CRC is wrong (``bedrock_bad_crc``).
Cohere ranks the documents by their order (the first is the most relevant) and names itself in the
answer's ``id``.
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
from urllib.parse import unquote

from controlplane.devtools import aws_event_stream

ANTHROPIC_USAGE = {"input_tokens": 11, "output_tokens": 7}
GEMINI_USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
_VERTEX_CLAUDE_PATH = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/publishers/anthropic/models/"
    r"(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)$"
)
_BEDROCK_PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<method>invoke|invoke-with-response-stream)$")
_VERTEX_PATH = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/publishers/google/models/"
    r"(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)(?P<query>\?.*)?$"
)


_BEDROCK_METRICS = {
    "inputTokenCount": ANTHROPIC_USAGE["input_tokens"],
    "outputTokenCount": ANTHROPIC_USAGE["output_tokens"],
    "invocationLatency": 120,
    "firstByteLatency": 40,
}
_FAULTY_FRAME = 4
"""The stream's frame a Bedrock fault replaces: the one after the first text delta."""

Answer = list[tuple[str, dict[str, Any]]] | dict[str, Any]
"""A JSON body, or SSE events as (event name, data); an empty name sends a ``data:`` line only."""


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: dict[str, Any]
    raw: bytes = b""
    """The body as received (what a signature covers)."""


class FakeProvider:
    """``api`` is one of ``APIS``; binds ``port`` on 127.0.0.1 (0: any free one). Bedrock streams only:
    ``bedrock_exception`` (an exception type) ends them with that exception after the first delta;
    ``bedrock_bad_crc`` sends that frame with a wrong message CRC, then the rest; ``bedrock_split_frames``
    writes each frame in three pieces (cut inside the prelude and inside the payload)."""

    APIS = ("anthropic", "vertex", "vertex-anthropic", "bedrock-anthropic", "cohere")

    def __init__(
        self,
        *,
        api: str,
        name: str,
        port: int = 0,
        anthropic_usage: dict[str, int] | None = None,
        bedrock_exception: str | None = None,
        bedrock_bad_crc: bool = False,
        bedrock_split_frames: bool = False,
    ) -> None:
        if api not in self.APIS:
            raise ValueError(f"unknown provider API {api!r}")
        self.api = api
        self.name = name
        self.anthropic_usage = ANTHROPIC_USAGE if anthropic_usage is None else anthropic_usage
        """The usage an ``anthropic`` provider reports (its cache counts too, when given)."""
        self.bedrock_exception = bedrock_exception
        self.bedrock_bad_crc = bedrock_bad_crc
        self.bedrock_split_frames = bedrock_split_frames
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
        if self.api == "anthropic":
            return _anthropic(self.name, request, usage=self.anthropic_usage)
        if self.api == "vertex-anthropic":
            return _vertex_claude(self.name, request)
        if self.api == "bedrock-anthropic":
            return _bedrock_claude(self.name, request)
        if self.api == "cohere":
            return _cohere_rerank(self.name, request)
        return _vertex(self.name, request)


def _text(model: str, name: str, last_user: str) -> str:
    return f"{name},{model},{last_user}"


def _anthropic(name: str, request: ProviderRequest, *, usage: dict[str, int]) -> tuple[int, Answer]:
    def error(status: int, kind: str, message: str) -> tuple[int, Answer]:
        return status, {"type": "error", "error": {"type": kind, "message": message}}

    if request.path != "/v1/messages":
        return error(404, "not_found_error", f"no such path {request.path}")
    if not request.headers.get("x-api-key"):
        return error(401, "authentication_error", "x-api-key header is required")
    if not request.headers.get("anthropic-version"):
        return error(400, "invalid_request_error", "anthropic-version header is required")
    if "model" not in request.body:
        return error(400, "invalid_request_error", "model: Field required")
    return _claude(
        name,
        request.body,
        model=request.body["model"],
        streaming=bool(request.body.get("stream")),
        usage=usage,
    )


def _vertex_claude(name: str, request: ProviderRequest) -> tuple[int, Answer]:
    """Claude on Vertex AI: ``rawPredict``/``streamRawPredict`` under the project's path, an OAuth token."""

    def error(status: int, reason: str, message: str) -> tuple[int, Answer]:
        return status, {"error": {"code": status, "message": message, "status": reason}}

    matched = _VERTEX_CLAUDE_PATH.match(request.path)
    if matched is None:
        return error(404, "NOT_FOUND", f"no such path {request.path}")
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return error(401, "UNAUTHENTICATED", "Request is missing required authentication credential")
    body = request.body
    if body.get("anthropic_version") != VERTEX_ANTHROPIC_VERSION:
        return error(400, "INVALID_ARGUMENT", f"anthropic_version must be {VERTEX_ANTHROPIC_VERSION}")
    if "model" in body:
        return error(400, "INVALID_ARGUMENT", "model: Extra inputs are not permitted (the path names it)")
    streaming = matched["method"] == "streamRawPredict"
    if bool(body.get("stream")) != streaming:
        return error(400, "INVALID_ARGUMENT", "stream must be true on streamRawPredict and absent otherwise")
    return _claude(name, body, model=matched["model"], streaming=streaming)


def _bedrock_claude(name: str, request: ProviderRequest) -> tuple[int, Answer]:
    """Claude on Bedrock: ``InvokeModel`` at ``/model/{modelId}/invoke``, signed with SigV4."""

    def error(status: int, message: str) -> tuple[int, Answer]:
        return status, {"message": message}

    matched = _BEDROCK_PATH.match(request.path)
    if matched is None:
        return error(404, f"no such path {request.path}")
    if not request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 "):
        return error(403, "Missing Authentication Token")
    body = request.body
    if body.get("anthropic_version") != BEDROCK_ANTHROPIC_VERSION:
        return error(400, f"anthropic_version must be {BEDROCK_ANTHROPIC_VERSION}")
    for extraneous in ("model", "stream"):
        if extraneous in body:
            return error(400, f"Malformed input request: extraneous key [{extraneous}] is not permitted")
    streaming = matched["method"] == "invoke-with-response-stream"
    return _claude(name, body, model=unquote(matched["model"]), streaming=streaming)


def _cohere_rerank(name: str, request: ProviderRequest) -> tuple[int, Answer]:
    """Cohere's Rerank API v2: ``POST /v2/rerank`` with a bearer key, ``model``, ``query``, ``documents``."""

    def error(status: int, message: str) -> tuple[int, Answer]:
        return status, {"id": name, "message": message}

    if request.path != "/v2/rerank":
        return error(404, f"no such path {request.path}")
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return error(401, "no api key supplied")
    body = request.body
    for required in ("model", "query", "documents"):
        if not body.get(required):
            return error(400, f"invalid request: {required} is required")
    ranked = range(min(len(body["documents"]), int(body.get("top_n") or len(body["documents"]))))
    return 200, {
        "id": f"{name},{body['model']}",
        "results": [{"index": index, "relevance_score": 1 / (index + 1)} for index in ranked],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }


def _claude(
    name: str,
    body: dict[str, Any],
    *,
    model: str,
    streaming: bool,
    usage: dict[str, int] = ANTHROPIC_USAGE,
) -> tuple[int, Answer]:
    """Anthropic's Messages answer to a valid request (JSON, or the SSE events when ``streaming``)."""

    def error(status: int, kind: str, message: str) -> tuple[int, Answer]:
        return status, {"type": "error", "error": {"type": kind, "message": message}}

    for required in ("max_tokens", "messages"):
        if required not in body:
            return error(400, "invalid_request_error", f"{required}: Field required")
    users = [m for m in body["messages"] if m.get("role") == "user"]
    if any(m.get("role") == "system" for m in body["messages"]):
        return error(400, "invalid_request_error", "messages: system is a top-level parameter")
    content = users[-1]["content"] if users else ""
    text = _text(model, name, content if isinstance(content, str) else content[0].get("text", ""))
    message: dict[str, Any] = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model}
    if not streaming:
        reply = {**message, "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}
        return 200, {**reply, "stop_sequence": None, "usage": usage}
    pieces = text.split(",")
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
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
                "usage": {"output_tokens": usage["output_tokens"]},
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
            request = ProviderRequest(path=self.path, headers=headers, body=body, raw=raw)
            status, answer = provider.answer(request)
            if isinstance(answer, dict):
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(status)
            self.send_header("transfer-encoding", "chunked")
            if provider.api == "bedrock-anthropic":
                self.send_header("content-type", aws_event_stream.CONTENT_TYPE)
                self.send_header("x-amzn-bedrock-content-type", "application/json")
                self.end_headers()
                self._bedrock_frames(answer)
            else:
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for event, data_obj in answer:
                    head = f"event: {event}\n" if event else ""
                    self._chunk(f"{head}data: {json.dumps(data_obj)}\n\n".encode())
            self.wfile.write(b"0\r\n\r\n")

        def _bedrock_frames(self, events: list[tuple[str, dict[str, Any]]]) -> None:
            for index, (_, event) in enumerate(events):
                if index == _FAULTY_FRAME and provider.bedrock_exception is not None:
                    self._chunk(aws_event_stream.exception_frame(provider.bedrock_exception, "try again"))
                    return
                if event["type"] == "message_stop":
                    # Bedrock adds its own metrics to the last event.
                    event = {**event, "amazon-bedrock-invocationMetrics": _BEDROCK_METRICS}
                frame = aws_event_stream.anthropic_event_frame(event)
                if index == _FAULTY_FRAME and provider.bedrock_bad_crc:
                    frame = frame[:-1] + bytes([frame[-1] ^ 1])
                if not provider.bedrock_split_frames:
                    self._chunk(frame)
                    continue
                # Split inside the prelude and inside the payload: a reader must carry partial frames over.
                for piece in (frame[:5], frame[5 : len(frame) // 2], frame[len(frame) // 2 :]):
                    self._chunk(piece)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

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
