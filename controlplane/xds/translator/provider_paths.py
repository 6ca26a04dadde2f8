"""Inside a backend hop: send each endpoint to the path the provider serves it at.

Azure OpenAI and Cohere (``provider_routes``): the request goes as sent, to the provider's path for its
endpoint. Claude on Vertex AI and Bedrock (``model_path_routes``, after the transcoder): the path names the
model and the method, the method chosen by the stream header the public listener set from the body's
``stream`` (a route header match); Bedrock's streamed route turns on the filter that converts its
event-stream answer (``filters.bedrock_stream``).

Verified on Envoy 1.40 with a static configuration (the notes behind this design):

- ``header_mutation`` and ``transform`` refuse to set ``:path`` ("``:``-prefixed or host headers may not be
  modified"), so the path cannot be written from a header by a filter.
- The route's ``path_rewrite`` takes a substitution format: ``/openai/deployments/%REQ(x-ai-eg-model)%/...``
  puts the model the attempt carries into the path. It replaces the path and keeps the query string, so a
  ``?`` inside it would make a second one when the client sent a query.
- ``header_mutation``'s ``query_parameter_mutations`` sets ``api-version`` on the request before the router
  rewrites the path, so the provider gets ``...?api-version=V`` with the client's own parameters after it.

The model comes from the model header (filled from the body on the public listener) unless the backendRef
overrides it, then it is the override itself. A model that cannot be a path segment (``/``, ``?``, ``#``,
``%``, blanks) or no model at all is answered 400 by the hop, and a path the provider has no endpoint for
404, both in the OpenAI error envelope, per attempt (a 4xx: the rule does not retry it elsewhere).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import struct_pb2

from controlplane import ir
from controlplane.xds.translator.filters.bedrock_stream import enabled_on
from controlplane.xds.translator.filters.model_header import streamed_match
from controlplane.xds.translator.messages import pack

_PATH_SEGMENT = r"[^/?#%\s]+"
"""What a model taken from the header must look like to be placed in a path as it is."""
_MODEL_FROM_HEADER = f"%REQ({ir.MODEL_HEADER})%"


def provider_routes(api: ir.ProviderApi, *, forward: Any, model_override: str | None) -> list[Any]:
    """The hop's routes: one per endpoint the provider serves (``forward`` with the path rewritten), then
    the refusals. ``forward`` is the hop's route to the upstream, copied for each endpoint."""
    routes: list[Any] = []
    refusals: list[Any] = []
    for mapping in api.paths:
        route = _copy(
            forward, f"{forward.name}/{mapping.client_path}", rc.RouteMatch(path=mapping.client_path)
        )
        if _rewrite_path(route, mapping.provider_path, model_override=model_override):
            match = rc.RouteMatch(path=mapping.client_path)
            refusals.append(
                _bad_model(route.name, match, f"{api.schema} needs a model that names a deployment")
            )
        routes.append(route)
    return routes + refusals + [_unserved(forward.name, api.schema, [m.client_path for m in api.paths])]


def model_path_routes(
    bases: dict[str, Any], model_path: ir.ModelPath, *, name: str, model_override: str | None
) -> list[Any]:
    """A hop whose provider names the model and the method in the path (Vertex AI's rawPredict, Bedrock's
    invoke). ``bases`` maps each client path served (OpenAI's chat completions, transcoded; Anthropic's own,
    as sent) to its route; streamed requests (the body's ``stream``, ``streamed_match``) go to their own
    path, a model that cannot be a path segment is refused, every other path gets 404 (a route
    ``name``d after the hop's)."""
    routes: list[Any] = []
    for client_path, base in bases.items():
        base.route.ClearField("regex_rewrite")
        stream_match = rc.RouteMatch(path=client_path, dynamic_metadata=[streamed_match()])
        streamed = _copy(base, f"{base.name}/stream", stream_match)
        _rewrite_path(streamed, model_path.streaming, model_override=model_override)
        if model_path.event_stream:
            enabled_on(streamed)
        routes.append(streamed)
        unary = _copy(base, f"{base.name}/unary", rc.RouteMatch(path=client_path))
        routes.append(unary)
        if _rewrite_path(unary, model_path.unary, model_override=model_override):
            # After both: a streamed request whose model fails the streamed route's match lands here too.
            match = rc.RouteMatch(path=client_path)
            routes.append(_bad_model(base.name, match, f"{model_path.schema} needs a model"))
    return [*routes, _unserved(name, model_path.schema, list(bases))]


def _copy(route: Any, name: str, match: Any) -> Any:
    copied = rc.Route()
    copied.CopyFrom(route)
    copied.name = name
    copied.match.CopyFrom(match)
    return copied


def _rewrite_path(route: Any, template: str, *, model_override: str | None) -> bool:
    """Sets ``route``'s path to ``template`` with the attempt's model in it. True when that model comes from
    the model header: the route then matches only a model that can be a path segment."""
    needs_model = ir.MODEL_IN_PATH in template
    from_header = needs_model and model_override is None
    if from_header:
        route.match.headers.append(
            rc.HeaderMatcher(
                name=ir.MODEL_HEADER,
                string_match=string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=_PATH_SEGMENT)),
            )
        )
    # The path is a format string: a literal "%" must be doubled; the override is escaped as a segment.
    model = (
        _MODEL_FROM_HEADER if model_override is None else quote(model_override, safe=":@").replace("%", "%%")
    )
    route.route.path_rewrite = template.replace(ir.MODEL_IN_PATH, model)
    return from_header


def _bad_model(name: str, match: Any, needs: str) -> Any:
    return _refusal(f"{name}/model", match, 400, f"{needs} (no '/', '?', '#', '%' or blanks)")


def _unserved(name: str, schema: str, served: list[str]) -> Any:
    return _refusal(
        f"{name}/unserved",
        rc.RouteMatch(prefix="/"),
        404,
        f"this {schema} backend serves only {', '.join(served)}",
    )


def query_filter(api: ir.ProviderApi) -> Any:
    """Sets the provider's query parameters (``api-version``) on every request of the hop."""
    mutations = header_mutation_pb2.Mutations(
        query_parameter_mutations=[
            base_pb2.KeyValueMutation(
                append=base_pb2.KeyValueAppend(
                    record=base_pb2.KeyValuePair(key=key, value=struct_pb2.Value(string_value=value)),
                    action=base_pb2.KeyValueAppend.OVERWRITE_IF_EXISTS_OR_ADD,
                )
            )
            for key, value in api.query
        ]
    )
    return hcm.HttpFilter(
        name="envoy.filters.http.header_mutation",
        typed_config=pack(header_mutation_pb2.HeaderMutation(mutations=mutations)),
    )


def _refusal(name: str, match: Any, status: int, message: str) -> Any:
    route = rc.Route(name=name, match=match)
    route.direct_response.status = status
    route.direct_response.body.inline_string = message
    return route
