"""OpenAI-style JSON bodies for every reply Envoy generates itself (no route, no healthy backend, timeout).

OpenAI clients parse ``{"error": {...}}``; Envoy's default plain-text local replies break them. Direct
responses (the catch-all 404) are local replies too, so they carry only their message text and get the same
envelope as Envoy's own errors: one JSON shape for every error the gateway produces.
"""

from __future__ import annotations

from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import struct_pb2


def openai_error_replies() -> Any:
    return hcm.LocalReplyConfig(
        mappers=[
            hcm.ResponseMapper(
                filter=_status_at_least(500), body_format_override=_error_format(error_type="server_error")
            )
        ],
        body_format=_error_format(error_type="invalid_request_error"),
    )


def _status_at_least(code: int) -> Any:
    return accesslog_pb2.AccessLogFilter(
        status_code_filter=accesslog_pb2.StatusCodeFilter(
            comparison=accesslog_pb2.ComparisonFilter(
                op=accesslog_pb2.ComparisonFilter.GE,
                value=base_pb2.RuntimeUInt32(
                    default_value=code, runtime_key="ai_gateway.local_reply.server_error"
                ),
            )
        )
    )


def _error_format(*, error_type: str) -> Any:
    body = struct_pb2.Struct()
    body.update(
        {"error": {"message": "%LOCAL_REPLY_BODY%", "type": error_type, "code": "%RESPONSE_CODE_DETAILS%"}}
    )
    return substitution_format_string_pb2.SubstitutionFormatString(
        json_format=body, content_type="application/json"
    )
