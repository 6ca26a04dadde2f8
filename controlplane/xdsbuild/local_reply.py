"""OpenAI-style JSON bodies for the errors Envoy itself generates (no healthy backend, timeouts, ...).

OpenAI clients parse ``{"error": {...}}``; Envoy's default plain-text local replies break them. The body
format applies to every local reply; the route-level 404 catch-all already answers JSON on its own.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import substitution_format_string_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import struct_pb2


def openai_error_replies() -> Any:
    body = struct_pb2.Struct()
    body.update(
        {
            "error": {
                "message": "%LOCAL_REPLY_BODY%",
                "type": "gateway_error",
                "code": "%RESPONSE_CODE%",
                "details": "%RESPONSE_CODE_DETAILS%",
            }
        }
    )
    return hcm.LocalReplyConfig(
        body_format=substitution_format_string_pb2.SubstitutionFormatString(
            json_format=body, content_type="application/json"
        )
    )
