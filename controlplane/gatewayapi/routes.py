"""AIGatewayRoute rules -> Envoy routes, one rule cluster per rule and one hop per backendRef.

Each route's rules become candidates placed on the listeners it attaches to; ``virtual_hosts`` merges the
candidates of all routes into each listener's virtual hosts, ordered by Gateway API precedence. Each
virtual host starts with ``GET /v1/models`` (see ``models``) and ends with a catch-all answering 404 in
OpenAI's error shape.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

from controlplane import ir
from controlplane.gatewayapi import costs, failover
from controlplane.gatewayapi.backends import (
    INFERENCE_EXTENSION_OFF,
    BackendResolver,
    ResolvedBackend,
    header_edits,
)
from controlplane.gatewayapi.grants import denied_message, reference_allowed
from controlplane.gatewayapi.listeners import Attachment, ListenerBinder
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.gatewayapi.models import declared_model
from controlplane.gatewayapi.report import Report
from controlplane.gatewayapi.route_actions import rule_action
from controlplane.gatewayapi.route_model import first_choice_model
from controlplane.gatewayapi.virtual_hosts import (
    CATCH_ALL,
    Candidate,
    Placed,
    listeners,
    placement,
    route_age,
)
from controlplane.resources.aigateway import (
    AIGatewayRoute,
    AIGatewayRouteRule,
    AIGatewayRouteRuleBackendRef,
    AIGatewayRouteRuleMatch,
)
from controlplane.resources.groups import AIGATEWAY_GROUP, INFERENCE_GROUP, INFERENCE_POOL_KIND
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet


@dataclass(frozen=True, slots=True)
class _RouteOutput:
    """One route's share of the tables, computed once per route and kept while its inputs are unchanged."""

    clusters: tuple[ir.RuleCluster, ...]
    hops: tuple[ir.BackendHop, ...]
    placed: Placed


@dataclass(frozen=True, slots=True)
class RouteTables:
    listeners: tuple[ir.HttpListener, ...]
    rule_clusters: tuple[ir.RuleCluster, ...]
    hops: tuple[ir.BackendHop, ...]


def build_routes(
    *,
    resources: ResourceSet,
    report: Report,
    binder: ListenerBinder,
    backends: BackendResolver,
    listen_address: str,
    memo: TranslationMemo,
) -> RouteTables:
    policies = failover.TrafficPolicies(resources=resources, report=report)
    routes = tuple(resources.routes())
    by_age = memo.kept("routes by age", routes, partial(sorted, routes, key=route_age))
    outputs = tuple(
        memo.cached_each(
            "route",
            by_age,
            lambda index: _route(
                by_age[index], report=report, binder=binder, backends=backends, policies=policies
            ),
        )
    )
    where = memo.kept("placement", outputs, partial(placement, (output.placed for output in outputs)))
    tables = listeners(binder, where, report, listen_address, memo=memo)
    clusters, hops = memo.kept("rule clusters and hops", outputs, partial(_clusters_and_hops, outputs))
    return RouteTables(listeners=tables, rule_clusters=clusters, hops=hops)


def _clusters_and_hops(
    outputs: tuple[_RouteOutput, ...],
) -> tuple[tuple[ir.RuleCluster, ...], tuple[ir.BackendHop, ...]]:
    clusters = sorted((cluster for output in outputs for cluster in output.clusters), key=lambda c: c.name)
    hops = sorted((hop for output in outputs for hop in output.hops), key=lambda h: h.name)
    return tuple(clusters), tuple(hops)


def _route(
    route: AIGatewayRoute,
    *,
    report: Report,
    binder: ListenerBinder,
    backends: BackendResolver,
    policies: failover.TrafficPolicies,
) -> _RouteOutput:
    report.consider(route)
    costs.check_costs(route, report)
    if not _rule_names_unique(route, report):
        return _RouteOutput((), (), ())
    clusters: list[ir.RuleCluster] = []
    hops: list[ir.BackendHop] = []
    placed: list[tuple[tuple[str, str], Candidate]] = []
    attachments = binder.attach(route)
    policy = policies.for_route(route)
    outlier = failover.outlier_policy(policy)
    breaker = failover.circuit_breaker(policy)
    for index, rule in enumerate(route.spec.rules):
        # Rules are resolved even when the route attaches nowhere, so its status names every problem.
        cluster, rule_hops = _rule_cluster(route, index, rule, backends, report, outlier)
        if cluster is not None and breaker is not None:
            cluster = replace(cluster, circuit_breaker=breaker)
        action = rule_action(route, index, rule, cluster, report, policy)
        if cluster is not None and isinstance(action, ir.Forward):
            model, rule_hops = first_choice_model(rule, cluster, rule_hops)
            if model != action.model_override:
                action = replace(action, model_override=model)
        if cluster is not None and attachments:
            clusters.append(cluster)
            hops.extend(rule_hops)
        _report_pool_parents(route, rule, attachments, backends, report)
        for candidate in _candidates(route, index, rule, action):
            for attachment in attachments:
                for domain in attachment.domains:
                    placed.append(((attachment.slot.envoy_listener, domain), candidate))
    return _RouteOutput(tuple(clusters), tuple(hops), tuple(placed))


def _report_pool_parents(
    route: AIGatewayRoute,
    rule: AIGatewayRouteRule,
    attachments: list[Attachment],
    backends: BackendResolver,
    report: Report,
) -> None:
    """An InferencePool a rule uses is served through the Gateways the route attached to (its status)."""
    gateways = {attachment.slot.gateway.key for attachment in attachments if attachment.slot.gateway}
    if not gateways or not backends.inference_extension:
        return
    resources = backends.resources
    for ref in rule.backend_refs:
        if not ref.is_inference_pool:
            continue
        namespace = ref.namespace or route.namespace
        pool = resources.inference_pool(namespace, ref.name, group=ref.group)
        if pool is not None and reference_allowed(
            resources,
            source=route,
            target_group=pool.key.group,
            target_kind=INFERENCE_POOL_KIND,
            namespace=namespace,
            name=ref.name,
        ):
            for gateway in sorted(gateways, key=ObjectKey.order):
                report.parent(pool, gateway)


def _rule_names_unique(route: AIGatewayRoute, report: Report) -> bool:
    seen: dict[str, int] = {}
    for index, rule in enumerate(route.spec.rules):
        if rule.name is None:
            continue
        if rule.name == CATCH_ALL or rule.name in seen:
            why = "is reserved" if rule.name == CATCH_ALL else f"is already used by rules[{seen[rule.name]}]"
            report.reject(route, f"spec.rules[{index}].name", f"rule name {rule.name!r} {why}")
            return False
        seen[rule.name] = index
    return True


def _rule_cluster(
    route: AIGatewayRoute,
    index: int,
    rule: AIGatewayRouteRule,
    backends: BackendResolver,
    report: Report,
    outlier: ir.OutlierPolicy,
) -> tuple[ir.RuleCluster | None, list[ir.BackendHop]]:
    base = f"route/{route.namespace}/{route.name}/rule/{index}"
    endpoints: list[ir.WeightedEndpoint] = []
    hops: list[ir.BackendHop] = []
    named = costs.reads_backend(route)
    for ref_index, ref in enumerate(rule.backend_refs):
        if ref.weight == 0:
            continue
        backend = f"{ref.name}.{ref.namespace or route.namespace}" if named else None
        path = f"spec.rules[{index}].backendRefs[{ref_index}]"
        for member_index, target in enumerate(_targets(route, ref, path, backends, report)):
            suffix = f"/{member_index}" if ref.is_inference_pool else ""
            hop = _hop(f"{base}/backend/{ref_index}{suffix}", ref, target)
            # Levels are ranked, not numbered: doubling leaves room for a fail-open level right after.
            level = ref.priority * 2
            hops.append(hop)
            endpoints.append(
                ir.WeightedEndpoint(
                    ir.InternalEndpoint(hop.name), weight=ref.weight, priority=level, backend=backend
                )
            )
            if target.picker_fails_open:
                # FailOpen: the picker's 503 (down, erroring) is retried on the same Pods without the picker.
                bypass = replace(hop, name=f"{hop.name}/without-picker", picker=None)
                hops.append(bypass)
                endpoints.append(
                    ir.WeightedEndpoint(
                        ir.InternalEndpoint(bypass.name),
                        weight=ref.weight,
                        priority=level + 1,
                        backend=backend,
                    )
                )
    if not endpoints:
        return None, []
    return ir.RuleCluster(name=base, endpoints=tuple(endpoints), outlier=outlier), hops


def _targets(
    route: AIGatewayRoute,
    ref: AIGatewayRouteRuleBackendRef,
    path: str,
    backends: BackendResolver,
    report: Report,
) -> list[ResolvedBackend]:
    namespace = ref.namespace or route.namespace
    target_group, target_kind = (
        (ref.group or INFERENCE_GROUP, INFERENCE_POOL_KIND)
        if ref.is_inference_pool
        else (AIGATEWAY_GROUP, "AIServiceBackend")
    )
    if not reference_allowed(
        backends.resources,
        source=route,
        target_group=target_group,
        target_kind=target_kind,
        namespace=namespace,
        name=ref.name,
    ):
        report.unresolved(
            route, f"{path}.namespace", denied_message(kind=target_kind, namespace=namespace, name=ref.name)
        )
        return []
    if ref.is_inference_pool and not backends.inference_extension:
        report.unresolved(route, f"{path}.kind", INFERENCE_EXTENSION_OFF)
        return []
    if ref.is_inference_pool:
        pool = backends.resources.inference_pool(namespace, ref.name, group=ref.group)
        if pool is None:
            report.unresolved(route, f"{path}.name", f"InferencePool {namespace}/{ref.name} not found")
            return []
        pool_members = backends.inference_pool(pool)
        for problem in pool_members.problems:
            report.unresolved(route, f"{path}.name", f"InferencePool {namespace}/{ref.name}: {problem}")
        return pool_members.members
    if ref.kind not in (None, "AIServiceBackend"):
        report.reject(route, f"{path}.kind", f"{ref.kind} is not a supported backendRef kind")
        return []
    backend = backends.resources.backend(namespace, ref.name)
    if backend is None:
        report.unresolved(route, f"{path}.name", f"AIServiceBackend {namespace}/{ref.name} not found")
        return []
    resolved = backends.ai_service_backend(backend)
    if resolved is None:
        report.unresolved(
            route, f"{path}.name", f"AIServiceBackend {namespace}/{ref.name} is not usable (see its status)"
        )
        return []
    return [resolved]


def _hop(name: str, ref: AIGatewayRouteRuleBackendRef, target: ResolvedBackend) -> ir.BackendHop:
    mutation = ref.header_mutation
    headers = header_edits(mutation.set if mutation else (), mutation.remove if mutation else ())
    if ref.model_name_override:
        headers = ir.HeaderEdits(set=((ir.MODEL_HEADER, ref.model_name_override),)).merged_over(headers)
    return ir.BackendHop(
        name=name,
        upstream_cluster=target.upstream,
        model_override=ref.model_name_override or None,
        credential=target.credential,
        request_headers=headers.merged_over(target.headers),
        path_prefix=target.path_prefix,
        host_rewrite=target.host_rewrite,
        picker=target.picker,
        provider_api=target.provider_api,
        transcoding=target.transcoding,
    )


_PATH_RANK = {ir.PathMatchType.EXACT: 0, ir.PathMatchType.PREFIX: 1, ir.PathMatchType.REGEX: 2}


def _candidates(
    route: AIGatewayRoute,
    index: int,
    rule: AIGatewayRouteRule,
    action: ir.Forward | ir.DirectResponse,
) -> list[Candidate]:
    matches: list[AIGatewayRouteRuleMatch | None] = list(rule.matches) or [None]
    out = []
    for match_index, match in enumerate(matches):
        headers = _header_matches(match)
        path = (
            ir.PathMatch(ir.PathMatchType(match.path.type), match.path.value)
            if match is not None and match.path is not None
            else ir.PathMatch()
        )
        name = f"route/{route.namespace}/{route.name}/rule/{index}/match/{match_index}"
        out.append(
            Candidate(
                rank=(_PATH_RANK[path.type], -len(path.value), -len(headers)),
                position=(index, match_index),
                identity=(path, headers),
                route=ir.Route(name=name, path=path, headers=headers, action=action),
                owner=route,
                field_path=f"spec.rules[{index}]" + (f".matches[{match_index}]" if match is not None else ""),
                model=declared_model(route, rule, match),
            )
        )
    return out


def _header_matches(match: AIGatewayRouteRuleMatch | None) -> tuple[ir.HeaderMatch, ...]:
    if match is None:
        return ()
    found = (
        ir.HeaderMatch(header.name.lower(), header.value, regex=header.type == "RegularExpression")
        for header in match.headers
    )
    return tuple(sorted(found, key=lambda h: (h.name, h.value, h.regex)))
