"""Ask every streamed chat completion for its usage (``stream_options.include_usage``), as upstream does.

An OpenAI-compatible server reports the usage of a stream only when asked; without it a streamed request
would cost nothing and count nowhere (``filters.token_usage``). The body check records the body's ``stream``
and ``model_header.stream_header_filter`` copies it into a header (``STREAM_HEADER``, the client's own removed
first); a Lua filter (``json_member``, which edits the body in place), wrapped in ``match_delegate`` so that
it runs only when that header is ``true``, sets the body's ``stream_options`` to ``{"include_usage": true}``
(a non-streaming request must not carry ``stream_options``: OpenAI refuses it; nor must a request of
Anthropic's own API, on ``ir.ANTHROPIC_CLIENT_PATH``). The client then gets
one more chunk, with empty ``choices`` and the usage, which OpenAI's SDKs expect. Transcoded backends need
nothing: the transcoder puts the provider's usage in the last chunk.
"""

from __future__ import annotations

import json
from typing import Any

from envoy.config.core.v3 import base_pb2, extension_pb2
from envoy.extensions.common.matching.v3 import extension_matcher_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from xds.type.matcher.v3 import matcher_pb2, string_pb2

from controlplane import ir
from controlplane.xds.translator.filters.json_member import KnownBody, set_member_script
from controlplane.xds.translator.filters.request_matching import request_header_is, skip_unless
from controlplane.xds.translator.messages import pack

_INCLUDE_USAGE = {"include_usage": True}
"""A stream's ``stream_options``: the client's own, if any, is replaced whole (as the transform filter's
merge, which this replaced, did)."""
STREAM_HEADER = "x-ai-eg-stream"
"""The request body's ``stream`` (``true`` for a streamed request), set by
``model_header.stream_header_filter``."""


def include_usage_filter() -> Any:
    # The stream header is true only where the body check read a JSON body.
    script = set_member_script(
        key="stream_options",
        value=f"'{json.dumps(_INCLUDE_USAGE, separators=(',', ':'))}'",
        known_body=KnownBody.JSON,
    )
    lua = lua_pb2.Lua(default_source_code=base_pb2.DataSource(inline_string=script))
    predicate = matcher_pb2.Matcher.MatcherList.Predicate
    anthropic_client = request_header_is(":path", string_pb2.StringMatcher(prefix=ir.ANTHROPIC_CLIENT_PATH))
    openai_stream = predicate(
        and_matcher=predicate.PredicateList(
            predicate=[
                request_header_is(STREAM_HEADER, string_pb2.StringMatcher(exact="true")),
                # Anthropic's own API (its clients' path) has no stream_options.
                predicate(not_matcher=anthropic_client),
            ]
        )
    )
    only_streams = skip_unless(openai_stream)
    config = extension_matcher_pb2.ExtensionWithMatcher(
        xds_matcher=only_streams,
        extension_config=extension_pb2.TypedExtensionConfig(
            name="envoy.filters.http.lua", typed_config=pack(lua)
        ),
    )
    return hcm.HttpFilter(name="envoy.filters.http.match_delegate", typed_config=pack(config))
