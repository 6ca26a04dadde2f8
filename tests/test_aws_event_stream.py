"""The fake Bedrock's event-stream frames are what AWS's own decoder (botocore) reads: both CRCs right, the
string headers Bedrock sends, and each Anthropic event as the base64 ``bytes`` of the payload. The Lua
filter is proved against these frames through Envoy (``test_e2e_bedrock_stream``), so they must be real."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from controlplane.devtools import aws_event_stream

EVENTS: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "msg", "content": [], "usage": {"input_tokens": 3}}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 'h\u00e9llo\n"x"'}},
    {"type": "message_stop"},
]


def _decoded(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    decoder = EventStreamBuffer()
    decoder.add_data(data)
    return [(dict(message.headers), message.payload) for message in decoder]


def test_anthropic_event_frames_decode_with_awss_decoder_to_the_events() -> None:
    stream = b"".join(aws_event_stream.anthropic_event_frame(event) for event in EVENTS)
    messages = _decoded(stream)
    assert [headers for headers, _ in messages] == [
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    ] * len(EVENTS)
    assert [json.loads(base64.b64decode(json.loads(payload)["bytes"])) for _, payload in messages] == EVENTS


def test_an_exception_frame_names_the_exception_and_carries_the_message() -> None:
    ((headers, payload),) = _decoded(aws_event_stream.exception_frame("throttlingException", "slow down"))
    assert headers[":message-type"] == "exception"
    assert headers[":exception-type"] == "throttlingException"
    assert json.loads(payload) == {"message": "slow down"}


def test_a_changed_byte_fails_the_message_crc() -> None:
    frame = bytearray(aws_event_stream.anthropic_event_frame(EVENTS[-1]))
    frame[-10] ^= 1
    with pytest.raises(ChecksumMismatch):
        _decoded(bytes(frame))
