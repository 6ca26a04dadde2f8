"""Rewrite the body's ``model`` for one backend (``backendRefs[].modelNameOverride``).

One filter (``route_model_filter``) that does nothing unless the route a request ends on names a model
(``set_route_model``). In a backend's internal listener, whose route names the backend's model, it applies
once per attempt: a retry that lands on the next priority carries the next backend's model. On the public
listener it rewrites the first choice's model at the route (``gatewayapi.route_model``); it comes after the
body check there, because that one re-picks the route: the route a request ends on is known only after it.
The rewrite is a Lua script that edits the body in place (``json_member``, which says why not ``transform``):
an object without a ``model`` gets the backend's.
"""

from __future__ import annotations

import json
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm

from controlplane.xds.translator.filters.json_member import set_member_script
from controlplane.xds.translator.messages import pack

ROUTE_MODEL_FILTER = "ai.route_model_override"
"""The name of the filter that rewrites the model per route; its route metadata's namespace too."""
_SCRIPT = "route_model"
_MODEL_KEY = "model_json"
"""The route metadata key holding the model as a JSON string literal, spliced into the body as it is."""


def route_model_filter() -> Any:
    """Idle unless the route names a model (``set_route_model``)."""
    script = set_member_script(key="model", value=f'handle:metadata():get("{_MODEL_KEY}")')
    lua = lua_pb2.Lua(source_codes={_SCRIPT: base_pb2.DataSource(inline_string=script)})
    return hcm.HttpFilter(name=ROUTE_MODEL_FILTER, typed_config=pack(lua))


def set_route_model(route: Any, *, model: str) -> None:
    """Make ``route_model_filter`` rewrite the body's model to ``model`` on ``route`` (an ``rc.Route``)."""
    route.typed_per_filter_config[ROUTE_MODEL_FILTER].CopyFrom(pack(lua_pb2.LuaPerRoute(name=_SCRIPT)))
    route.metadata.filter_metadata[ROUTE_MODEL_FILTER].update({_MODEL_KEY: json.dumps(model)})
