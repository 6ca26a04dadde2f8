"""The fake backend's request handler: record the request, apply the fault mode, answer like OpenAI.

Answers carry the backend's own name and configured model (body ``model``, header ``x-fake-backend`` and
the message content ``<name>,<model>,<model the request asked for, or ->``), so a test or the demo can tell
from the answer alone which backend served a request and what it was asked for.
"""

from __future__ import annotations

import asyncio
import email
import itertools
import json
import socket
import ssl
import struct
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Protocol

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from controlplane.devtools.fake_backend.metrics import ServerLoad, prometheus_text
from controlplane.devtools.fake_backend.modes import (
    HoldStream,
    Mode,
    Refuse,
    Reset,
    Slow,
    StallStream,
    Status,
)
from controlplane.devtools.fake_backend.recorder import ReceivedRequest, RequestLog

BACKEND_HEADER = "x-fake-backend"
_SSE_DONE = b"data: [DONE]\n\n"


class ModeSource(Protocol):
    """Returns the fault mode in force right now."""

    def __call__(self) -> Mode: ...


class LoadSource(Protocol):
    """Returns the load the server reports right now."""

    def __call__(self) -> ServerLoad: ...


class Responder:
    """aiohttp low-level request handler for one fake backend."""

    def __init__(
        self,
        *,
        name: str,
        model: str,
        log: RequestLog,
        mode: ModeSource,
        server_names: Mapping[ssl.SSLObject, str],
        load: LoadSource = ServerLoad,
    ) -> None:
        self._name = name
        self._model = model
        self._log = log
        self._mode = mode
        self._load = load
        self._server_names = server_names
        self._ids = itertools.count(1)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/metrics":
            return self._metrics(request)
        body = await request.read()
        received = self._record(request, body)
        self._log.append(received)
        mode = self._mode()
        if isinstance(mode, Reset | Refuse):
            # A request already in flight when refusing starts is cut off like a reset one.
            _reset_connection(request)
            return web.Response()  # never sent: aiohttp drops writes to an aborted connection
        if isinstance(mode, Status):
            return self._status_error(mode)
        if isinstance(mode, Slow):
            await asyncio.sleep(mode.seconds)
        return await self._route(request, received)

    def _metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        """Scrapes are not recorded (a picker scrapes every few ms); only connection faults apply to them."""
        if isinstance(self._mode(), Reset | Refuse):
            _reset_connection(request)
            return web.Response()
        text = prometheus_text(self._load(), model=self._model)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    def _record(self, request: web.BaseRequest, body: bytes) -> ReceivedRequest:
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        sock = transport.get_extra_info("socket") if transport is not None else None
        return ReceivedRequest(
            method=request.method,
            path=request.path,
            query=MultiDictProxy(MultiDict(request.query)),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            body=body,
            json=parsed,
            chunked="chunked" in request.headers.get("transfer-encoding", "").lower(),
            tls=ssl_object is not None,
            sni=self._server_names.get(ssl_object) if ssl_object is not None else None,
            tcp_nodelay=sock is not None and bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)),
            received_at=time.monotonic(),
        )

    async def _route(self, request: web.BaseRequest, received: ReceivedRequest) -> web.StreamResponse:
        path = request.path
        if request.method == "GET" and path.endswith("/v1/models"):
            return self._json(
                HTTPStatus.OK,
                {"object": "list", "data": [{"id": self._model, "object": "model", "owned_by": self._name}]},
            )
        if request.method == "POST" and path.endswith("/audio/transcriptions"):
            asked = _form_field(received, "model")
            return self._json(HTTPStatus.OK, {"text": f"{self._name},{self._model},{asked or '-'}"})
        chat = path.endswith("/chat/completions")
        if request.method == "POST" and (chat or path.endswith("/v1/completions")):
            if not isinstance(received.json, dict):
                return self._error(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
            return await self._complete(request, received.json, chat=chat)
        return self._error(HTTPStatus.NOT_FOUND, f"Invalid URL ({request.method} {path})")

    async def _complete(
        self, request: web.BaseRequest, body: dict[str, Any], *, chat: bool
    ) -> web.StreamResponse:
        asked = body.get("model")
        content = f"{self._name},{self._model},{asked if isinstance(asked, str) and asked else '-'}"
        # Split at the commas so a streamed answer really arrives in several chunks.
        parts = content.split(",")
        pieces = [part + "," for part in parts[:-1]] + parts[-1:]
        prompt = body.get("messages") if chat else body.get("prompt")
        usage = {
            "prompt_tokens": _count_words(prompt),
            "completion_tokens": len(pieces),
            "total_tokens": _count_words(prompt) + len(pieces),
        }
        head = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{self._name}-{next(self._ids)}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self._model,
        }
        if body.get("stream") is True:
            include_usage = isinstance(body.get("stream_options"), dict) and bool(
                body["stream_options"].get("include_usage")
            )
            usage_event = usage if include_usage else None
            return await self._stream(request, head, pieces, usage_event, chat=chat)
        choice = _choice(content, "stop", chat=chat, streamed=False)
        return self._json(HTTPStatus.OK, {**head, "choices": [choice], "usage": usage})

    async def _stream(
        self,
        request: web.BaseRequest,
        head: dict[str, Any],
        pieces: list[str],
        usage: dict[str, int] | None,
        *,
        chat: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
                BACKEND_HEADER: self._name,
            }
        )
        await response.prepare(request)
        chunk_head = {**head, "object": "chat.completion.chunk" if chat else "text_completion"}
        choices = [_choice(piece, None, chat=chat, streamed=True) for piece in pieces]
        choices.append(_choice("", "stop", chat=chat, streamed=True))
        if chat:
            choices[0]["delta"]["role"] = "assistant"
        events = [{**chunk_head, "choices": [choice]} for choice in choices]
        if usage is not None:
            events.append({**chunk_head, "choices": [], "usage": usage})
        for index, event in enumerate(events):
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            mode = self._mode()
            if index == 0 and isinstance(mode, StallStream):
                await asyncio.sleep(mode.seconds)
            if index == 0 and isinstance(mode, HoldStream) and not mode.after_done:
                await asyncio.to_thread(mode.release.wait, mode.max_hold_seconds)
        await response.write(_SSE_DONE)
        mode = self._mode()
        if isinstance(mode, HoldStream) and mode.after_done:
            await asyncio.to_thread(mode.release.wait, mode.max_hold_seconds)
        await response.write_eof()
        return response

    def _status_error(self, mode: Status) -> web.Response:
        response = self._error(
            HTTPStatus(mode.code), f"fake backend {self._name} is set to answer {mode.code}"
        )
        if mode.code == HTTPStatus.TOO_MANY_REQUESTS:
            response.headers["retry-after"] = str(mode.retry_after)
        return response

    def _error(self, status: HTTPStatus, message: str) -> web.Response:
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            kind = "rate_limit_error"
        elif status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            kind = "server_error"
        else:
            kind = "invalid_request_error"
        code = status.phrase.lower().replace(" ", "_").replace("-", "_")
        return self._json(status, {"error": {"message": message, "type": kind, "code": code}})

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> web.Response:
        return web.json_response(payload, status=status, headers={BACKEND_HEADER: self._name})


def _choice(text: str, finish_reason: str | None, *, chat: bool, streamed: bool) -> dict[str, Any]:
    if not chat:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    if not streamed:
        return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}
    delta = {} if finish_reason is not None else {"content": text}
    return {"index": 0, "delta": delta, "finish_reason": finish_reason}


def _form_field(received: ReceivedRequest, name: str) -> str | None:
    """A text field of a ``multipart/form-data`` body (a transcription's ``model``)."""
    content_type = received.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return None
    form = email.message_from_bytes(b"content-type: " + content_type.encode() + b"\r\n\r\n" + received.body)
    for part in form.walk():
        if part.get_param("name", header="content-disposition") == name:
            payload = part.get_payload(decode=True)
            return payload.decode() if isinstance(payload, bytes) else None
    return None


def _count_words(prompt: Any) -> int:
    """A stand-in for token counting: whitespace-separated words of every string in the prompt."""
    if isinstance(prompt, str):
        return len(prompt.split())
    if isinstance(prompt, list):
        return sum(_count_words(item) for item in prompt)
    if isinstance(prompt, dict):
        return _count_words(prompt.get("content"))
    return 0


def _reset_connection(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 makes close() send RST instead of FIN: the peer sees a reset, not an orderly close.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
