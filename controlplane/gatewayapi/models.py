"""``GET /v1/models``, answered by Envoy itself on every virtual host from the routes it serves.

OpenAI SDKs and UIs list the models first. Envoy AI Gateway answers that list from its routes (read in
its controller and models processor at v1.0.0, the newest release on the Go module proxy; v1.1 is not
there): every ``x-ai-eg-model`` header match of type Exact declares a model, owned by the rule's
``modelsOwnedBy`` (default "Envoy AI Gateway") and created at its ``modelsCreatedAt`` (default: the route's
creation time).
Here the list is a direct response on each virtual host, so the control plane keeps it up to date with
every push and no backend is involved. A virtual host lists the models of the routes it serves (its own
hostname's and those without hostnames), each id once, in route, rule and match order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from controlplane import ir
from controlplane.resources.aigateway import AIGatewayRoute, AIGatewayRouteRule, AIGatewayRouteRuleMatch

MODELS_PATH = "/v1/models"
MODELS_ROUTE = "route-models"


def declared_model(
    route: AIGatewayRoute, rule: AIGatewayRouteRule, match: AIGatewayRouteRuleMatch | None
) -> ir.ListedModel | None:
    """The model one match declares: its Exact ``x-ai-eg-model`` value, if it has one."""
    if match is None:
        return None
    for header in match.headers:
        if header.name.lower() == ir.MODEL_HEADER and header.type == "Exact":
            created = rule.models_created_at or _parse_time(route.metadata.creation_timestamp)
            return ir.ListedModel(
                id=header.value,
                created=int(created.timestamp()) if created is not None else 0,
                owned_by=rule.models_owned_by,
            )
    return None


def models_route(models: list[ir.ListedModel]) -> ir.Route:
    """The exact-path ``GET /v1/models`` route answering OpenAI's model list (first id wins)."""
    first: dict[str, ir.ListedModel] = {}
    for model in models:
        first.setdefault(model.id, model)
    body = {
        "data": [
            {"id": model.id, "created": model.created, "object": "model", "owned_by": model.owned_by}
            for model in first.values()
        ],
        "object": "list",
    }
    return ir.Route(
        name=MODELS_ROUTE,
        path=ir.PathMatch(ir.PathMatchType.EXACT, MODELS_PATH),
        headers=(ir.HeaderMatch(":method", "GET"),),
        action=ir.DirectResponse(200, json.dumps(body, separators=(",", ":"))),
    )


def _parse_time(value: object) -> datetime | None:
    """``metadata.creationTimestamp`` as Kubernetes writes it (RFC 3339, UTC), or a YAML timestamp."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            return _parse_time(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None
