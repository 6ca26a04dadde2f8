"""The Anthropic body Vertex AI and Bedrock take: Messages API fields, ``anthropic_version``, no ``model``.

Their Claude endpoints (``rawPredict``, ``invoke``) name the model in the path and refuse it in the body, and
want the API version as the body's ``anthropic_version``. The transcoder emits Anthropic's own body (with
``model``); this ``transform`` filter, after it in the hop, replaces that body with a copy of each Messages
API field the transcoder can emit plus ``anthropic_version``. Verified on Envoy 1.40: the filter sees the
transcoded body; ``%REQUEST_BODY(field)%`` keeps the field's JSON type (arrays, objects, numbers, ``0`` and
``false``); a field the body lacks renders as null, which ``omit_empty_values`` drops. ``MERGE`` cannot
drop ``model`` (a null merges in as ``"model": null``).
"""

from __future__ import annotations

from typing import Any, Final

from envoy.config.core.v3 import substitution_format_string_pb2
from envoy.extensions.filters.http.transform.v3 import transform_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import struct_pb2

from controlplane.xds.translator.messages import pack

MESSAGES_FIELDS: Final = (
    "max_tokens",
    "messages",
    "metadata",
    "stop_sequences",
    "stream",
    "system",
    "temperature",
    "thinking",
    "tool_choice",
    "tools",
    "top_k",
    "top_p",
)
"""The Messages API request fields other than ``model`` (what the transcoder fills from OpenAI's)."""


def anthropic_body_filter(*, version: str, with_stream: bool) -> Any:
    """``with_stream`` False drops ``stream`` too (Bedrock refuses the key: its path names the method)."""
    fields = struct_pb2.Struct()
    kept = [name for name in MESSAGES_FIELDS if with_stream or name != "stream"]
    fields.update({name: f"%REQUEST_BODY({name})%" for name in kept})
    # The body is a format string: a literal "%" in the version must be escaped.
    fields.update({"anthropic_version": version.replace("%", "%%")})
    config = transform_pb2.TransformConfig(
        request_transformation=transform_pb2.Transformation(
            body_transformation=transform_pb2.BodyTransformation(
                body_format=substitution_format_string_pb2.SubstitutionFormatString(
                    json_format=fields, omit_empty_values=True
                ),
                action=transform_pb2.BodyTransformation.REPLACE,
            )
        )
    )
    return hcm.HttpFilter(name="envoy.filters.http.transform", typed_config=pack(config))
