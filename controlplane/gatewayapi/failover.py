"""Retry and ejection defaults that make priority failover work with no extra policy.

A rule's backendRefs form one cluster with one priority level per distinct ``priority``. A failed attempt
(connection refused, unresolvable, reset, 5xx or 429) is retried once on each lower level, skipping levels
already tried, and the client gets that level's answer. Outlier detection stops sending first attempts to a
backend that keeps failing, and lets it back in after a short ejection, so traffic fails back on its own.
"""

from __future__ import annotations

from controlplane import ir

RETRY_ON = ("connect-failure", "refused-stream", "reset", "5xx", "retriable-status-codes")
RETRIABLE_STATUS_CODES = (429,)
# Envoy's default back-off (25 ms base, jittered) costs every failover ~13 ms at p50 for nothing: the next
# attempt goes to a different backend, not back to the one that just failed.
BACK_OFF_BASE_SECONDS = 0.001
BACK_OFF_MAX_SECONDS = 0.002


def retry_policy(*, levels: int, per_try_timeout_seconds: float | None) -> ir.RetryPolicy | None:
    """One attempt per priority level; None for a single level (nothing to fail over to)."""
    if levels < 2:
        return None
    return ir.RetryPolicy(
        num_retries=levels - 1,
        retry_on=RETRY_ON,
        retriable_status_codes=RETRIABLE_STATUS_CODES,
        per_try_timeout_seconds=per_try_timeout_seconds,
        back_off_base_seconds=BACK_OFF_BASE_SECONDS,
        back_off_max_seconds=BACK_OFF_MAX_SECONDS,
        next_priority_on_retry=True,
    )
