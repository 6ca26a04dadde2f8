"""What a matched AIGatewayRoute rule does: forward to its rule cluster with upstream's timeouts and the
failover retry policy, the rule's rewrites and header edits applied, or answer directly when no backend of
the rule is usable."""

from __future__ import annotations

from dataclasses import replace

from controlplane import ir
from controlplane.gatewayapi import failover
from controlplane.gatewayapi.backends import header_edits
from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import AIGatewayRoute, AIGatewayRouteRule
from controlplane.resources.envoy_gateway import BackendTrafficPolicy


def rule_action(
    route: AIGatewayRoute,
    index: int,
    rule: AIGatewayRouteRule,
    cluster: ir.RuleCluster | None,
    report: Report,
    policy: BackendTrafficPolicy | None,
) -> ir.Forward | ir.DirectResponse:
    if cluster is None:
        # Gateway API: a rule whose backends are all invalid answers 500 rather than disappearing.
        return ir.DirectResponse(
            500, f"No usable backend for rule {index} of AIGatewayRoute {route.namespace}/{route.name}."
        )
    backend_timeout = rule.backend_request_timeout
    per_level: dict[int, int] = {}
    for endpoint in cluster.endpoints:
        per_level[endpoint.priority] = per_level.get(endpoint.priority, 0) + 1
    request_timeout = failover.request_timeout(rule, policy).total_seconds()
    forward = ir.Forward(
        cluster=cluster.name,
        timeout_seconds=request_timeout,
        idle_timeout_seconds=_route_idle_timeout(request_timeout),
        retry=failover.retry_policy(
            levels=len(per_level),
            widest_level=max(per_level.values()),
            per_try_timeout_seconds=backend_timeout.total_seconds() if backend_timeout else None,
            per_try_idle_timeout_seconds=(
                rule.stream_idle_timeout.total_seconds() if rule.stream_idle_timeout else None
            ),
            policy=policy,
        ),
    )
    return _with_filters(forward, route, index, rule, report)


_ROUTE_IDLE_TIMEOUT_SECONDS = 3600.0


def _route_idle_timeout(request_timeout: float) -> float:
    """Envoy Gateway's route idle timeout: an hour, never shorter than the request timeout, none when the
    request has none; Envoy's 5 minute default would cut a long streamed completion that pauses."""
    if request_timeout == 0:
        return 0.0
    return max(_ROUTE_IDLE_TIMEOUT_SECONDS, request_timeout)


def _with_filters(
    forward: ir.Forward, route: AIGatewayRoute, index: int, rule: AIGatewayRouteRule, report: Report
) -> ir.Forward:
    path_rewrite = forward.path_rewrite
    hostname = forward.hostname_rewrite
    headers = forward.request_headers
    if not rule.filters:
        return forward  # most rules: no copy (a ``replace`` costs about what building the action does)
    for filter_index, item in enumerate(rule.filters):
        path = f"spec.rules[{index}].filters[{filter_index}]"
        if item.type == "URLRewrite" and item.url_rewrite is not None:
            hostname = item.url_rewrite.hostname or hostname
            modifier = item.url_rewrite.path
            if modifier is not None and modifier.type == "ReplaceFullPath":
                path_rewrite = ir.PathRewrite(full_path=modifier.replace_full_path or "/")
            elif modifier is not None:
                if any(m.path is not None and m.path.type != "PathPrefix" for m in rule.matches):
                    report.reject(
                        route, f"{path}.urlRewrite.path", "ReplacePrefixMatch needs PathPrefix matches"
                    )
                    continue
                path_rewrite = ir.PathRewrite(prefix=modifier.replace_prefix_match or "/")
        elif item.type == "RequestHeaderModifier" and item.request_header_modifier is not None:
            modifier_headers = item.request_header_modifier
            headers = header_edits(
                [*modifier_headers.set, *modifier_headers.add], modifier_headers.remove
            ).merged_over(headers)
        else:
            report.reject(route, path, f"filter type {item.type} needs its matching configuration field")
    return replace(forward, path_rewrite=path_rewrite, hostname_rewrite=hostname, request_headers=headers)
