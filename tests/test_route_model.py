"""The first choice's model override moves to the route only when every attempt still gets its own model."""

from __future__ import annotations

import pytest

from controlplane import ir
from controlplane.devtools.manifests import gateway_yaml, openai_backend_yaml
from controlplane.gatewayapi import TranslateOptions, build_ir
from controlplane.resources.parse import load_text

_BACKENDS = "".join(
    openai_backend_yaml(name, [port]) for name, port in (("a", 8001), ("b", 8002), ("c", 8003))
)


def _built(matches: str, refs: str) -> tuple[ir.Forward, dict[str, ir.BackendHop]]:
    text = f"""{gateway_yaml("gw", 8080)}---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: {matches}
    backendRefs: {refs}
{_BACKENDS}"""
    infra = build_ir(load_text(text, file="t.yaml").resource_set(), options=TranslateOptions()).infra
    # One route per match, all with the rule's action.
    (action,) = {
        route.action
        for vhost in infra.listeners[0].virtual_hosts
        for route in vhost.routes
        if route.name.startswith("route/default/r/rule/0/")
    }
    assert isinstance(action, ir.Forward)
    return action, {hop.name.rsplit("/", 1)[-1]: hop for hop in infra.hops}


EXACT = "[{headers: [{name: x-ai-eg-model, value: asked}]}]"


def test_the_first_choice_is_rewritten_at_the_route_and_the_fallback_gets_the_clients_model_back() -> None:
    forward, hops = _built(EXACT, "[{name: a, modelNameOverride: first}, {name: b, priority: 1}]")
    assert forward.model_override == "first"
    assert not hops["0"].works_per_attempt, "the first choice's hop has nothing left to do"
    assert hops["1"].model_override == "asked"
    assert hops["1"].request_headers.set == ((ir.MODEL_HEADER, "asked"),)


def test_fallbacks_with_models_of_their_own_keep_them() -> None:
    forward, hops = _built(
        "[]",
        "[{name: a, modelNameOverride: first}, {name: b, modelNameOverride: second, priority: 1},"
        " {name: c, modelNameOverride: first, priority: 2}]",
    )
    assert forward.model_override == "first"
    assert hops["1"].model_override == "second"
    assert hops["2"].model_override is None, "the route's rewrite is already the one it wants"
    assert not hops["2"].works_per_attempt


@pytest.mark.parametrize(
    ("matches", "refs"),
    [
        # The client's model is not certain: a fallback without an override could not get it back.
        ("[]", "[{name: a, modelNameOverride: first}, {name: b, priority: 1}]"),
        (
            "[{headers: [{name: x-ai-eg-model, value: 'ask.*', type: RegularExpression}]}]",
            "[{name: a, modelNameOverride: first}, {name: b, priority: 1}]",
        ),
        (
            "[{headers: [{name: x-ai-eg-model, value: one}]},"
            " {headers: [{name: x-ai-eg-model, value: two}]}]",
            "[{name: a, modelNameOverride: first}, {name: b, priority: 1}]",
        ),
        # The first attempt's backend, and so its model, is chosen per request.
        (EXACT, "[{name: a, modelNameOverride: first}, {name: b, modelNameOverride: second}]"),
        (EXACT, "[{name: a, modelNameOverride: first}, {name: b}]"),
        # The first choice keeps its hop for other work: the model is rewritten there, where it was.
        (
            EXACT,
            "[{name: a, modelNameOverride: first, headerMutation: {set: [{name: x-team, value: t}]}},"
            " {name: b, priority: 1}]",
        ),
    ],
    ids=[
        "no-model-match",
        "regex-model-match",
        "two-models",
        "split-two-overrides",
        "split-one-override",
        "first-choice-hop-has-work",
    ],
)
def test_the_override_stays_in_the_hops_when_the_route_cannot_know(matches: str, refs: str) -> None:
    forward, hops = _built(matches, refs)
    assert forward.model_override is None
    assert hops["0"].model_override == "first"
