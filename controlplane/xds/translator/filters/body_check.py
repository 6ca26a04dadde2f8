"""Read a JSON request's ``model`` into the dynamic metadata, and mark a body that does not parse.

Envoy's ``json_to_metadata`` filter parses the body natively (no Python in the request path), once: it records
the body's ``model`` for the routes that match on it (``model_header``) and its ``stream``, and when a JSON
request's body does not parse it sets one marker instead, which the first route of every virtual host matches
(``invalid_body_route``) to answer 400 in OpenAI's error JSON, as Envoy AI Gateway refuses such a request
(otherwise it would fall through to whatever rule matches no model). A request is JSON when its content type
names ``application/json`` anywhere (``application/json; charset=utf-8`` too), as for the transform filter.
"""

from __future__ import annotations

import re
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.json_to_metadata.v3 import json_to_metadata_pb2 as json_to_metadata
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.type.matcher.v3 import metadata_pb2, regex_pb2, string_pb2, value_pb2
from google.protobuf import struct_pb2

from controlplane.xds.translator.filters.model_header import MODEL_KEY, MODEL_NAMESPACE, stream_rule
from controlplane.xds.translator.messages import pack

_KEY = "request_body"
_INVALID = "invalid_json"
INVALID_BODY_ROUTE = "route-invalid-body"
_JSON = "application/json"
INVALID_BODY_MESSAGE = "malformed request: the request body is not valid JSON"


def body_check_filter() -> Any:
    marker = json_to_metadata.JsonToMetadata.KeyValuePair(
        metadata_namespace=MODEL_NAMESPACE, key=_KEY, value=struct_pb2.Value(string_value=_INVALID)
    )
    config = json_to_metadata.JsonToMetadata(
        request_rules=json_to_metadata.JsonToMetadata.MatchRules(
            rules=[
                json_to_metadata.JsonToMetadata.Rule(
                    selectors=[json_to_metadata.JsonToMetadata.Selector(key=MODEL_KEY)],
                    on_present=json_to_metadata.JsonToMetadata.KeyValuePair(
                        metadata_namespace=MODEL_NAMESPACE, key=MODEL_KEY
                    ),
                    on_error=marker,
                ),
                # For the stream header (``model_header.stream_header_filter``).
                stream_rule(),
            ],
            allow_content_types=[_JSON],
            allow_content_types_regex=regex_pb2.RegexMatcher(regex=f".*{re.escape(_JSON)}.*"),
        )
    )
    return hcm.HttpFilter(name="envoy.filters.http.json_to_metadata", typed_config=pack(config))


def invalid_body_route() -> Any:
    """First in every virtual host: a POST the filter marked gets a 400 (OpenAI's error JSON, by the
    listener's local reply config)."""
    marked = metadata_pb2.MetadataMatcher(
        filter=MODEL_NAMESPACE,
        path=[metadata_pb2.MetadataMatcher.PathSegment(key=_KEY)],
        value=value_pb2.ValueMatcher(string_match=string_pb2.StringMatcher(exact=_INVALID)),
    )
    return rc.Route(
        name=INVALID_BODY_ROUTE,
        match=rc.RouteMatch(
            prefix="/",
            headers=[
                rc.HeaderMatcher(name=":method", string_match=string_pb2.StringMatcher(exact="POST")),
                # The filter marks a request of another content type too (multipart): not a JSON request.
                rc.HeaderMatcher(
                    name="content-type",
                    string_match=string_pb2.StringMatcher(prefix=_JSON, ignore_case=True),
                ),
            ],
            dynamic_metadata=[marked],
        ),
        direct_response=rc.DirectResponseAction(status=400, body={"inline_string": INVALID_BODY_MESSAGE}),
    )
