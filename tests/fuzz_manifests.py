"""Valid upstream-shaped manifests and the ``hypothesis`` mutations that break them, for the property tests.

A generated set is some untouched *groups* (a Gateway and everything routed through it, each in its own
namespace and on its own port) plus one *victim* group that takes one to four mutations: wrong types,
deleted fields, huge strings, unicode, dangling references, duplicated objects and conflicting rules. The
property (``check``) is that loading and translating the set never raises, that every error names the
object's kind, name and field, that no secret value is printed, and that the untouched groups come out
exactly as they do alone.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st

from controlplane.gatewayapi import TranslateOptions
from controlplane.pipeline import PipelineResult, translate
from controlplane.resources import Severity, load_text
from controlplane.resources.problems import Problem

API_KEY = "sk-fuzz-do-not-print-4f1c9a"
"""The victim's and every group's API key: it must never show up in a problem or a status."""
VICTIM = "victim"
Doc = dict[str, Any]
Step = str | int


def group(namespace: str, *, port: int, backend_ports: tuple[int, int]) -> list[Doc]:
    """One Gateway with a route over two prioritised backends, one keyed, in ``namespace``."""
    meta = {"namespace": namespace}
    aigw = "aigateway.envoyproxy.io/v1beta1"
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", **meta},
            "spec": {
                "gatewayClassName": "ai-gateway",
                "listeners": [
                    {"name": "http", "protocol": "HTTP", "port": port, "hostname": f"*.{namespace}.example"}
                ],
            },
        },
        {
            "apiVersion": aigw,
            "kind": "AIGatewayRoute",
            "metadata": {"name": "route", **meta},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "hostnames": [f"llm.{namespace}.example"],
                "rules": [
                    {
                        "matches": [{"headers": [{"name": "x-ai-eg-model", "value": "chat"}]}],
                        "backendRefs": [
                            {
                                "name": "primary",
                                "priority": 0,
                                "modelNameOverride": "big",
                                "headerMutation": {
                                    "set": [{"name": "x-ref", "value": "a"}],
                                    "remove": ["x-drop"],
                                },
                            },
                            {"name": "fallback", "priority": 1, "weight": 2},
                        ],
                        "timeouts": {"request": "30s"},
                    },
                    {
                        "matches": [
                            {
                                "headers": [
                                    {"type": "RegularExpression", "name": "x-ai-eg-model", "value": "m-.*"}
                                ],
                                "path": {"type": "PathPrefix", "value": "/m"},
                            }
                        ],
                        "filters": [
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {
                                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v1"}
                                },
                            },
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {"set": [{"name": "x-r", "value": "1"}]},
                            },
                        ],
                        "backendRefs": [{"name": "fallback"}],
                    },
                ],
            },
        },
        *(
            {
                "apiVersion": aigw,
                "kind": "AIServiceBackend",
                "metadata": {"name": name, **meta},
                "spec": {
                    "schema": {"name": "OpenAI"},
                    "backendRef": {
                        "name": f"{name}-host",
                        "kind": "Backend",
                        "group": "gateway.envoyproxy.io",
                    },
                    "headerMutation": {"set": [{"name": "x-team", "value": namespace}]},
                },
            }
            for name in ("primary", "fallback")
        ),
        *(
            {
                "apiVersion": "gateway.envoyproxy.io/v1alpha1",
                "kind": "Backend",
                "metadata": {"name": f"{name}-host", **meta},
                "spec": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": backend_port}}]},
            }
            for name, backend_port in zip(("primary", "fallback"), backend_ports, strict=True)
        ),
        {
            "apiVersion": aigw,
            "kind": "BackendSecurityPolicy",
            "metadata": {"name": "key", **meta},
            "spec": {
                "targetRefs": [
                    {"group": "aigateway.envoyproxy.io", "kind": "AIServiceBackend", "name": "primary"}
                ],
                "type": "APIKey",
                "apiKey": {"secretRef": {"name": "openai"}},
            },
        },
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "BackendTrafficPolicy",
            "metadata": {"name": "failover", **meta},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "route"}],
                "retry": {
                    "numAttemptsPerPriority": 1,
                    "numRetries": 3,
                    "perRetry": {"backOff": {"baseInterval": "100ms", "maxInterval": "1s"}, "timeout": "10s"},
                    "retryOn": {
                        "httpStatusCodes": [500, 503],
                        "triggers": ["connect-failure", "retriable-status-codes"],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "openai", **meta},
            "stringData": {"apiKey": API_KEY},
        },
    ]


# --- mutations ---------------------------------------------------------------------------------------

WRONG_TYPES: list[Any] = [None, True, -1, 0, 2**31, 2**32, 2**70, 1.5, "", "text", [], ["x"], {}, {"x": 1}]
"""Values put where another type belongs; the integers are never usable ports (Envoy would refuse to bind)."""


def _paths(node: Any, prefix: tuple[Step, ...] = ()) -> Iterator[tuple[Step, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _set(doc: Doc, path: tuple[Step, ...], value: Any) -> None:
    parent: Any = doc
    for step in path[:-1]:
        parent = parent[step]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


_DELETE = object()
_STRINGS = st.one_of(
    st.text(min_size=1, max_size=40),  # unicode of every category but surrogates
    st.sampled_from(["a" * 254, "x" * 4097, "y" * 70_000, "ghost", "-bad-", "UPPER", "a/b", "*", "${x}"]),
    # What Envoy is picky about: control characters, format-string percents, paths that are no paths.
    st.sampled_from(["\x00", "a\nb", "\r\n", "%", "50%", "%REQ(x)%", "/a b", "v1", "/x/../y", "bad name"]),
    st.sampled_from(["0s", "1ms", "99999h", "99999h99999m99999s99999ms"]),  # durations at both ends
)


@st.composite
def mutate(draw: st.DrawFn, docs: list[Doc]) -> str:
    """Applies one mutation to ``docs`` (the victim's, in place) and says what it did."""
    operation = draw(st.sampled_from(["wrong-type", "delete", "string", "dangling", "duplicate", "conflict"]))
    if operation == "duplicate":
        index = draw(st.integers(0, len(docs) - 1))
        docs.append(copy.deepcopy(docs[index]))
        return f"duplicate doc {index}"
    if operation == "conflict":
        route = next((d for d in docs if d.get("kind") == "AIGatewayRoute"), None)
        if route is None:
            return "no route to conflict with"
        rival = copy.deepcopy(route)
        rival["metadata"] = {"name": "rival", "namespace": VICTIM}
        docs.append(rival)  # same matches on the same Gateway: a second route competes for each
        return "conflicting route"
    index = draw(st.integers(0, len(docs) - 1))
    paths = [p for p in _paths(docs[index]) if p]
    if operation == "dangling":
        paths = [p for p in paths if p[-1] == "name"] or paths
        path = draw(st.sampled_from(paths))
        _set(docs[index], path, "ghost")
    elif operation == "delete":
        path = draw(st.sampled_from(paths))
        _set(docs[index], path, _DELETE)
    elif operation == "wrong-type":
        path = draw(st.sampled_from(paths))
        _set(docs[index], path, copy.deepcopy(draw(st.sampled_from(WRONG_TYPES))))
    else:
        path = draw(st.sampled_from(paths))
        _set(docs[index], path, draw(_STRINGS))
    return f"{operation} doc {index} at {path}"


@st.composite
def mutated(draw: st.DrawFn, victim: list[Doc]) -> tuple[str, list[str]]:
    """The YAML text of a mutated copy of ``victim``, and the mutations applied."""
    docs = copy.deepcopy(victim)
    done = [draw(mutate(docs)) for _ in range(draw(st.integers(1, 4)))]
    return dump(docs), done


def dump(docs: list[Doc]) -> str:
    return yaml.safe_dump_all(docs, allow_unicode=True, sort_keys=False)


# --- the property ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    problems: list[Problem]
    result: PipelineResult


def run(text: str, *, options: TranslateOptions) -> Outcome:
    loaded = load_text(text, file="fuzz.yaml")
    result = translate(loaded.resource_set(), options=options)
    return Outcome(problems=loaded.problems + result.problems, result=result)


def check(outcome: Outcome, baseline: Outcome) -> None:
    """The generated set's verdict: errors located, secrets unprinted, untouched groups as they were alone."""
    clean_namespaces = {key.namespace for key in baseline.result.statuses}
    for problem in outcome.problems:
        line = problem.format()
        assert API_KEY not in line
        assert "Traceback" not in line
        if problem.severity is Severity.ERROR:
            assert problem.namespace not in clean_namespaces, line
            # Without a kind and a name the object itself is malformed: then the field says which part.
            assert problem.field_path or (problem.kind and problem.name), line
    statuses = outcome.result.statuses
    assert API_KEY not in repr(statuses)
    for key, status in baseline.result.statuses.items():
        assert statuses.get(key) == status, f"{key} changed by a mutation elsewhere"
    mutated = outcome.result.snapshot()
    for type_url, resources in baseline.result.snapshot().resources.items():
        for name, resource in resources.items():
            found = mutated.get(type_url).get(name)
            assert found is not None, f"{type_url} {name} of an untouched group is gone"
            assert found.message == resource.message, f"{type_url} {name} of an untouched group changed"
