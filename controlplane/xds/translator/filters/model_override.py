"""Rewrite the body's ``model`` for one backend (``backendRefs[].modelNameOverride``).

In a backend's internal listener (``model_override_filter``) it applies once per attempt: a retry that lands
on the next priority carries the next backend's model. ``MERGE`` keeps every other field and adds ``model``
when the client sent none, which is how a request without a model gets the backend's.

The first choice's model is rewritten at the route instead (``gatewayapi.route_model``), by a filter of the
public listener (``route_model_filter``) that does nothing unless the chosen route names a model
(``set_route_model``). It is a filter of its own, after the body check, because that one re-picks the route:
the route a JSON request ends on is known only after it. (A multipart form's route is picked after this
filter, by the form's model: a form goes as sent, as the script would leave it anyway.) Every request of such
a route pays for it, so it is the Lua script that edits the body in place (``json_member``, which says what
that saves) rather than the ``transform`` filter the hops keep: Envoy runs a Lua VM per filter configuration
and worker (and one on the main thread), about 100 KB each, and hops can be thousands (measured on Envoy 1.40
with two workers: 300 hops took 89 MB of RSS with the transform filter, 178 MB with the script); a listener
has two (a script that reads the content type and one for routes whose requests are known to be JSON).
"""

from __future__ import annotations

import json
from typing import Any

from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.http.transform.v3 import transform_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import struct_pb2

from controlplane.xds.translator.filters.json_member import KnownBody, set_member_script
from controlplane.xds.translator.messages import pack

ROUTE_MODEL_FILTER = "ai.route_model_override"
"""The name of the public listener's filter that rewrites the model per route; its route metadata's namespace
too."""
_SCRIPTS = {KnownBody.ANY: "route_model", KnownBody.JSON: "route_model_of_body"}
"""The script per route: one that matches on the body's model needs no look at the content type."""
_MODEL_KEY = "model_json"
"""The route metadata key holding the model as a JSON string literal, spliced into the body as it is."""


def model_override_filter(*, model: str) -> Any:
    """A hop's rewrite: one model for every request through the hop."""
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


def route_model_filter() -> Any:
    """Idle unless the route names a model (``set_route_model``)."""
    value = f'handle:metadata():get("{_MODEL_KEY}")'
    scripts = {
        name: base_pb2.DataSource(inline_string=set_member_script(key="model", value=value, known_body=known))
        for known, name in _SCRIPTS.items()
    }
    lua = lua_pb2.Lua(source_codes=scripts)
    return hcm.HttpFilter(name=ROUTE_MODEL_FILTER, typed_config=pack(lua))


def set_route_model(route: Any, *, model: str, matches_body_model: bool) -> None:
    """Make ``route_model_filter`` rewrite the body's model to ``model`` on ``route`` (an ``rc.Route``).
    ``matches_body_model``: the route matches on the model, which only the body check has recorded when this
    filter runs, so its requests are JSON."""
    known = KnownBody.JSON if matches_body_model else KnownBody.ANY
    route.typed_per_filter_config[ROUTE_MODEL_FILTER].CopyFrom(
        pack(lua_pb2.LuaPerRoute(name=_SCRIPTS[known]))
    )
    route.metadata.filter_metadata[ROUTE_MODEL_FILTER].update({_MODEL_KEY: json.dumps(model)})
