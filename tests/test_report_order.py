"""Statuses come out in key order however many objects were judged: the report sorts large key sets in
runs it merges (so the event loop's thread is not kept waiting), which must give the order one sort gives."""

from __future__ import annotations

import random

from controlplane.gatewayapi.report import Report
from controlplane.resources.problems import ObjectKey


def _keys(count: int) -> list[ObjectKey]:
    kinds = ("AIGatewayRoute", "AIServiceBackend", "Backend", "HTTPRoute", "Secret")
    return [
        ObjectKey("aigateway.envoyproxy.io", kinds[i % len(kinds)], f"team-{i % 37}", f"route-{i}")
        for i in range(count)
    ]


def test_statuses_of_thousands_of_objects_are_in_key_order() -> None:
    keys = _keys(9_001)  # several sort runs, the last one short
    random.Random(7).shuffle(keys)
    report = Report(source_of=lambda _key: None)
    report.judged(keys)
    first = report.statuses()
    assert list(first.by_key) == sorted(keys)

    # A later translation with other objects: the kept statuses and the new ones, still in key order.
    later_keys = keys[500:] + _keys(9_500)[9_001:]
    later = Report(source_of=lambda _key: None)
    later.judged(later_keys)
    second = later.statuses(previous=first)
    assert list(second.by_key) == sorted(set(later_keys))
    assert all(second.by_key[key] is first.by_key[key] for key in later_keys if key in first.by_key)


def test_statuses_of_one_large_kind_are_in_key_order() -> None:
    # 10,000 backends in one namespace: one group of names sorted in several runs, then merged.
    keys = [
        ObjectKey("aigateway.envoyproxy.io", "AIServiceBackend", "bench", f"a{i}-{side}")
        for i in range(5_000)
        for side in "ab"
    ]
    keys += [ObjectKey("aigateway.envoyproxy.io", "AIGatewayRoute", "bench", f"r{i}") for i in range(5_000)]
    keys += [ObjectKey("gateway.networking.k8s.io", "Gateway", "", "bench")]
    random.Random(11).shuffle(keys)
    report = Report(source_of=lambda _key: None)
    report.judged(keys)
    assert list(report.statuses().by_key) == sorted(keys, key=ObjectKey.order)
