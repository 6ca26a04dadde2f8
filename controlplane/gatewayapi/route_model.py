"""A rule's first choice of backend gets its ``modelNameOverride`` at the route, so it needs no hop for it.

A model override is per attempt: a retry that fails over to another priority must carry that backend's model,
so it runs in the backend's hop (``xds.translator.listener``), which costs every request a second trip
through Envoy. Most requests never fail over, though, and when every backendRef of a rule's first priority
level wants the same model, the first attempt's model is known before any host is chosen. Then the route
rewrites the model once for the first choice (``ir.Forward.model_override``), those backendRefs drop it from
their hops (which often leaves them nothing to do: ``ir.BackendHop.works_per_attempt``), and every other
backendRef rewrites it again in its hop to what it would have received otherwise: its own override, or the
model the client sent. The client's model is known when every match of the rule requires one exact model
header (the header is the body's model); without it, a rule whose other backendRefs have no override of their
own keeps all its hops.
"""

from __future__ import annotations

from dataclasses import replace

from controlplane import ir
from controlplane.resources.aigateway import AIGatewayRouteRule


def first_choice_model(
    rule: AIGatewayRouteRule, cluster: ir.RuleCluster, hops: list[ir.BackendHop]
) -> tuple[str | None, list[ir.BackendHop]]:
    """The model the route rewrites for the first choice (None: none), and the rule's hops adjusted to it."""
    by_name = {hop.name: hop for hop in hops}
    first_level = min(endpoint.priority for endpoint in cluster.endpoints)
    first = {
        by_name[endpoint.target.listener].model_override
        for endpoint in cluster.endpoints
        if endpoint.priority == first_level and isinstance(endpoint.target, ir.InternalEndpoint)
    }
    if len(first) != 1:
        return None, hops
    (model,) = first
    if model is None:
        return None, hops
    client_model = _client_model(rule)
    if client_model is None and any(hop.model_override is None for hop in hops):
        return None, hops
    adjusted = []
    for hop in hops:
        if hop.model_override == model:
            hop = replace(
                hop, model_override=None, request_headers=_without_model_header(hop.request_headers)
            )
        elif hop.model_override is None and client_model is not None:
            headers = ir.HeaderEdits(set=((ir.MODEL_HEADER, client_model),)).merged_over(hop.request_headers)
            hop = replace(hop, model_override=client_model, request_headers=headers)
        adjusted.append(hop)
    return model, adjusted


def _client_model(rule: AIGatewayRouteRule) -> str | None:
    """The one model every request reaching the rule names, if its matches make it certain."""
    models = set()
    for match in rule.matches:
        exact = [
            header.value
            for header in match.headers
            if header.name.lower() == ir.MODEL_HEADER and header.type == "Exact"
        ]
        if not exact:
            return None
        models.update(exact)
    return models.pop() if len(models) == 1 else None


def _without_model_header(edits: ir.HeaderEdits) -> ir.HeaderEdits:
    """The hop's header edits without the model header its override set (the route sets it now)."""
    return replace(edits, set=tuple(item for item in edits.set if item[0].lower() != ir.MODEL_HEADER))
