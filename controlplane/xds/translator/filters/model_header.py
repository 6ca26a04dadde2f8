"""Expose the request body's ``model`` as the model header (``ir.MODEL_HEADER``) before the route is chosen.

Envoy AI Gateway does this in an external processor; Envoy 1.40's ``transform`` filter does it natively: it
buffers the JSON body, sets the header from ``%REQUEST_BODY(model)%`` and clears the route cache so rules that
match the header are re-evaluated. A value the client sent itself is removed before any filter runs
(``without_model_header``, for every request whatever its body), so a client cannot pick a route by claiming a
model its body does not name.
"""

from __future__ import annotations

from typing import Any

from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import base_pb2, extension_pb2
from envoy.extensions.filters.http.transform.v3 import transform_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.http.early_header_mutation.header_mutation.v3 import header_mutation_pb2

from controlplane.ir import MODEL_HEADER
from controlplane.xds.translator.messages import pack


def model_header_filter() -> Any:
    config = transform_pb2.TransformConfig(
        clear_route_cache=True,
        request_transformation=transform_pb2.Transformation(
            headers_mutations=[
                mutation_rules_pb2.HeaderMutation(remove=MODEL_HEADER),
                mutation_rules_pb2.HeaderMutation(
                    append=base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(key=MODEL_HEADER, value="%REQUEST_BODY(model)%"),
                        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                    )
                ),
            ]
        ),
    )
    return hcm.HttpFilter(name="envoy.filters.http.transform", typed_config=pack(config))


def without_model_header() -> Any:
    """The connection manager's early header mutation removing a client-sent model header."""
    config = header_mutation_pb2.HeaderMutation(
        mutations=[mutation_rules_pb2.HeaderMutation(remove=MODEL_HEADER)]
    )
    return extension_pb2.TypedExtensionConfig(
        name="envoy.http.early_header_mutation.header_mutation", typed_config=pack(config)
    )
