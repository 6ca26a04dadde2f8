"""Envoy's AI Protocol Manager with two transcoders: a hop's OpenAI request in the provider's API, and back.

The two transcoders go through OpenAI Chat Completions, the canonical form (client API -> canonical on the
way in, canonical -> provider API); the APIs themselves come from the hop route's per-route config, so the
filter is the same in every hop; a route for clients of the provider's own API disables it. What Envoy 1.40
does with it is written down in ``gatewayapi.providers``.
``xds-protos`` has none of these messages: they travel as ``xds.type.v3.TypedStruct``, which Envoy converts
into the named message (and validates) like any typed config.
"""

from __future__ import annotations

import re
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.type.matcher.v3 import regex_pb2
from google.protobuf import struct_pb2
from xds.type.v3 import typed_struct_pb2

from controlplane import ir
from controlplane.xds.translator.messages import pack
from controlplane.xds.translator.provider_paths import model_path_routes

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


def transcoded_routes(base: Any, transcoding: ir.Transcoding, *, model_override: str | None) -> list[Any]:
    """The hop's routes for a provider: ``base`` (the hop's route) converted from OpenAI's API, preceded by
    one for clients of the provider's own API (``native_prefix``) that goes through as it is.
    ``model_override`` is the backendRef's (a ``model_path`` names it instead of the client's model)."""
    defaults = [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=name, value=value.replace("%", "%%")),
            append_action=base_pb2.HeaderValueOption.ADD_IF_ABSENT,
        )
        for name, value in transcoding.default_headers
    ]
    converted = rc.Route()
    converted.CopyFrom(base)
    # Applied by the router, after the transcoder: the provider's path for the path it left.
    converted.route.regex_rewrite.CopyFrom(
        regex_pb2.RegexMatchAndSubstitute(
            pattern=regex_pb2.RegexMatcher(regex=transcoding.path_pattern),
            substitution=transcoding.path_substitution,
        )
    )
    config = {"request": {"llm_protocol": CLIENT_API}, "response": {"llm_protocol": transcoding.api.value}}
    converted.typed_per_filter_config[TRANSCODER_FILTER].CopyFrom(typed_struct(_PER_ROUTE, config))
    # The transcoder cannot read a compressed response.
    converted.request_headers_to_remove.append("accept-encoding")
    _add_first(converted, defaults)
    bases = {f"{ir.OPENAI_PATH_PREFIX}/chat/completions": converted}
    prefix = transcoding.native_prefix
    if prefix is not None:
        native = rc.Route()
        native.CopyFrom(base)
        native.name = f"{base.name}/native"
        native.match.prefix = prefix
        native.route.regex_rewrite.CopyFrom(
            regex_pb2.RegexMatchAndSubstitute(
                pattern=regex_pb2.RegexMatcher(regex=f"^{re.escape(prefix)}"),
                substitution=transcoding.native_substitution,
            )
        )
        native.typed_per_filter_config[TRANSCODER_FILTER].CopyFrom(pack(rc.FilterConfig(disabled=True)))
        _add_first(native, defaults)
        bases = {prefix: native, **bases}
    if transcoding.model_path is not None:
        return model_path_routes(bases, transcoding.model_path, name=base.name, model_override=model_override)
    return list(bases.values())


def _add_first(route: Any, headers: list[Any]) -> None:
    """Before the route's own headers, so that those the user sets win."""
    own = list(route.request_headers_to_add)
    del route.request_headers_to_add[:]
    route.request_headers_to_add.extend([*headers, *own])


def typed_struct(type_url: str, value: dict[str, Any]) -> Any:
    """A config of a type ``xds-protos`` lacks, for Envoy to convert into ``type_url``'s message."""
    fields = struct_pb2.Struct()
    fields.update(value)
    return pack(typed_struct_pb2.TypedStruct(type_url=type_url, value=fields))
