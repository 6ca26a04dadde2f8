"""How a rule's traffic survives failing backends: retries, passive health (ejection) and circuit breaking.

Part of the IR: ``controlplane.ir`` re-exports every name here, so the rest of the code says
``ir.RetryPolicy`` like any other IR type. Kept apart because these policies are one topic with one source:
``gatewayapi.failover`` makes them from our defaults and a ``BackendTrafficPolicy``, and the translator
(``xds.translator.route``, ``xds.translator.cluster``) turns them into Envoy's retry policy, outlier detection
and circuit breakers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Failover: which failures are retried, how often, and where the retry goes."""

    num_retries: int
    retry_on: tuple[str, ...]
    retriable_status_codes: tuple[int, ...]
    per_try_timeout_seconds: float | None
    per_try_idle_timeout_seconds: float | None
    back_off_base_seconds: float | None
    """None: Envoy's default back-off (25 ms base)."""
    back_off_max_seconds: float | None
    """None: Envoy's default (ten times the base)."""
    attempts_per_priority: int | None
    """Move to the next priority level after this many attempts on one; None: stay on the level."""
    avoid_previous_hosts: bool
    """Retry on another host of the same level (a weighted sibling) rather than the one that failed."""
    host_selection_attempts: int = 3
    """How many picks a retry may take to find a host it has not tried (with ``avoid_previous_hosts``)."""


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    """Passive health: eject a backend after consecutive errors, let it back in after the ejection time."""

    consecutive_errors: int
    interval_seconds: float
    base_ejection_seconds: float
    max_ejection_seconds: float | None
    """None: Envoy's default (300 s)."""
    max_ejection_percent: int
    error_status_codes: tuple[int, ...]
    """Statuses counted as errors besides 5xx (429: a rate-limited backend is skipped too)."""
    consecutive_gateway_errors: int | None = None
    consecutive_local_origin_failures: int | None = None
    split_external_local_origin_errors: bool = False


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Limits on the rule cluster (Envoy Gateway's circuitBreaker); None: Envoy's default."""

    max_connections: int | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None
    max_retries: int | None = None
    max_requests_per_connection: int | None = None
    per_endpoint_max_connections: int | None = None
