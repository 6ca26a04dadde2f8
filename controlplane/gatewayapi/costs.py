"""``llmRequestCosts``: what an AIGatewayRoute publishes per response as dynamic metadata, under what key.

Upstream publishes each cost under the namespace ``io.envoy.ai_gateway`` with the user's ``metadataKey``,
which is what an Envoy Gateway rate limit reads (``response.from: Metadata``). Here Envoy does it natively
on the public listener, from the OpenAI form of the response (every backend's answer is OpenAI's by then: the
transcoder converted the others), with ``json_to_metadata`` for JSON bodies and ``sse_to_metadata`` for
streams (the last event that carries ``usage`` wins). Envoy's AI Protocol Manager's own token usage cannot
serve: it publishes typed metadata, which neither rate limits nor access logs read (``gatewayapi.providers``).
A count type publishes its count as read; a ``CEL`` cost is computed from the counts by a Lua filter at the
end of the response (``gatewayapi.cel_costs`` says which expressions; one it refuses is reported on
``spec.llmRequestCosts[i].cel`` and the route's other costs and rules keep working).

A listener's filters are shared by its routes, so a listener publishes every key any of its routes names;
routes that compute the same key differently conflict, and the first route (by age) keeps the key.
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane import ir
from controlplane.gatewayapi.cel_costs import CelCostError, parse_cost
from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import AIGatewayRoute, LLMRequestCost

COUNT_VARIABLES = {
    "InputToken": "input_tokens",
    "CachedInputToken": "cached_input_tokens",
    "CacheCreationInputToken": "cache_creation_input_tokens",
    "OutputToken": "output_tokens",
    "TotalToken": "total_tokens",
    "ReasoningToken": "reasoning_tokens",
}
"""The count each cost type publishes, as the CEL variable of the same count (``ir.cost_expression``)."""


def route_costs(route: AIGatewayRoute) -> tuple[ir.TokenCost, ...]:
    """The costs Envoy can publish for ``route`` (the rest are reported by ``check_costs``)."""
    found = []
    for cost in route.spec.llm_request_costs or ():
        expression = _expression(cost)
        if not isinstance(expression, CelCostError):
            found.append(ir.TokenCost(metadata_key=cost.metadata_key, expression=expression))
    return tuple(found)


def reads_backend(route: AIGatewayRoute) -> bool:
    """Whether a CEL cost of ``route`` reads ``backend``: its rule clusters' endpoints then carry their
    backendRef's name for Envoy (``ir.WeightedEndpoint.backend``)."""
    return any(
        ir.cost_expression.BACKEND in ir.cost_expression.variables_of(cost.expression)
        for cost in route_costs(route)
    )


def check_costs(route: AIGatewayRoute, report: Report) -> None:
    for index, cost in enumerate(route.spec.llm_request_costs or ()):
        problem = _expression(cost)
        if isinstance(problem, CelCostError):
            report.reject(route, f"spec.llmRequestCosts[{index}].cel", str(problem))


def _expression(cost: LLMRequestCost) -> ir.cost_expression.Expression | CelCostError:
    if cost.type != "CEL":
        variable = COUNT_VARIABLES[cost.type]
        return ir.cost_expression.Variable(variable, ir.cost_expression.VARIABLES[variable])
    if cost.cel is None:
        return CelCostError("is required when the type is CEL")
    try:
        return parse_cost(cost.cel)
    except CelCostError as error:
        return error


def listener_costs(routes: Iterable[AIGatewayRoute], report: Report) -> tuple[ir.TokenCost, ...]:
    """Every cost of ``routes`` (oldest first) that share one Envoy listener."""
    chosen: dict[str, tuple[ir.TokenCost, AIGatewayRoute]] = {}
    for route in routes:
        for cost in route_costs(route):
            first = chosen.setdefault(cost.metadata_key, (cost, route))
            if first[0] != cost:
                report.warn(
                    route,
                    "spec.llmRequestCosts",
                    f"metadataKey {cost.metadata_key} is computed otherwise in route "
                    f"{first[1].namespace}/{first[1].name} on the same listener, which keeps it",
                    reason="Conflicted",
                )
    return tuple(sorted((cost for cost, _ in chosen.values()), key=lambda cost: cost.metadata_key))
