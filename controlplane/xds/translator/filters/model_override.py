"""Rewrite the body's ``model`` for one backend (``backendRefs[].modelNameOverride``).

Runs in that backend's internal listener, so it applies once per attempt: a retry that lands on the
next priority carries the next backend's model. ``MERGE`` keeps every other field and adds ``model`` when
the client sent none, which is how a request without a model gets the backend's.

The first choice's model is rewritten at the route instead (``gatewayapi.route_model``): the public listener
runs a second transform filter (``route_model_filter``) that does nothing unless the chosen route carries its
own configuration (``route_model_config``). It is a filter of its own, after the model header filter, because
that one re-picks the route: the route a request ends on is known only after it.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import substitution_format_string_pb2
from envoy.extensions.filters.http.transform.v3 import transform_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import struct_pb2

from controlplane.xds.translator.messages import pack

ROUTE_MODEL_FILTER = "ai.route_model_override"
"""The name of the public listener's transform filter that rewrites the model per route."""


def model_override_filter(*, model: str) -> Any:
    return hcm.HttpFilter(name="envoy.filters.http.transform", typed_config=route_model_config(model=model))


def route_model_filter() -> Any:
    return hcm.HttpFilter(name=ROUTE_MODEL_FILTER, typed_config=pack(transform_pb2.TransformConfig()))


def route_model_config(*, model: str) -> Any:
    """The transform configuration (packed) that merges ``model`` into a JSON body."""
    body = struct_pb2.Struct()
    # The body is a format string: a literal "%" in a model name must be escaped.
    body.update({"model": model.replace("%", "%%")})
    config = transform_pb2.TransformConfig(
        request_transformation=transform_pb2.Transformation(
            body_transformation=transform_pb2.BodyTransformation(
                body_format=substitution_format_string_pb2.SubstitutionFormatString(json_format=body),
                action=transform_pb2.BodyTransformation.MERGE,
            )
        )
    )
    return pack(config)
