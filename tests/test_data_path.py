"""The translator leaves out of the data path what a rule does not use: hops that do nothing per attempt,
and the body filters of a listener none of whose routes matches on the model."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from google.protobuf import json_format

from controlplane import ir
from controlplane.xds.resource import CLUSTER
from controlplane.xds.translator import build_xds
from controlplane.xds.translator.filters.stream_usage import STREAM_HEADER
from controlplane.xds.translator.reuse import ReusingTranslator

RULE = "route/default/r/rule/0"
_OUTLIER = ir.OutlierPolicy(
    consecutive_errors=3,
    interval_seconds=1,
    base_ejection_seconds=5,
    max_ejection_seconds=5,
    max_ejection_percent=100,
    error_status_codes=(429,),
)


def _upstream(name: str, *ports: int, **changes: Any) -> ir.UpstreamCluster:
    endpoints = tuple(ir.SocketEndpoint("127.0.0.1", port) for port in ports)
    return replace(
        ir.UpstreamCluster(name=name, discovery=ir.DiscoveryType.EDS, endpoints=endpoints), **changes
    )


def _infra(
    hops: list[ir.BackendHop], upstreams: list[ir.UpstreamCluster], *, route_on_model: bool
) -> ir.Infra:
    headers = (ir.HeaderMatch(ir.MODEL_HEADER, "m"),) if route_on_model else ()
    route = ir.Route(
        name=f"{RULE}/match/0", path=ir.PathMatch(), headers=headers, action=ir.Forward(RULE, 60)
    )
    listener = ir.HttpListener(
        name="gw",
        address="127.0.0.1",
        port=8080,
        route_config="gw",
        virtual_hosts=(ir.VirtualHost(name="gw/*", domains=("*",), routes=(route,)),),
    )
    endpoints = tuple(
        ir.WeightedEndpoint(ir.InternalEndpoint(hop.name), weight=index + 1, priority=index)
        for index, hop in enumerate(hops)
    )
    return ir.Infra(
        listeners=(listener,),
        rule_clusters=(ir.RuleCluster(name=RULE, endpoints=endpoints, outlier=_OUTLIER),),
        hops=tuple(hops),
        upstreams=tuple(upstreams),
    )


def _hop(index: int, upstream: str, **work: Any) -> ir.BackendHop:
    return ir.BackendHop(name=f"{RULE}/backend/{index}", upstream_cluster=upstream, **work)


def _dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _localities(resources: Any) -> list[dict[str, Any]]:
    assignment = next(a for a in resources.endpoints if a.cluster_name == RULE)
    return list(_dict(assignment)["endpoints"])


def _hosts(locality: dict[str, Any]) -> list[dict[str, Any]]:
    return [endpoint["endpoint"]["address"] for endpoint in locality["lb_endpoints"]]


def test_a_hop_that_does_nothing_gives_way_to_its_upstreams_endpoints() -> None:
    infra = _infra(
        [_hop(0, "backend/default/pair"), _hop(1, "backend/default/single")],
        [_upstream("backend/default/pair", 8001, 8002), _upstream("backend/default/single", 8003)],
        route_on_model=True,
    )
    resources = build_xds(infra)
    assert [listener.name for listener in resources.listeners] == ["gw"], "no internal listener is built"
    localities = _localities(resources)
    # One locality per backendRef, weighted by the ref's weight whatever number of endpoints it has.
    assert [(loc["locality"]["sub_zone"], loc["load_balancing_weight"]) for loc in localities] == [
        (f"{RULE}/backend/0", 1),
        (f"{RULE}/backend/1", 2),
    ]
    assert [loc.get("priority", 0) for loc in localities] == [0, 1]
    assert [address["socket_address"]["port_value"] for address in _hosts(localities[0])] == [8001, 8002]
    assert [address["socket_address"]["port_value"] for address in _hosts(localities[1])] == [8003]
    cluster = _dict(next(c for c in resources.clusters if c.name == RULE))
    assert "locality_weighted_lb_config" in cluster["common_lb_config"]
    assert "outlier_detection" in cluster, "ejection applies to the backends' endpoints as it did to hops"


@pytest.mark.parametrize(
    ("work", "upstream_changes"),
    [
        ({"model_override": "gpt-4o"}, {}),
        ({"credential": ir.Credential(secret="credential/default/key", header="Authorization")}, {}),
        ({"request_headers": ir.HeaderEdits(set=(("x-team", "a"),))}, {}),
        ({"path_prefix": "/v1beta/openai"}, {}),
        ({"host_rewrite": "api.example.com"}, {}),
        ({}, {"tls": ir.UpstreamTls(sni="api.example.com", verify_hostname=None, ca_secret=None)}),
        ({}, {"discovery": ir.DiscoveryType.DNS}),
        ({}, {"balancing": ir.Balancing.LEAST_REQUEST}),
        ({}, {"connect_timeout_seconds": 2.0}),
    ],
    ids=[
        "model-override",
        "credential",
        "headers",
        "path-prefix",
        "host-rewrite",
        "tls-upstream",
        "dns-upstream",
        "least-request-upstream",
        "own-connect-timeout",
    ],
)
def test_a_hop_stays_when_it_works_or_its_upstream_needs_it(
    work: dict[str, Any], upstream_changes: dict[str, Any]
) -> None:
    infra = _infra(
        [_hop(0, "backend/default/a", **work), _hop(1, "backend/default/b")],
        [_upstream("backend/default/a", 8001, **upstream_changes), _upstream("backend/default/b", 8002)],
        route_on_model=True,
    )
    resources = build_xds(infra)
    assert [listener.name for listener in resources.listeners] == ["gw", f"{RULE}/backend/0"]
    first, second = _localities(resources)
    assert _hosts(first) == [{"envoy_internal_address": {"server_listener_name": f"{RULE}/backend/0"}}]
    assert _hosts(second) == [{"socket_address": {"address": "127.0.0.1", "port_value": 8002}}]


def test_an_upstream_without_endpoints_is_an_empty_locality_the_next_priority_covers() -> None:
    infra = _infra(
        [_hop(0, "backend/default/none"), _hop(1, "backend/default/b")],
        [_upstream("backend/default/none"), _upstream("backend/default/b", 8002)],
        route_on_model=False,
    )
    resources = build_xds(infra)
    first, second = _localities(resources)
    assert "lb_endpoints" not in first
    assert len(_hosts(second)) == 1
    assignment = _dict(next(a for a in resources.endpoints if a.cluster_name == RULE))
    assert assignment["policy"]["overprovisioning_factor"] == 100


def _http_filters(resources: Any) -> list[str]:
    manager = _dict(resources.listeners[0])["filter_chains"][0]["filters"][0]["typed_config"]
    return [http_filter["name"] for http_filter in manager["http_filters"]]


_BODY_FILTERS = [
    "envoy.filters.http.json_to_metadata",  # the body check: model and stream
    "envoy.filters.http.header_mutation",  # the stream header
    "envoy.filters.http.match_delegate",  # the multipart reader and include_usage: forms and streams only
    "envoy.filters.http.json_to_metadata",  # usage of a JSON response
    "envoy.filters.http.sse_to_metadata",  # usage of a stream
]


@pytest.mark.parametrize("route_on_model", [True, False])
def test_a_listener_forwarding_to_backends_reads_the_body_once(route_on_model: bool) -> None:
    hops, upstreams = [_hop(0, "backend/default/b")], [_upstream("backend/default/b", 8002)]
    reading = build_xds(_infra(hops, upstreams, route_on_model=route_on_model))
    assert _http_filters(reading) == [*_BODY_FILTERS, "envoy.filters.http.router"]
    assert reading.routes[0].virtual_hosts[0].routes[0].name == "route-invalid-body"
    manager = _dict(reading.listeners[0])["filter_chains"][0]["filters"][0]["typed_config"]
    (early,) = manager["early_header_mutation_extensions"]
    assert early["typed_config"]["mutations"] == [{"remove": ir.MODEL_HEADER}, {"remove": STREAM_HEADER}]


def test_a_listener_of_direct_responses_only_reads_no_body() -> None:
    infra = _infra([], [], route_on_model=False)
    (route,) = infra.listeners[0].virtual_hosts[0].routes
    answering = replace(route, action=ir.DirectResponse(status=404, message="none"))
    vhost = replace(infra.listeners[0].virtual_hosts[0], routes=(answering,))
    listener = replace(infra.listeners[0], virtual_hosts=(vhost,))
    resources = build_xds(replace(infra, listeners=(listener,), rule_clusters=()))
    assert _http_filters(resources) == ["envoy.filters.http.router"]
    assert [r.name for r in resources.routes[0].virtual_hosts[0].routes] == [f"{RULE}/match/0"]


def _served(infra: ir.Infra) -> tuple[list[str], list[str]]:
    resources = build_xds(infra)
    return [c.name for c in resources.clusters], [a.cluster_name for a in resources.endpoints]


def test_an_upstream_only_a_hop_that_gave_way_sent_to_is_not_served() -> None:
    picker = ir.EndpointPicker(cluster="endpointpicker/default/epp/9002", authority="epp.default.svc:9002")
    infra = _infra(
        [
            _hop(0, "backend/default/direct"),
            _hop(1, "backend/default/kept", model_override="m2"),
            _hop(2, "inferencepool/default/pool", picker=picker),
        ],
        [
            _upstream("backend/default/direct", 8001),
            _upstream("backend/default/kept", 8002),
            _upstream("backend/default/nobody", 8003),
            _upstream("endpointpicker/default/epp/9002", 9002, http2=True),
            _upstream("inferencepool/default/pool", 8004, picked_endpoint=True),
        ],
        route_on_model=False,
    )
    served = ["backend/default/kept", "endpointpicker/default/epp/9002", "inferencepool/default/pool", RULE]
    assert _served(infra) == (served, served)
    direct = _localities(build_xds(infra))[0]
    assert _hosts(direct) == [{"socket_address": {"address": "127.0.0.1", "port_value": 8001}}]


def test_a_reused_translation_serves_the_upstreams_a_fresh_one_does() -> None:
    """Hops and upstreams replaced in place (a hop starting or stopping work, an upstream's endpoints or
    shape changing) add and drop upstream clusters exactly as translating from scratch does."""
    plain = [_hop(0, "backend/default/a"), _hop(1, "backend/default/b")]
    working = [_hop(0, "backend/default/a", model_override="m2"), plain[1]]
    upstreams = [_upstream("backend/default/a", 8001), _upstream("backend/default/b", 8002)]
    moved = [_upstream("backend/default/a", 8005), upstreams[1]]
    tls = ir.UpstreamTls(sni="b.example.com", verify_hostname=None, ca_secret=None)
    secured = [upstreams[0], _upstream("backend/default/b", 8002, tls=tls)]
    a, b = "backend/default/a", "backend/default/b"
    steps = [
        (plain, upstreams, []),
        (working, upstreams, [a]),
        (working, moved, [a]),
        (plain, moved, []),
        (plain, secured, [b]),
        (working, secured, [a, b]),
        (working, upstreams, [a]),
        (plain, upstreams, []),
    ]
    reusing = ReusingTranslator()
    for hops, ups, served in steps:
        infra = _infra(hops, ups, route_on_model=False)
        fresh = ReusingTranslator().resources(infra)
        reused = reusing.resources(infra)
        assert {t: [(r.name, r.version) for r in rs] for t, rs in reused.items()} == {
            t: [(r.name, r.version) for r in rs] for t, rs in fresh.items()
        }
        assert [r.name for r in reused[CLUSTER]] == [RULE, *served]
