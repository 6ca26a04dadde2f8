"""Envoy's AI Protocol Manager with two transcoders: a hop's OpenAI request in the provider's API, and back.

The two transcoders go through OpenAI Chat Completions, the canonical form (client API -> canonical on the
way in, canonical -> provider API); the APIs themselves come from the hop route's per-route config, so the
filter is the same in every hop. What Envoy 1.40 does with it is written down in ``gatewayapi.providers``.
``xds-protos`` has none of these messages: they travel as ``xds.type.v3.TypedStruct``, which Envoy converts
into the named message (and validates) like any typed config.
"""

from __future__ import annotations

from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import struct_pb2
from xds.type.v3 import typed_struct_pb2

from controlplane import ir
from controlplane.xds.translator.messages import pack

TRANSCODER_FILTER = "envoy.filters.http.ai_protocol_manager"
_TYPES = "type.googleapis.com/envoy.extensions"
_MANAGER = f"{_TYPES}.filters.http.ai_protocol_manager.v3.AiProtocolManager"
_PER_ROUTE = f"{_TYPES}.filters.http.ai_protocol_manager.v3.AiProtocolManagerPerRoute"
_TRANSCODER = f"{_TYPES}.http.ai_filters.transcoder.v3.Transcoder"
CLIENT_API = "OPENAI_CHAT_COMPLETIONS"
"""What every client of our listeners speaks."""


def transcoder_filter() -> Any:
    def transcoder(request: str, response: str) -> dict[str, Any]:
        return {
            "name": "envoy.http.ai_filters.transcoder",
            "typed_config": {
                "@type": _TRANSCODER,
                "request_handling": request,
                "response_handling": response,
            },
        }

    config: dict[str, Any] = {
        "request_handling": {},
        "filters": [transcoder("TO_IR", "FROM_IR"), transcoder("FROM_IR", "TO_IR")],
    }
    return hcm.HttpFilter(name=TRANSCODER_FILTER, typed_config=typed_struct(_MANAGER, config))


def transcoder_route_config(transcoding: ir.Transcoding) -> Any:
    """The hop route's APIs: the client's request API and the provider's."""
    config = {"request": {"llm_protocol": CLIENT_API}, "response": {"llm_protocol": transcoding.api.value}}
    return typed_struct(_PER_ROUTE, config)


def typed_struct(type_url: str, value: dict[str, Any]) -> Any:
    """A config of a type ``xds-protos`` lacks, for Envoy to convert into ``type_url``'s message."""
    fields = struct_pb2.Struct()
    fields.update(value)
    return pack(typed_struct_pb2.TypedStruct(type_url=type_url, value=fields))
