"""Ask every streamed chat completion for its usage (``stream_options.include_usage``), as upstream does.

An OpenAI-compatible server reports the usage of a stream only when asked; without it a streamed request
would cost nothing and count nowhere (``filters.token_usage``). The body check records the body's ``stream``
and ``model_header.stream_header_filter`` copies it into a header (``STREAM_HEADER``, the client's own removed
first); a Lua script (``json_member``, which edits the body in place), in a filter wrapped in
``match_delegate`` so that it runs only when that header is ``true`` (or for a multipart form: the filter is
shared, ``multipart_model``), sets the body's ``stream_options`` to ``{"include_usage": true}`` (a
non-streaming request must not carry ``stream_options``: OpenAI refuses it; nor must a request of
Anthropic's own API, on ``ir.ANTHROPIC_CLIENT_PATH``). The client then gets one more chunk, with empty
``choices`` and the usage, which OpenAI's SDKs expect. Transcoded backends need
nothing: the transcoder puts the provider's usage in the last chunk.
"""

from __future__ import annotations

import json
from typing import Any

from xds.type.matcher.v3 import matcher_pb2, string_pb2

from controlplane import ir
from controlplane.xds.translator.filters.json_member import KnownBody, set_member_script
from controlplane.xds.translator.filters.request_matching import request_header_is

_INCLUDE_USAGE = {"include_usage": True}
"""A stream's ``stream_options``: the client's own, if any, is replaced whole (as the transform filter's
merge, which this replaced, did)."""
STREAM_HEADER = "x-ai-eg-stream"
"""The request body's ``stream`` (``true`` for a streamed request), set by
``model_header.stream_header_filter``."""


ASK_USAGE_FUNCTION = "ask_stream_usage"
"""The function of ``ask_usage_script`` taking the request."""


def ask_usage_script() -> str:
    """Lua defining ``ASK_USAGE_FUNCTION``, which sets a JSON body's ``stream_options`` (run it only where
    ``is_openai_stream`` holds)."""
    return set_member_script(
        key="stream_options",
        value=f"'{json.dumps(_INCLUDE_USAGE, separators=(',', ':'))}'",
        # The stream header is true only where the body check read a JSON body.
        known_body=KnownBody.JSON,
        entry_function=ASK_USAGE_FUNCTION,
    )


def is_openai_stream() -> Any:
    """Holds for a streamed request of an OpenAI API."""
    predicate = matcher_pb2.Matcher.MatcherList.Predicate
    anthropic_client = request_header_is(":path", string_pb2.StringMatcher(prefix=ir.ANTHROPIC_CLIENT_PATH))
    return predicate(
        and_matcher=predicate.PredicateList(
            predicate=[
                request_header_is(STREAM_HEADER, string_pb2.StringMatcher(exact="true")),
                # Anthropic's own API (its clients' path) has no stream_options.
                predicate(not_matcher=anthropic_client),
            ]
        )
    )
