"""The Kubernetes source's pure parts: condition bookkeeping, what counts as a change, back-off, lease timing.

These decide how often the cluster is written to and how often the translator runs, so their rules are
pinned here without a server; everything that talks to one is tested against a real API server.
"""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.gatewayapi import Condition, ObjectStatus
from controlplane.resources.problems import ObjectKey
from controlplane.resources.status import MAX_CONDITION_MESSAGE
from controlplane.sources.kubernetes.leader import LeaseSettings
from controlplane.sources.kubernetes.reflector import Backoff, WatchScope
from controlplane.sources.kubernetes.status import (
    desired_conditions,
    desired_parents,
    needs_write,
    parents_need_write,
)
from controlplane.sources.kubernetes.store import ObjectStore

KEY = ObjectKey("aigateway.envoyproxy.io", "AIGatewayRoute", "ns", "route")
SCOPE = WatchScope("aigateway.envoyproxy.io", "AIGatewayRoute", "ns")


def _status(accepted: bool, message: str = "") -> ObjectStatus:
    return ObjectStatus(
        KEY, (Condition("Accepted", accepted, "Accepted" if accepted else "Invalid", message),)
    )


def test_last_transition_time_moves_only_when_the_condition_flips() -> None:
    first = desired_conditions(_status(True), generation=1, current=(), now="t1")
    assert first[0]["lastTransitionTime"] == "t1"
    same = desired_conditions(_status(True), generation=2, current=tuple(first), now="t2")
    assert same[0]["lastTransitionTime"] == "t1"
    assert same[0]["observedGeneration"] == 2
    flipped = desired_conditions(
        _status(False, "spec.rules[0]: bad"), generation=2, current=tuple(same), now="t3"
    )
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_a_write_is_needed_only_for_what_a_user_can_see() -> None:
    written = desired_conditions(_status(True), generation=1, current=(), now="t1")
    again = desired_conditions(_status(True), generation=1, current=tuple(written), now="t2")
    assert not needs_write(again, tuple(written))
    assert needs_write(desired_conditions(_status(True), generation=2, current=(), now="t2"), tuple(written))
    assert needs_write(
        desired_conditions(_status(True, "now a note"), generation=1, current=(), now="t2"), tuple(written)
    )


def test_messages_are_cut_to_what_the_api_server_accepts() -> None:
    long = desired_conditions(
        _status(False, "x" * (MAX_CONDITION_MESSAGE + 10)), generation=1, current=(), now="t"
    )
    assert len(long[0]["message"]) == MAX_CONDITION_MESSAGE


def _route(*, resource_version: str, status: dict[str, Any] | None = None, weight: int = 1) -> dict[str, Any]:
    route: dict[str, Any] = {
        "apiVersion": "aigateway.envoyproxy.io/v1beta1",
        "kind": "AIGatewayRoute",
        "metadata": {
            "name": "route",
            "namespace": "ns",
            "resourceVersion": resource_version,
            "generation": 1,
        },
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "b", "weight": weight}]}],
        },
    }
    if status is not None:
        route["status"] = status
    return route


def test_our_own_status_writes_and_new_resource_versions_do_not_trigger_a_rebuild() -> None:
    store = ObjectStore(status_is_ours=[("aigateway.envoyproxy.io", "AIGatewayRoute")])
    store.replace(SCOPE, [_route(resource_version="1")])
    assert store.dirty
    store.load()
    assert not store.dirty
    store.apply(
        SCOPE, "MODIFIED", _route(resource_version="2", status={"conditions": [{"type": "Accepted"}]})
    )
    assert not store.dirty
    store.apply(SCOPE, "MODIFIED", _route(resource_version="3", weight=2))
    assert store.dirty
    store.load()
    store.apply(SCOPE, "DELETED", _route(resource_version="4", weight=2))
    assert store.dirty
    assert list(store.resources()) == []


def test_a_relist_that_changes_nothing_is_not_a_change() -> None:
    store = ObjectStore(status_is_ours=[])
    store.replace(SCOPE, [_route(resource_version="1")])
    store.load()
    store.replace(SCOPE, [_route(resource_version="7")])
    assert not store.dirty


@pytest.mark.parametrize("attempts", [1, 3, 12])
def test_back_off_doubles_with_jitter_up_to_its_cap(attempts: int) -> None:
    backoff = Backoff(base=0.2, cap=5.0)
    delays = [backoff.next_delay() for _ in range(attempts)]
    for attempt, delay in enumerate(delays):
        ceiling = min(5.0, 0.2 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 0.2


def test_lease_timings_keep_client_go_proportions() -> None:
    settings = LeaseSettings.for_duration(namespace="ns", lease_duration=15.0)
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (15.0, 10.0, 2.0)


def _parent_entry(name: str, *, namespace: str | None = None, accepted: str = "True") -> dict[str, Any]:
    ref = {"name": name, **({"namespace": namespace} if namespace else {})}
    condition = {"type": "Accepted", "status": accepted, "reason": "Accepted", "message": ""}
    return {"parentRef": ref, "conditions": [{**condition, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}


def test_pool_parents_replace_ours_drop_our_stale_gateway_and_keep_other_controllers() -> None:
    def gateway(name: str) -> ObjectKey:
        return ObjectKey("gateway.networking.k8s.io", "Gateway", "ns", name)

    status = ObjectStatus(
        ObjectKey("inference.networking.k8s.io", "InferencePool", "ns", "pool"),
        (Condition("Accepted", True, "Accepted", ""),),
        parents=(gateway("ours-now"),),
        managed_parents=frozenset({gateway("ours-now"), gateway("ours-before")}),
    )
    # parentRef namespace defaults to the pool's: "ours-before" without one is ours and goes.
    current = (
        _parent_entry("theirs"),
        _parent_entry("ours-before"),
        _parent_entry("ours-now", namespace="ns"),
    )
    desired = desired_parents(status, generation=3, current=current, now="2026-12-06T00:00:00Z")
    assert [entry["parentRef"]["name"] for entry in desired] == ["theirs", "ours-now"]
    assert desired[0] is current[0]
    (ours,) = desired[1]["conditions"]
    assert ours["observedGeneration"] == 3
    assert ours["lastTransitionTime"] == "2026-01-01T00:00:00Z", "status did not flip"
    assert parents_need_write(desired, current)
    assert not parents_need_write(desired, tuple(reversed(desired))), "order alone is no reason to write"
