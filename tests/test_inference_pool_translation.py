"""InferencePool translation rules that the golden files do not spell out: the extension switch, where the
picker is called, and what failureMode changes."""

from __future__ import annotations

from pathlib import Path

from controlplane.gatewayapi import TranslateOptions, build_ir
from controlplane.resources.problems import ObjectKey
from controlplane.sources.file_reading import load_paths

POOLS = Path(__file__).parent / "testdata" / "translate" / "inference-pools.in.yaml"


def _conditions(*, inference_extension: bool) -> dict[tuple[str, str], dict[str, tuple[bool, str, str]]]:
    resources = load_paths([POOLS]).resource_set()
    built = build_ir(resources, options=TranslateOptions(inference_extension=inference_extension))
    return {
        (key.kind, key.name): {c.type: (c.status, c.reason, c.message) for c in status.conditions}
        for key, status in built.statuses.items()
    }


def test_with_the_extension_off_pools_are_refused_and_rules_naming_them_say_so() -> None:
    found = _conditions(inference_extension=False)
    accepted, reason, message = found[("InferencePool", "open-pool")]["Accepted"]
    assert (accepted, reason) == (False, "InferenceExtensionDisabled")
    assert "--enable-inference-extension" in message
    resolved, _, message = found[("AIGatewayRoute", "pools")]["ResolvedRefs"]
    assert not resolved
    assert "spec.rules[0].backendRefs[0].kind: the Inference Extension is off" in message


def test_with_the_extension_off_the_rest_of_the_rule_keeps_serving() -> None:
    resources = load_paths([POOLS]).resource_set()
    infra = build_ir(resources, options=TranslateOptions(inference_extension=False)).infra
    assert [hop.upstream_cluster for hop in infra.hops] == ["backend/default/fallback"]
    assert not any(cluster.name.startswith("inferencepool/") for cluster in infra.upstreams)


def test_only_the_pool_hop_calls_the_picker_and_fail_open_adds_a_hop_without_it() -> None:
    resources = load_paths([POOLS]).resource_set()
    infra = build_ir(resources, options=TranslateOptions(inference_extension=True)).infra
    by_name = {hop.name: hop for hop in infra.hops}
    open_hop = by_name["route/default/pools/rule/0/backend/0/0"]
    assert open_hop.picker is not None
    assert open_hop.picker.authority == "epp.default.svc:9002"
    assert by_name[f"{open_hop.name}/without-picker"].picker is None
    assert by_name["route/default/pools/rule/0/backend/1"].picker is None, "the AIServiceBackend has none"
    close_hops = [name for name in by_name if name.startswith("route/default/pools/rule/1/")]
    assert close_hops == ["route/default/pools/rule/1/backend/0/0"], "FailClose: no way around the picker"
    levels = {
        endpoint.target.listener: endpoint.priority  # type: ignore[union-attr]
        for cluster in infra.rule_clusters
        if cluster.name == "route/default/pools/rule/0"
        for endpoint in cluster.endpoints
    }
    assert sorted(levels, key=levels.__getitem__) == [
        open_hop.name,
        f"{open_hop.name}/without-picker",
        "route/default/pools/rule/0/backend/1",
    ], "the picker, then the same Pods without it, then the priority-1 backend"


def test_each_pool_a_rule_uses_is_served_through_the_gateway_the_route_attaches_to() -> None:
    resources = load_paths([POOLS]).resource_set()
    statuses = build_ir(resources, options=TranslateOptions(inference_extension=True)).statuses
    pools = {key.name: status for key, status in statuses.items() if key.kind == "InferencePool"}
    gateway = ObjectKey("gateway.networking.k8s.io", "Gateway", "default", "gw")
    used = {name for name, status in pools.items() if status.parents}
    assert all(status.parents == (gateway,) for name, status in pools.items() if name in used)
    assert used == {
        "open-pool",
        "close-pool",
        "plain-pool",
        "missing-picker-open",
        "missing-picker-close",
        "wrong-port",
        "wrong-kind",
        "unready",
        "no-port",
    }
    assert all(status.managed_parents == frozenset({gateway}) for status in pools.values())
    # A picker Service that is missing is the pool's own reference problem, with upstream's reason.
    resolved = {c.type: c for c in pools["missing-picker-close"].conditions}["ResolvedRefs"]
    assert (resolved.status, resolved.reason) == (False, "InvalidExtensionRef")
