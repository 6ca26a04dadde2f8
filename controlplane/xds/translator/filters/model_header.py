"""The model header (``ir.MODEL_HEADER``): never the client's, and set from the request body's ``model``.

Envoy AI Gateway reads the body's model in an external processor and routes on the header. Here the body is
parsed once, natively, by the body check's ``json_to_metadata`` filter (``body_check``), which records the
model in the dynamic metadata; a route matching on the model header matches that metadata instead
(``model_metadata_match``) and sets the header from it for the backend (``MODEL_FROM_BODY``). Routes are
picked after the filter has read the body (the first lookup of the route comes later, and the multipart reader
clears it when it sets the model). A value the client sent itself is removed before any filter runs
(``without_model_header``, for every request whatever its body), so a client cannot pick a route or tell the
backend a model its body does not name.

The same parse records the body's ``stream``; ``stream_header_filter`` turns it into ``STREAM_HEADER``, which
the stream usage filter and the hops of providers with their own streaming paths read (a header, because it
must cross into a hop, where dynamic metadata does not follow). A client's own is removed with the model's.
"""

from __future__ import annotations

from typing import Any

from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2 as header_mutation_filter_pb2
from envoy.extensions.filters.http.json_to_metadata.v3 import json_to_metadata_pb2 as json_to_metadata
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.http.early_header_mutation.header_mutation.v3 import header_mutation_pb2
from envoy.type.matcher.v3 import metadata_pb2, value_pb2

from controlplane.ir import MODEL_HEADER
from controlplane.xds.translator.filters.stream_usage import STREAM_HEADER
from controlplane.xds.translator.messages import overwritten_header, pack

MODEL_NAMESPACE = "io.envoy.ai_gateway"
"""The dynamic metadata namespace the body's model is recorded in (and the body check's verdict)."""
MODEL_KEY = "model"
MODEL_FROM_BODY = f"%DYNAMIC_METADATA({MODEL_NAMESPACE}:{MODEL_KEY})%"
"""The body's model as a header value format string (empty, so no header, when the body names none)."""
STREAM_KEY = "stream"


def without_model_header() -> Any:
    """The connection manager's early header mutation removing a client-sent model (and stream) header."""
    config = header_mutation_pb2.HeaderMutation(
        mutations=[
            mutation_rules_pb2.HeaderMutation(remove=MODEL_HEADER),
            mutation_rules_pb2.HeaderMutation(remove=STREAM_HEADER),
        ]
    )
    return extension_pb2.TypedExtensionConfig(
        name="envoy.http.early_header_mutation.header_mutation", typed_config=pack(config)
    )


def stream_rule() -> Any:
    """The ``json_to_metadata`` rule recording the body's ``stream``."""
    return json_to_metadata.JsonToMetadata.Rule(
        selectors=[json_to_metadata.JsonToMetadata.Selector(key=STREAM_KEY)],
        on_present=json_to_metadata.JsonToMetadata.KeyValuePair(
            metadata_namespace=MODEL_NAMESPACE, key=STREAM_KEY
        ),
    )


def stream_metadata_filter() -> Any:
    """A hop's own record of the body's ``stream``, first in its chain so that its route, picked after the
    body is read, can match it (``streamed_match``): the public listener's stream header stops at its
    route."""
    config = json_to_metadata.JsonToMetadata(
        request_rules=json_to_metadata.JsonToMetadata.MatchRules(rules=[stream_rule()])
    )
    return hcm.HttpFilter(name="envoy.filters.http.json_to_metadata", typed_config=pack(config))


def streamed_match() -> Any:
    """A route's match on a streamed request (the body's ``stream`` is ``true``)."""
    return metadata_pb2.MetadataMatcher(
        filter=MODEL_NAMESPACE,
        path=[metadata_pb2.MetadataMatcher.PathSegment(key=STREAM_KEY)],
        value=value_pb2.ValueMatcher(bool_match=True),
    )


def stream_header_filter() -> Any:
    """``STREAM_HEADER`` from the body's ``stream`` (``true`` for a streamed request; absent otherwise)."""
    config = header_mutation_filter_pb2.HeaderMutation(
        mutations=header_mutation_filter_pb2.Mutations(
            request_mutations=[
                mutation_rules_pb2.HeaderMutation(
                    append=overwritten_header(
                        STREAM_HEADER, f"%DYNAMIC_METADATA({MODEL_NAMESPACE}:{STREAM_KEY})%"
                    )
                )
            ]
        )
    )
    return hcm.HttpFilter(name="envoy.filters.http.header_mutation", typed_config=pack(config))


def model_metadata_match(value: Any) -> Any:
    """A route's match on the body's model, given a ``StringMatcher``."""
    return metadata_pb2.MetadataMatcher(
        filter=MODEL_NAMESPACE,
        path=[metadata_pb2.MetadataMatcher.PathSegment(key=MODEL_KEY)],
        value=value_pb2.ValueMatcher(string_match=value),
    )
