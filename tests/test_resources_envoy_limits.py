"""What Envoy would NACK is refused at the door, with the field named: upstream's limits, and a few more.

The property tests and a sweep of hostile strings through a real Envoy found these: an endpoint address
Envoy refuses as malformed, control characters in header values and model names, paths that are no URL
path, header names to remove that are no token, and a "%" in a model name (escaped, not refused).
"""

from __future__ import annotations

import pytest

from controlplane.resources import Severity, load_text
from controlplane.resources.fieldtypes import DNS_SUBDOMAIN
from tests.resources_support import load_errors


def _errors(endpoint: str) -> list[tuple[str, str]]:
    text = (
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: b, namespace: n}\n"
        f"spec:\n  endpoints: [{endpoint}]\n"
    )
    return load_errors(text)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "fe80::1", "2001:db8:0:0:0:0:0:1"])
def test_ip_addresses_are_taken(address: str) -> None:
    assert _errors(f"{{ip: {{address: '{address}', port: 8000}}}}") == []


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("1:2", "must be an IPv4 or IPv6 address"),  # upstream's pattern takes it; Envoy does not
        ("10.0.0.256", "must match the pattern"),
        ("localhost", "must match the pattern"),
        ("xx", "must be at least 3 characters long"),
        ("1" * 46, "must be at most 45 characters long"),
    ],
)
def test_what_is_no_ip_address_is_refused_with_its_field(address: str, message: str) -> None:
    ((path, found),) = _errors(f"{{ip: {{address: '{address}', port: 8000}}}}")
    assert path == "spec.endpoints[0].ip.address"
    assert found.startswith(message)


def test_hostnames_and_socket_paths_have_upstreams_limits() -> None:
    assert _errors("{fqdn: {hostname: api.openai.com, port: 443}}") == []
    assert _errors("{unix: {path: /run/model.sock}}") == []
    assert _errors("{fqdn: {hostname: Not_A_Host, port: 443}}") == [
        ("spec.endpoints[0].fqdn.hostname", f"must match the pattern ^{DNS_SUBDOMAIN}$")
    ]
    assert _errors("{unix: {path: /" + "s" * 108 + "}}") == [
        ("spec.endpoints[0].unix.path", "must be at most 108 characters long")
    ]


def _route_errors(rule: str) -> list[tuple[str, str]]:
    text = (
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\n"
        "metadata: {name: r, namespace: n}\n"
        f"spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - {rule}\n"
    )
    return load_errors(text)


_NO_CONTROL = "must not contain NUL, CR or LF (not allowed in a header)"
_NO_PATH = "must be an absolute path of URL path characters (others %-encoded), e.g. /v1/chat"


@pytest.mark.parametrize(
    ("rule", "field", "message"),
    [
        ('matches: [{headers: [{name: h, value: "a\\nb"}]}]', "matches[0].headers[0].value", _NO_CONTROL),
        (
            'backendRefs: [{name: b, modelNameOverride: "m\\r\\n"}]',
            "backendRefs[0].modelNameOverride",
            _NO_CONTROL,
        ),
        (
            'backendRefs: [{name: b, headerMutation: {set: [{name: x, value: "\\0"}]}}]',
            "backendRefs[0].headerMutation.set[0].value",
            _NO_CONTROL,
        ),
        (
            'backendRefs: [{name: b, headerMutation: {remove: ["bad name"]}}]',
            "backendRefs[0].headerMutation.remove[0]",
            "must be an HTTP header name (an RFC 7230 token)",
        ),
        ("matches: [{path: {value: v1}}]", "matches[0].path.value", _NO_PATH),
        ("matches: [{path: {type: Exact, value: /50%}}]", "matches[0].path.value", _NO_PATH),
        (
            "matches: [{path: {value: /a//b}}]",
            "matches[0].path.value",
            "must not contain //, /./, /../ or %2f, nor end in /. or /..",
        ),
        (
            "filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: x}}}]",
            "filters[0].urlRewrite.path.replaceFullPath",
            _NO_PATH,
        ),
        (
            "filters: [{type: URLRewrite, urlRewrite: {hostname: Not_A_Host}}]",
            "filters[0].urlRewrite.hostname",
            f"must match the pattern ^{DNS_SUBDOMAIN}$",
        ),
    ],
)
def test_route_fields_envoy_would_refuse_are_refused(rule: str, field: str, message: str) -> None:
    assert _route_errors(
        f"backendRefs: [{{name: b}}]\n    {rule}" if "backendRefs" not in rule else rule
    ) == [(f"spec.rules[0].{field}", message)]


def test_what_envoy_takes_is_taken() -> None:
    rule = (
        'matches: [{path: {type: Exact, value: "/v1/chat%2Dx"}, headers: [{name: h, value: "tab\\there"}]}]\n'
        '    backendRefs: [{name: b, modelNameOverride: "50%-model", headerMutation: {remove: [x-drop]}}]'
    )
    assert _route_errors(rule) == []


def _policy(retry: str, health: str = "") -> str:
    return (
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\n"
        "metadata: {name: p, namespace: n}\nspec:\n"
        "  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]\n"
        f"  retry: {retry}\n" + (f"  healthCheck: {{passive: {health}}}\n" if health else "")
    )


@pytest.mark.parametrize(
    ("retry", "health", "field", "message"),
    [
        ("{perRetry: {backOff: {baseInterval: 0s}}}", "", "spec.retry.perRetry.backOff.baseInterval", ">0"),
        ("{perRetry: {backOff: {maxInterval: 0s}}}", "", "spec.retry.perRetry.backOff.maxInterval", ">0"),
        (
            "{perRetry: {backOff: {baseInterval: 2s, maxInterval: 1s}}}",
            "",
            "spec.retry.perRetry.backOff",
            "maxInterval must not be shorter than baseInterval",
        ),
        ("{numRetries: 2147483648}", "", "spec.retry.numRetries", "must be at most 2147483647"),
        ("{}", "{interval: 0s}", "spec.healthCheck.passive.interval", ">0"),
        ("{}", "{baseEjectionTime: 0s}", "spec.healthCheck.passive.baseEjectionTime", ">0"),
        (
            "{}",
            "{consecutive5XxErrors: 4294967296}",
            "spec.healthCheck.passive.consecutive5XxErrors",
            "4294967295",
        ),
    ],
)
def test_traffic_policy_values_envoy_would_refuse_are_refused(
    retry: str, health: str, field: str, message: str
) -> None:
    problems = [p for p in load_text(_policy(retry, health)).problems if p.severity is Severity.ERROR]
    expected = "must be longer than 0s" if message == ">0" else message
    assert [(p.field_path, expected in p.message) for p in problems] == [(field, True)]


def test_a_base_back_off_alone_gets_upstreams_default_maximum() -> None:
    """Ten times the base, as Envoy Gateway documents and Envoy does when the maximum is left out; a fixed
    default maximum could fall below a long base, which Envoy refuses."""
    from controlplane.pipeline import translate

    route = (
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\n"
        "metadata: {name: r, namespace: n}\n"
        "spec:\n  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: b}]}]\n---\n"
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\n"
        "metadata: {name: b, namespace: n}\n"
        "spec: {schema: {name: OpenAI}, backendRef: {name: h, kind: Backend, group: gateway.envoyproxy.io}}\n"
        "---\n"
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: h, namespace: n}\n"
        "spec: {endpoints: [{ip: {address: 127.0.0.1, port: 8000}}]}\n---\n"
    )
    loaded = load_text(route + _policy("{perRetry: {backOff: {baseInterval: 3s}}}"))
    assert [p.format() for p in loaded.problems if p.severity is Severity.ERROR] == []
    result = translate(loaded.resource_set())
    policies = [
        r.route.retry_policy
        for c in result.envoy.routes
        for v in c.virtual_hosts
        for r in v.routes
        if r.route.cluster
    ]
    assert policies
    for policy in policies:
        assert policy.retry_back_off.base_interval.seconds == 3
        assert not policy.retry_back_off.HasField("max_interval")
