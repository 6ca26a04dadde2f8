"""Regular expressions are refused at the door exactly when Envoy would refuse them.

A ``RegularExpression`` header or path match is compiled with RE2 under Envoy's program size limit; the
agreement with Envoy is checked against a real Envoy, pattern by pattern, including both sides of the limit.
"""

from __future__ import annotations

import pytest
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from controlplane.resources import Severity, load_text
from controlplane.resources.regex import ENVOY_MAX_PROGRAM_SIZE, re2_problem
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE
from tests.conftest import EnvoyFactory
from tests.polling import wait_until
from tests.xds_support import ServerThread, http_route_snapshot

PATTERNS = {
    "x-.*": True,
    "model-(small|large)": True,
    "[[:alpha:]]+": True,
    "x{96}": True,  # program size exactly at Envoy's limit
    "x{97}": False,  # one over
    "(unclosed": False,
    "(?=lookahead)": False,  # Python's re takes these two, RE2 does not
    "(a)\\1": False,
    "a{1001}": False,
    "\\p{NoSuchClass}": False,
}


def _route(pattern: str) -> str:
    return f"""apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: r, namespace: team}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches:
        - headers: [{{type: RegularExpression, name: x-ai-eg-model, value: '{pattern}'}}]
          path: {{type: RegularExpression, value: '{pattern}'}}
      backendRefs: [{{name: a}}]
"""


@pytest.mark.parametrize(("pattern", "valid"), PATTERNS.items())
def test_a_regex_envoy_refuses_is_refused_with_its_field(pattern: str, valid: bool) -> None:
    problems = [p for p in load_text(_route(pattern)).problems if p.severity is Severity.ERROR]
    if valid:
        assert problems == []
        return
    at = "spec.rules[0].matches[0]"
    assert sorted(p.field_path for p in problems) == [f"{at}.headers[0].value", f"{at}.path.value"]
    for problem in problems:
        assert (problem.kind, problem.namespace, problem.name) == ("AIGatewayRoute", "team", "r")
        assert "RE2" in problem.message


def test_an_exact_match_is_not_a_regex() -> None:
    route = _route("(unclosed").replace("type: RegularExpression", "type: Exact")
    problems = [p for p in load_text(route).problems if p.severity is Severity.ERROR]
    # The header takes any value; an exact path must still be a path.
    assert [(p.field_path, "RE2" in p.message) for p in problems] == [
        ("spec.rules[0].matches[0].path.value", False)
    ]


def test_the_limit_is_reported_with_the_size() -> None:
    problem = re2_problem("x{97}")
    assert problem is not None
    assert f"{ENVOY_MAX_PROGRAM_SIZE + 1} is over its limit of {ENVOY_MAX_PROGRAM_SIZE}" in problem


def _with_header_regex(base: Snapshot, pattern: str) -> Snapshot:
    by_type = {type_url: [r.message for r in base.get(type_url).values()] for type_url in base.resources}
    routes = route_pb2.RouteConfiguration()
    routes.CopyFrom(by_type[ROUTE][0])
    by_type[ROUTE] = [routes]
    routes.virtual_hosts[0].routes[0].match.headers.append(
        route_components_pb2.HeaderMatcher(
            name="x-ai-eg-model",
            string_match=string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern)),
        )
    )
    return Snapshot.from_resources(by_type)


@pytest.mark.parametrize("mode", ["sotw"])
def test_envoy_agrees_with_the_check_on_every_pattern(xds: ServerThread, envoys: EnvoyFactory) -> None:
    base = http_route_snapshot(generation="regex", port=0, backend_port=9)
    envoys(node_id="regex")
    for pattern, valid in PATTERNS.items():
        assert (re2_problem(pattern) is None) is valid, pattern
        nacks_before = len(xds.events.all(kind="nack", type_url=ROUTE))
        snapshot = _with_header_regex(base, pattern)
        xds.cache.set_snapshot(snapshot)

        def verdict(snapshot: Snapshot = snapshot, nacks_before: int = nacks_before) -> str:
            if len(xds.events.all(kind="nack", type_url=ROUTE)) > nacks_before:
                return "refused"
            held = all(xds.events.holds(snapshot, t) for t in (LISTENER, CLUSTER, ENDPOINT, ROUTE))
            return "accepted" if held else ""

        seen = wait_until(verdict, message=f"Envoy's verdict on {pattern!r}")
        assert seen == ("accepted" if valid else "refused"), pattern
