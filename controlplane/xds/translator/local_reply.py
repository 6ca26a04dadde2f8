"""OpenAI-style JSON bodies for every reply Envoy generates itself (no route, no healthy backend, timeout).

OpenAI clients parse ``{"error": {...}}``; Envoy's default plain-text local replies break them. Direct
responses (the catch-all 404) are local replies too, so they carry only their message text and get the same
envelope as Envoy's own errors: one JSON shape for every error the gateway produces. A successful direct
response (``GET /v1/models``) carries its JSON body whole and keeps it.
"""

from __future__ import annotations

from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import struct_pb2


def openai_error_replies(*, direct_success: bool) -> Any:
    """``direct_success``: the routes answer a success directly (the public listeners' model list)."""
    mappers = []
    if direct_success:
        # A successful direct response (the model list) is JSON already: sent as is.
        mappers.append(
            hcm.ResponseMapper(
                filter=_status(accesslog_pb2.ComparisonFilter.LE, 399, runtime_key="success"),
                body_format_override=substitution_format_string_pb2.SubstitutionFormatString(
                    text_format_source=base_pb2.DataSource(inline_string="%LOCAL_REPLY_BODY%"),
                    content_type="application/json",
                ),
            )
        )
    mappers.append(
        hcm.ResponseMapper(
            filter=_status(accesslog_pb2.ComparisonFilter.GE, 500, runtime_key="server_error"),
            body_format_override=_error_format(error_type="server_error"),
        )
    )
    return hcm.LocalReplyConfig(
        mappers=mappers, body_format=_error_format(error_type="invalid_request_error")
    )


def _status(op: Any, code: int, *, runtime_key: str) -> Any:
    return accesslog_pb2.AccessLogFilter(
        status_code_filter=accesslog_pb2.StatusCodeFilter(
            comparison=accesslog_pb2.ComparisonFilter(
                op=op,
                value=base_pb2.RuntimeUInt32(
                    default_value=code, runtime_key=f"ai_gateway.local_reply.{runtime_key}"
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
