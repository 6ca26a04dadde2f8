"""AWS event-stream frames as Bedrock's ``InvokeModelWithResponseStream`` sends them, for the fake Bedrock.

The hop turns these frames into server-sent events (``xds.translator.filters.bedrock_stream``); the fake must
send what Bedrock sends for that to prove anything: the binary encoding with both CRCs, string headers
(``:event-type``, ``:content-type``, ``:message-type``), and per Anthropic event a JSON payload whose
``bytes`` is the base64 of the event's JSON (plus Bedrock's ``p`` padding field). An exception mid-stream
is a frame of ``:message-type`` ``exception`` whose payload holds the ``message``.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any, Final

CONTENT_TYPE: Final = "application/vnd.amazon.eventstream"
_STRING_VALUE = 7
"""The header value type of a UTF-8 string."""
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEF"


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths and their CRC32), headers, payload, message CRC32."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name.encode() + struct.pack("!BH", _STRING_VALUE, len(value)) + value
        for name, value in ((name, value.encode()) for name, value in headers.items())
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def anthropic_event_frame(event: dict[str, Any]) -> bytes:
    """The frame Bedrock wraps one Anthropic stream event in."""
    data = json.dumps(event, separators=(",", ":")).encode()
    # Bedrock pads with letters in "p" so that frame sizes do not reveal the text's length.
    payload = {"bytes": base64.b64encode(data).decode(), "p": _PADDING[: len(data) % len(_PADDING)]}
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(payload).encode())


def exception_frame(exception: str, message: str) -> bytes:
    """The frame Bedrock ends a failing stream with (``throttlingException``, ``modelStreamErrorException``,
    ...)."""
    headers = {
        ":exception-type": exception,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, json.dumps({"message": message}).encode())
