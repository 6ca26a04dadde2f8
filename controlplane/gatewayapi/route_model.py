"""A rule's first choice of backend gets its ``modelNameOverride`` at the route, so it needs no hop for it.

A model override is per attempt: a retry that fails over to another priority must carry that backend's model,
so it runs in the backend's hop (``xds.translator.listener``), which costs every request a second trip
through Envoy. Most requests never fail over, though, and when every backendRef of a rule's first priority
level wants the same model, and that is all their hops would do (``ir.BackendHop.works_per_attempt``: a
hop kept for a credential or a rewrite rewrites the model there as cheaply, and per-backend work keeps seeing
its model), the first attempt's model is known before any host is chosen and no hop is needed for it. Then
the route rewrites the model once for the first choice (``ir.Forward.model_override``), those backendRefs drop
it from their hops, and every other backendRef rewrites it again in its hop to what it would have received
otherwise: its own override, or the model the client sent. The client's model is known when every match of
the rule requires one exact model (the body's); without it, a rule whose other backendRefs have no override
of their own keeps all its hops.
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
    first = [
        by_name[endpoint.target.listener]
        for endpoint in cluster.endpoints
        if endpoint.priority == first_level and isinstance(endpoint.target, ir.InternalEndpoint)
    ]
    models = {hop.model_override for hop in first}
    if len(models) != 1:
        return None, hops
    (model,) = models
    # A first choice that keeps its hop for other work rewrites the model there as cheaply.
    if model is None or any(_without_override(hop).works_per_attempt for hop in first):
        return None, hops
    client_model = _client_model(rule)
    if client_model is None and any(hop.model_override is None for hop in hops):
        return None, hops
    adjusted = []
    for hop in hops:
        if hop.model_override == model:
            hop = _without_override(hop)
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


def _without_override(hop: ir.BackendHop) -> ir.BackendHop:
    """The hop without its model override and the model header the override set (the route does both)."""
    edits = hop.request_headers
    kept = tuple(item for item in edits.set if item[0].lower() != ir.MODEL_HEADER)
    return replace(hop, model_override=None, request_headers=replace(edits, set=kept))
