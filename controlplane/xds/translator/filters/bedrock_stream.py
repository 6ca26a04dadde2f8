"""Claude's stream on Bedrock as Anthropic's server-sent events, in Envoy: a Lua filter in the hop.

Bedrock's ``invoke-with-response-stream`` answers ``application/vnd.amazon.eventstream``: binary frames,
each with a JSON payload whose ``bytes`` is the base64 of one Anthropic stream event's JSON. Envoy 1.40 has
nothing native that rewrites them (``aws_eventstream_parser`` only copies values into dynamic metadata;
``gatewayapi.providers`` has the verdicts), so this Lua filter (``bedrock_event_stream.lua``) turns each
frame into ``event: <type>`` / ``data: <json>``, the stream Anthropic's own API sends, which the transcoder
then converts to OpenAI's chunks (and which clients of Anthropic's own API read as it is).

Verified on the 1.40 binary: in ``envoy_on_response``, headers changed before ``bodyChunks()`` leave with
the first chunk (content type ``text/event-stream``, no length), and ``chunk:setBytes`` replaces each chunk
in place as it arrives: the stream is not buffered; a chunk that ends inside a frame is replaced by the
events before it and the rest waits for the next chunk. CRCs are checked (AWS's own decoder does): after a
frame that cannot be read the stream ends with an Anthropic ``error`` event, as does a Bedrock exception
frame (throttling, a model error), with the exception's type and message.

Placement: after the transcoder in the hop's filters, so responses meet it first (they run in reverse). The
filter holds the source under a name and no default source; only the hop's streamed Bedrock routes name it
(``LuaPerRoute``, ``enabled_on``), so on every other route the filter has no script and does nothing. (A
filter marked ``disabled`` and enabled per route does not work here: Envoy decides which filters to create
from the route picked on the request's headers, and the streamed route is picked later, once the stream
metadata filter has read the body; verified on 1.40.) The source is a constant of this package: nothing of
a backend's (keys, model, names) is ever in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm

from controlplane.xds.translator.messages import pack

BEDROCK_STREAM_FILTER: Final = "ai-gateway.bedrock-event-stream"
"""The filter's name in the hop (what a route's per-filter config turns on)."""
LUA_SOURCE: Final = Path(__file__).with_name("bedrock_event_stream.lua").read_text(encoding="utf-8")


_SOURCE_NAME = "bedrock-event-stream"


def bedrock_stream_filter() -> Any:
    lua = lua_pb2.Lua(source_codes={_SOURCE_NAME: base_pb2.DataSource(inline_string=LUA_SOURCE)})
    return hcm.HttpFilter(name=BEDROCK_STREAM_FILTER, typed_config=pack(lua))


def enabled_on(route: Any) -> None:
    """Runs the source on ``route`` (a streamed Bedrock call), which must not ask for a compressed answer:
    the filter reads frames, not gzip (the transcoded route drops ``accept-encoding`` already, the route of
    Anthropic's own clients would pass theirs on)."""
    route.typed_per_filter_config[BEDROCK_STREAM_FILTER].CopyFrom(
        pack(lua_pb2.LuaPerRoute(name=_SOURCE_NAME))
    )
    if "accept-encoding" not in route.request_headers_to_remove:
        route.request_headers_to_remove.append("accept-encoding")
