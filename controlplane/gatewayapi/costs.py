"""``llmRequestCosts``: which token counts an AIGatewayRoute publishes as dynamic metadata, under what key.

Upstream publishes each cost under the namespace ``io.envoy.ai_gateway`` with the user's ``metadataKey``,
which is what an Envoy Gateway rate limit reads (``response.from: Metadata``). Here Envoy does it natively
on the public listener, from the OpenAI form of the response (every backend's answer is OpenAI's by then: the
transcoder converted the others), with ``json_to_metadata`` for JSON bodies and ``sse_to_metadata`` for
streams (the last event that carries ``usage`` wins). Envoy's AI Protocol Manager's own token usage cannot
serve: it publishes typed metadata, which neither rate limits nor access logs read (``gatewayapi.providers``).

A listener's filters are shared by its routes, so a listener publishes every key any of its routes names;
routes that name the same key for different counts conflict, and the first route (by age) keeps the key.
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane import ir
from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import AIGatewayRoute

USAGE_FIELDS = {
    "InputToken": ("prompt_tokens",),
    "OutputToken": ("completion_tokens",),
    "TotalToken": ("total_tokens",),
    "CachedInputToken": ("prompt_tokens_details", "cached_tokens"),
    "ReasoningToken": ("completion_tokens_details", "reasoning_tokens"),
}
"""Where each cost type's count is in an OpenAI response's ``usage``."""
NOT_COMPUTED = {
    "CEL": "CEL costs are not computed: Envoy 1.40 has no filter that evaluates an expression over the token "
    "counts into dynamic metadata; use InputToken, OutputToken or TotalToken",
    "CacheCreationInputToken": "CacheCreationInputToken is not computed: OpenAI's usage, the form every "
    "response has in Envoy, has no cache-creation count",
}


def route_costs(route: AIGatewayRoute) -> tuple[ir.TokenCost, ...]:
    """The costs Envoy can publish for ``route`` (the rest are reported by ``check_costs``)."""
    return tuple(
        ir.TokenCost(metadata_key=cost.metadata_key, usage_field=USAGE_FIELDS[cost.type])
        for cost in route.spec.llm_request_costs or ()
        if cost.type in USAGE_FIELDS
    )


def check_costs(route: AIGatewayRoute, report: Report) -> None:
    for index, cost in enumerate(route.spec.llm_request_costs or ()):
        why = NOT_COMPUTED.get(cost.type)
        if why is not None:
            report.warn(route, f"spec.llmRequestCosts[{index}].type", why, reason="UnsupportedValue")


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
                    f"metadataKey {cost.metadata_key} counts another usage field in route "
                    f"{first[1].namespace}/{first[1].name} on the same listener, which keeps it",
                    reason="Conflicted",
                )
    return tuple(sorted((cost for cost, _ in chosen.values()), key=lambda cost: cost.metadata_key))
