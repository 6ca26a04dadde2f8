"""Retry and ejection defaults that make priority failover work with no extra policy, and their overrides.

A rule's backendRefs form one cluster with one priority level per distinct ``priority``. A failed attempt
(connection refused, unresolvable, reset, 5xx or 429) is retried once on each lower level, skipping levels
already tried, and the client gets that level's answer. Outlier detection stops sending first attempts to a
backend that keeps failing and lets it back in after a short ejection, so traffic fails back by itself.

The numbers were measured on Envoy 1.40 through the hop design (see ``xds.translator.listener``; a
backendRef with no per-attempt work is now a locality of the rule cluster holding its backend's endpoints,
``xds.translator.data_path``, so ejection counts per endpoint there, with the same thresholds):
ejection after 3 consecutive errors; a 5 s ejection probed every second bounds failback to ~6 s while a
dead primary costs 3 retried requests per probe; ``max_ejection_percent`` 100 because Envoy's 10% never
ejects one host of two.

An Envoy Gateway ``BackendTrafficPolicy`` targeting the route (as ``HTTPRoute`` with the AIGatewayRoute's
name, the way Envoy AI Gateway's provider-fallback example attaches it, or as the AIGatewayRoute itself)
replaces these defaults section by section: a section it sets (``retry``, ``healthCheck.passive``,
``circuitBreaker``, ``timeout.http.requestTimeout``) means what it means in Envoy Gateway v1.5, with Envoy
Gateway's defaults for the fields it leaves out, since that is what its authors wrote it against; a section it
does not set keeps ours.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import lru_cache

from controlplane import ir
from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import AIGatewayRoute, AIGatewayRouteRule
from controlplane.resources.envoy_gateway import BackendTrafficPolicy, Retry
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

# Envoy Gateway's retry defaults (internal/xds/translator/route.go at v1.5.0), for a retry section.
EG_RETRY_ON = ("connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes")
EG_RETRIABLE_STATUS_CODES = (503,)
EG_HOST_SELECTION_ATTEMPTS = 5

_ROUTE_TARGETS = {(GATEWAY_API_GROUP, "HTTPRoute"), (AIGATEWAY_GROUP, "AIGatewayRoute")}


class TrafficPolicies:
    """Finds the BackendTrafficPolicy of each route; reports policies that target nothing we serve."""

    def __init__(self, *, resources: ResourceSet, report: Report) -> None:
        self._resources = resources
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
        self._resources.uses_all(BackendTrafficPolicy)
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

    With nothing to fail over to (one backend) and no policy asking for retries, a policy that never
    retries still carries the per-attempt timeouts (``backendRequest``, ``streamIdleTimeout``), which Envoy
    keeps on the retry policy; None when there are none either.
    """
    retry = policy.spec.retry if policy is not None else None
    if retry is not None:
        return _envoy_gateway_retry(
            retry,
            per_try_timeout_seconds=per_try_timeout_seconds,
            per_try_idle_timeout_seconds=per_try_idle_timeout_seconds,
        )
    return _default_retry_policy(levels, widest_level, per_try_timeout_seconds, per_try_idle_timeout_seconds)


@lru_cache(maxsize=1024)
def _default_retry_policy(
    levels: int,
    widest_level: int,
    per_try_timeout_seconds: float | None,
    per_try_idle_timeout_seconds: float | None,
) -> ir.RetryPolicy | None:
    """``retry_policy`` without a BackendTrafficPolicy retry: thousands of rules share a few of these
    (immutable values), made once each."""
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
    if can_fail_over:
        return default
    if per_try_timeout_seconds is None and per_try_idle_timeout_seconds is None:
        return None
    return replace(default, retry_on=(), retriable_status_codes=())


def outlier_policy(policy: BackendTrafficPolicy | None) -> ir.OutlierPolicy:
    health = policy.spec.health_check if policy is not None else None
    if health is None or health.passive is None:
        return DEFAULT_OUTLIER
    passive = health.passive
    # Envoy Gateway's outlier detection: its defaults for what the section leaves out, only 5xx counted,
    # Envoy's own maximum ejection time.
    return ir.OutlierPolicy(
        consecutive_errors=passive.consecutive_5xx_errors,
        interval_seconds=passive.interval.total_seconds(),
        base_ejection_seconds=passive.base_ejection_time.total_seconds(),
        max_ejection_seconds=None,
        max_ejection_percent=passive.max_ejection_percent,
        error_status_codes=(),
        consecutive_gateway_errors=passive.consecutive_gateway_errors,
        consecutive_local_origin_failures=passive.consecutive_local_origin_failures,
        split_external_local_origin_errors=passive.split_external_local_origin_errors,
    )


def request_timeout(rule: AIGatewayRouteRule, policy: BackendTrafficPolicy | None) -> timedelta:
    """The route's timeout: the rule's ``timeouts.request``, else the policy's ``timeout.http.requestTimeout``
    (in Envoy Gateway the route's own timeouts take precedence too), else the rule's default."""
    timeouts = policy.spec.timeout if policy is not None else None
    from_policy = (
        timeouts.http.request_timeout if timeouts is not None and timeouts.http is not None else None
    )
    if from_policy is not None and (rule.timeouts is None or rule.timeouts.request is None):
        return from_policy
    return rule.request_timeout


def circuit_breaker(policy: BackendTrafficPolicy | None) -> ir.CircuitBreaker | None:
    breaker = policy.spec.circuit_breaker if policy is not None else None
    if breaker is None:
        return None
    return ir.CircuitBreaker(
        max_connections=breaker.max_connections,
        max_pending_requests=breaker.max_pending_requests,
        max_requests=breaker.max_parallel_requests,
        max_retries=breaker.max_parallel_retries,
        max_requests_per_connection=breaker.max_requests_per_connection,
        per_endpoint_max_connections=(
            breaker.per_endpoint.max_connections if breaker.per_endpoint is not None else None
        ),
    )


def _envoy_gateway_retry(
    retry: Retry, *, per_try_timeout_seconds: float | None, per_try_idle_timeout_seconds: float | None
) -> ir.RetryPolicy:
    """The policy's retry section as Envoy Gateway builds it, with its defaults for what it leaves out.

    The rule's ``backendRequest`` stays the per-attempt timeout unless ``perRetry.timeout`` sets one, and
    its ``streamIdleTimeout`` the per-attempt idle timeout (Envoy AI Gateway sets it on any retry policy).
    """
    retry_on = retry.retry_on
    per_retry = retry.per_retry
    back_off = per_retry.back_off if per_retry is not None else None
    timeout = per_retry.timeout if per_retry is not None else None
    return ir.RetryPolicy(
        num_retries=retry.num_retries,
        retry_on=tuple(retry_on.triggers) if retry_on is not None and retry_on.triggers else EG_RETRY_ON,
        # A retryOn section replaces the status codes too, with none when it lists none.
        retriable_status_codes=(
            tuple(retry_on.http_status_codes) if retry_on is not None else EG_RETRIABLE_STATUS_CODES
        ),
        per_try_timeout_seconds=timeout.total_seconds() if timeout is not None else per_try_timeout_seconds,
        per_try_idle_timeout_seconds=per_try_idle_timeout_seconds,
        back_off_base_seconds=_seconds(back_off.base_interval if back_off is not None else None),
        back_off_max_seconds=_seconds(back_off.max_interval if back_off is not None else None),
        attempts_per_priority=retry.num_attempts_per_priority or None,
        avoid_previous_hosts=True,
        host_selection_attempts=EG_HOST_SELECTION_ATTEMPTS,
    )


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None
