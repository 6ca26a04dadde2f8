"""The model header (``ir.MODEL_HEADER``): never the client's, and set from the request body's ``model``.

Envoy AI Gateway reads the body's model in an external processor and routes on the header. Here the body is
parsed once, natively, by the body check's ``json_to_metadata`` filter (``body_check``), which records the
model in the dynamic metadata; a route matching on the model header matches that metadata instead
(``model_metadata_match``) and sets the header from it for the backend (``MODEL_FROM_BODY``). Routes are
picked after the filter has read the body (the first lookup of the route comes later, and the multipart reader
clears it when it sets the model). A value the client sent itself is removed before any filter runs
(``without_model_header``, for every request whatever its body), so a client cannot pick a route or tell the
backend a model its body does not name.
"""

from __future__ import annotations

from typing import Any

from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.extensions.http.early_header_mutation.header_mutation.v3 import header_mutation_pb2
from envoy.type.matcher.v3 import metadata_pb2, value_pb2

from controlplane.ir import MODEL_HEADER
from controlplane.xds.translator.messages import pack

MODEL_NAMESPACE = "io.envoy.ai_gateway"
"""The dynamic metadata namespace the body's model is recorded in (and the body check's verdict)."""
MODEL_KEY = "model"
MODEL_FROM_BODY = f"%DYNAMIC_METADATA({MODEL_NAMESPACE}:{MODEL_KEY})%"
"""The body's model as a header value format string (empty, so no header, when the body names none)."""


def without_model_header() -> Any:
    """The connection manager's early header mutation removing a client-sent model header."""
    config = header_mutation_pb2.HeaderMutation(
        mutations=[mutation_rules_pb2.HeaderMutation(remove=MODEL_HEADER)]
    )
    return extension_pb2.TypedExtensionConfig(
        name="envoy.http.early_header_mutation.header_mutation", typed_config=pack(config)
    )


def model_metadata_match(value: Any) -> Any:
    """A route's match on the body's model, given a ``StringMatcher``."""
    return metadata_pb2.MetadataMatcher(
        filter=MODEL_NAMESPACE,
        path=[metadata_pb2.MetadataMatcher.PathSegment(key=MODEL_KEY)],
        value=value_pb2.ValueMatcher(string_match=value),
    )
