"""Filters that most requests skip: the predicate on a request header and the matcher that skips the filter
unless the predicate holds (``ExtensionWithMatcher``), built once here for every filter that needs them."""

from __future__ import annotations

from typing import Any

from envoy.extensions.filters.common.matcher.action.v3 import skip_action_pb2
from envoy.type.matcher.v3 import http_inputs_pb2
from xds.core.v3 import extension_pb2 as xds_extension_pb2
from xds.type.matcher.v3 import matcher_pb2, string_pb2

from controlplane.xds.translator.messages import pack


def request_header_is(name: str, value: string_pb2.StringMatcher) -> Any:
    """Holds when the request header ``name`` matches ``value``."""
    return matcher_pb2.Matcher.MatcherList.Predicate(
        single_predicate=matcher_pb2.Matcher.MatcherList.Predicate.SinglePredicate(
            input=xds_extension_pb2.TypedExtensionConfig(
                name=name, typed_config=pack(http_inputs_pb2.HttpRequestHeaderMatchInput(header_name=name))
            ),
            value_match=value,
        )
    )


def skip_unless(predicate: Any) -> Any:
    """A matcher under which the filter runs only for requests ``predicate`` holds for."""
    skip = matcher_pb2.Matcher.OnMatch(
        action=xds_extension_pb2.TypedExtensionConfig(
            name="skip", typed_config=pack(skip_action_pb2.SkipFilter())
        )
    )
    return matcher_pb2.Matcher(
        matcher_list=matcher_pb2.Matcher.MatcherList(
            matchers=[
                matcher_pb2.Matcher.MatcherList.FieldMatcher(
                    predicate=matcher_pb2.Matcher.MatcherList.Predicate(not_matcher=predicate),
                    on_match=skip,
                )
            ]
        )
    )
