"""Retry and ejection defaults that make priority failover work with no extra policy, and their overrides.

A rule's backendRefs form one cluster with one priority level per distinct ``priority``. A failed attempt
(connection refused, unresolvable, reset, 5xx or 429) is retried once on each lower level, skipping levels
already tried, and the client gets that level's answer. Outlier detection stops sending first attempts to a
backend that keeps failing and lets it back in after a short ejection, so traffic fails back by itself.

The numbers were measured on Envoy 1.40 through the hop design (see ``xds.translator.listener``):
ejection after 3 consecutive errors; a 5 s ejection probed every second bounds failback to ~6 s while a
dead primary costs 3 retried requests per probe; ``max_ejection_percent`` 100 because Envoy's 10% never
ejects one host of two.

An Envoy Gateway ``BackendTrafficPolicy`` targeting the route (as ``HTTPRoute`` with the AIGatewayRoute's
name, the way Envoy AI Gateway's provider-fallback example attaches it, or as the AIGatewayRoute itself)
overrides these defaults field by field: only the fields it sets replace ours.
"""

from __future__ import annotations

from dataclasses import replace

from controlplane import ir
from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import AIGatewayRoute
from controlplane.resources.envoy_gateway import BackendTrafficPolicy, PassiveHealthCheck, Retry
from controlplane.resources.groups import AIGATEWAY_GROUP, GATEWAY_API_GROUP
from controlplane.resources.resource_set import ResourceSet

RETRY_ON = ("connect-failure", "refused-stream", "reset", "5xx", "retriable-status-codes")
RETRIABLE_STATUS_CODES = (429,)
# Envoy's default back-off (25 ms base, jittered) costs every failover ~13 ms at p50 for nothing: the next
# attempt goes to a different backend, not back to the one that just failed.
_BACK_OFF = (0.001, 0.002)

DEFAULT_OUTLIER = ir.OutlierPolicy(
    consecutive_errors=3,
    interval_seconds=1.0,
    base_ejection_seconds=5.0,
    max_ejection_seconds=5.0,
    max_ejection_percent=100,
    error_status_codes=RETRIABLE_STATUS_CODES,
)

_ROUTE_TARGETS = {(GATEWAY_API_GROUP, "HTTPRoute"), (AIGATEWAY_GROUP, "AIGatewayRoute")}


class TrafficPolicies:
    """Finds the BackendTrafficPolicy of each route; reports policies that target nothing we serve."""

    def __init__(self, *, resources: ResourceSet, report: Report) -> None:
        self._by_route: dict[tuple[str, str], BackendTrafficPolicy] = {}
        for policy in resources.backend_traffic_policies():
            report.consider(policy)
            spec = policy.spec
            if spec.health_check is not None and spec.health_check.active is not None:
                report.warn(
                    policy,
                    "spec.healthCheck.active",
                    "not implemented: Envoy cannot health-check through a backend hop; passive checks apply",
                )
            for index, ref in enumerate(spec.all_target_refs):
                path = f"spec.targetRefs[{index}]"
                if (ref.group, ref.kind) not in _ROUTE_TARGETS:
                    report.reject(policy, path, f"{ref.kind} targets are not supported (target the route)")
                    continue
                if resources.find(AIGatewayRoute, policy.namespace, ref.name) is None:
                    report.unresolved(
                        policy, f"{path}.name", f"AIGatewayRoute {policy.namespace}/{ref.name} not found"
                    )
                    continue
                current = self._by_route.setdefault((policy.namespace, ref.name), policy)
                if current is not policy:
                    report.reject(
                        policy,
                        path,
                        f"the route already has BackendTrafficPolicy {current.namespace}/{current.name}",
                        reason="Conflicted",
                    )

    def for_route(self, route: AIGatewayRoute) -> BackendTrafficPolicy | None:
        return self._by_route.get((route.namespace, route.name))


def retry_policy(
    *,
    levels: int,
    widest_level: int,
    per_try_timeout_seconds: float | None,
    per_try_idle_timeout_seconds: float | None,
    policy: BackendTrafficPolicy | None,
) -> ir.RetryPolicy | None:
    """One attempt per priority level, or one retry on a sibling when the rule has a single level.

    None when there is nothing to fail over to (one backend) and no policy asks for retries.
    """
    can_fail_over = levels > 1 or widest_level > 1
    default = ir.RetryPolicy(
        num_retries=max(levels - 1, 1) if can_fail_over else 0,
        retry_on=RETRY_ON,
        retriable_status_codes=RETRIABLE_STATUS_CODES,
        per_try_timeout_seconds=per_try_timeout_seconds,
        per_try_idle_timeout_seconds=per_try_idle_timeout_seconds,
        back_off_base_seconds=_BACK_OFF[0],
        back_off_max_seconds=_BACK_OFF[1],
        attempts_per_priority=1 if levels > 1 else None,
        avoid_previous_hosts=levels == 1 and widest_level > 1,
    )
    retry = policy.spec.retry if policy is not None else None
    if retry is not None:
        return _overridden(default, retry, levels=levels)
    return default if can_fail_over else None


def outlier_policy(policy: BackendTrafficPolicy | None) -> ir.OutlierPolicy:
    health = policy.spec.health_check if policy is not None else None
    if health is None or health.passive is None:
        return DEFAULT_OUTLIER
    return _passive(DEFAULT_OUTLIER, health.passive)


def _overridden(base: ir.RetryPolicy, retry: Retry, *, levels: int) -> ir.RetryPolicy:
    chosen = retry.model_fields_set
    if "num_retries" in chosen or base.num_retries == 0:
        # Unset, Envoy Gateway's default (2) applies where our defaults would not retry at all.
        base = replace(base, num_retries=retry.num_retries)
    if retry.num_attempts_per_priority is not None and levels > 1:
        base = replace(base, attempts_per_priority=retry.num_attempts_per_priority)
    if retry.retry_on is not None:
        triggers = tuple(retry.retry_on.triggers) or base.retry_on
        codes = tuple(retry.retry_on.http_status_codes)
        if codes and "retriable-status-codes" not in triggers:
            triggers = (*triggers, "retriable-status-codes")
        base = replace(base, retry_on=triggers, retriable_status_codes=codes or base.retriable_status_codes)
    per_retry = retry.per_retry
    if per_retry is not None:
        if per_retry.timeout is not None:
            base = replace(base, per_try_timeout_seconds=per_retry.timeout.total_seconds())
        back_off = per_retry.back_off
        if back_off is not None and back_off.base_interval is not None:
            seconds = back_off.base_interval.total_seconds()
            # Upstream's default maximum is 10 times the base (a fixed default could fall below it).
            base = replace(base, back_off_base_seconds=seconds, back_off_max_seconds=10 * seconds)
        if back_off is not None and back_off.max_interval is not None:
            base = replace(base, back_off_max_seconds=back_off.max_interval.total_seconds())
    return base


def _passive(default: ir.OutlierPolicy, passive: PassiveHealthCheck) -> ir.OutlierPolicy:
    chosen = passive.model_fields_set
    policy = default
    if "consecutive_5xx_errors" in chosen:
        policy = replace(policy, consecutive_errors=passive.consecutive_5xx_errors)
    if "interval" in chosen:
        policy = replace(policy, interval_seconds=passive.interval.total_seconds())
    if "base_ejection_time" in chosen:
        seconds = passive.base_ejection_time.total_seconds()
        # Envoy Gateway leaves the maximum at Envoy's 300 s; keeping it at the base keeps failback bounded.
        policy = replace(policy, base_ejection_seconds=seconds, max_ejection_seconds=seconds)
    if "max_ejection_percent" in chosen:
        policy = replace(policy, max_ejection_percent=passive.max_ejection_percent)
    return policy
