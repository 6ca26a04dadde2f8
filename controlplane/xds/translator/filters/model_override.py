"""Rewrite the body's ``model`` for one backend (``backendRefs[].modelNameOverride``).

Runs in that backend's internal listener, so it applies once per attempt: a retry that lands on the
next priority carries the next backend's model. ``MERGE`` keeps every other field and adds ``model`` when
the client sent none, which is how a request without a model gets the backend's.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import substitution_format_string_pb2
from envoy.extensions.filters.http.transform.v3 import transform_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import struct_pb2

from controlplane.xds.translator.messages import pack


def model_override_filter(*, model: str) -> Any:
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
    return hcm.HttpFilter(name="envoy.filters.http.transform", typed_config=pack(config))
