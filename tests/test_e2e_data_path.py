"""Through a real Envoy: backendRefs that need no per-attempt work are reached with no internal hop, each
keeps its weight whatever number of endpoints its backend has, priority failover still works on them, the
first choice's model override is applied by the route (to the top-level ``model`` only, the rest of the
body byte for byte, sent with its length; a multipart form goes as sent) and a fallback still gets the
client's model, a stream asks for its usage (its ``stream_options`` replaced, the rest as sent), the body's
model is read once (any JSON content type, Exact and RegularExpression matches), and a client cannot pick a
route with a model header of its own."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from controlplane.devtools.fake_backend import FakeBackend, Refuse
from controlplane.devtools.manifests import gateway_yaml, openai_backend_yaml
from controlplane.devtools.stack import LocalStack
from controlplane.netutil import PortReservations
from tests.e2e import CHAT, answered_by
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

SPLIT, FAILOVER, OVERRIDE = "split-model", "failover-model", "override-model"
ANY_MODEL_PATH = "/v1/completions"
"""A rule matching no model, whose one backendRef has an override: a body naming none gets it."""
JSON = {"content-type": "application/json"}
OVERRIDE_HOP = "route/default/direct/rule/2/backend/1"
"""The only hop: the fallback of the override rule, which puts the client's model back."""


def _manifests(gateway: int, ports: dict[str, int]) -> str:
    return (
        f"""{gateway_yaml("gw", gateway)}---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: direct, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {SPLIT}}}]}}]
    backendRefs: [{{name: pair, weight: 1}}, {{name: single, weight: 1}}]
  - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {FAILOVER}}}]}}]
    backendRefs: [{{name: single, priority: 0}}, {{name: fallback, priority: 1}}]
  - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {OVERRIDE}}}]}}]
    backendRefs:
    - {{name: single, priority: 0, modelNameOverride: gpt-first}}
    - {{name: fallback, priority: 1}}
  - matches: [{{headers: [{{type: RegularExpression, name: x-ai-eg-model, value: "pattern-[0-9]+"}}]}}]
    backendRefs: [{{name: fallback}}]
  - matches: [{{path: {{type: PathPrefix, value: {ANY_MODEL_PATH}}}}}]
    backendRefs: [{{name: single, modelNameOverride: "gpt-\\"quoted\\""}}]
"""
        + openai_backend_yaml("pair", [ports["pair-a"], ports["pair-b"]])
        + openai_backend_yaml("single", [ports["single"]])
        + openai_backend_yaml("fallback", [ports["fallback"]])
    )


@pytest.fixture
def stack(tmp_path: Path, ports: PortReservations) -> Iterator[tuple[LocalStack, dict[str, FakeBackend]]]:
    names = ("pair-a", "pair-b", "single", "fallback")
    with ExitStack() as running:
        backends = {name: running.enter_context(FakeBackend(name=name, model=name)) for name in names}
        gateway = ports.reserve()
        folder = tmp_path / "manifests"
        folder.mkdir()
        backend_ports = {name: backend.port for name, backend in backends.items()}
        (folder / "route.yaml").write_text(_manifests(gateway, backend_ports))
        local = running.enter_context(
            LocalStack(folder, port_map={gateway: gateway}, workdir=tmp_path / "stack", fake_backends=False)
        )
        with httpx.Client(timeout=5) as client:
            wait_until(lambda: _ask(client, local.url(gateway), SPLIT).status_code == 200)
        yield local, backends


def _ask(client: httpx.Client, url: str, model: str) -> httpx.Response:
    return client.post(url, json={**CHAT, "model": model})


def _gateway_url(local: LocalStack) -> str:
    (port,) = local.port_map.values()
    return local.url(port)


def test_each_backend_ref_keeps_its_weight_and_no_hop_is_built(
    stack: tuple[LocalStack, dict[str, FakeBackend]],
) -> None:
    local, _ = stack
    assert local.envoy is not None
    listeners = local.envoy.config_dump(resource="dynamic_listeners")["configs"]
    names = sorted(entry["name"] for entry in listeners)
    assert names == [f"gateway/default/gw/{next(iter(local.port_map.values()))}", OVERRIDE_HOP]
    with httpx.Client(timeout=5) as client:
        counts = Counter(answered_by(_ask(client, _gateway_url(local), SPLIT)) for _ in range(40))
    # Two endpoints on one backendRef must not give it two shares: 1:1 by backendRef.
    assert 12 <= counts["single"] <= 28, counts
    assert counts["pair-a"] > 0, counts
    assert counts["pair-b"] > 0, counts


def test_a_refusing_primary_fails_over_with_no_hop_in_between(
    stack: tuple[LocalStack, dict[str, FakeBackend]],
) -> None:
    local, backends = stack
    backends["single"].set_mode(Refuse())
    with httpx.Client(timeout=5) as client:
        answers = [answered_by(_ask(client, _gateway_url(local), FAILOVER)) for _ in range(10)]
    assert answers == ["fallback"] * 10


def test_the_route_rewrites_the_first_choices_model_and_the_fallback_gets_the_clients_back(
    stack: tuple[LocalStack, dict[str, FakeBackend]],
) -> None:
    local, backends = stack
    with httpx.Client(timeout=5) as client:
        assert answered_by(_ask(client, _gateway_url(local), OVERRIDE)) == "single"
        first = backends["single"].received[-1]
        backends["single"].set_mode(Refuse())
        assert answered_by(_ask(client, _gateway_url(local), OVERRIDE)) == "fallback"
        fallback = backends["fallback"].received[-1]
    assert (first.json["model"], first.headers["x-ai-eg-model"]) == ("gpt-first", "gpt-first")
    assert first.json["messages"] == CHAT["messages"], "the rest of the body is kept"
    assert (fallback.json["model"], fallback.headers["x-ai-eg-model"]) == (OVERRIDE, OVERRIDE)


def test_the_route_rewrites_only_the_top_level_model_and_keeps_the_rest_of_the_body_as_sent(
    stack: tuple[LocalStack, dict[str, FakeBackend]],
) -> None:
    local, backends = stack
    tool = {"type": "function", "function": {"name": "pick", "parameters": {"properties": {"model": {}}}}}
    rest = (
        '"messages": [{"role": "user", "content": "say \\"model\\": \\\\"}],\n'
        f' "tools": [{json.dumps(tool)}], "metadata": {{"model": "{OVERRIDE}"}}}}'
    )
    with httpx.Client(timeout=5) as client:
        url = _gateway_url(local)
        nested = client.post(url, content=f'{{"model" : "{OVERRIDE}", {rest}', headers=JSON)
        received = backends["single"].received[-1]
        named_none = client.post(
            url.replace("/v1/chat/completions", ANY_MODEL_PATH), content="{ }", headers=JSON
        )
        added = backends["single"].received[-1]
    assert answered_by(nested) == "single"
    assert received.body.decode() == f'{{"model" : "gpt-first", {rest}'
    assert received.headers["content-length"] == str(len(received.body))
    assert named_none.status_code == 200, named_none.text
    assert added.json == {"model": 'gpt-"quoted"'}


def test_a_form_naming_an_overridden_model_is_routed_by_it_and_goes_as_sent(
    stack: tuple[LocalStack, dict[str, FakeBackend]],
) -> None:
    """Where the route matches the body's model, its override script reads no content type: a multipart
    form's route is picked by the form's model after the override filter ran, so the form goes as sent; the
    model header names the override."""
    local, backends = stack
    url = _gateway_url(local).replace("/v1/chat/completions", "/v1/audio/transcriptions")
    with httpx.Client(timeout=5) as client:
        reply = client.post(url, files={"file": ("a.wav", b"RIFF0000WAVE")}, data={"model": OVERRIDE})
    assert reply.status_code == 200, reply.text
    assert reply.json()["text"] == f"single,single,{OVERRIDE}"
    received = backends["single"].received[-1]
    assert received.body == reply.request.read()
    assert received.headers["x-ai-eg-model"] == "gpt-first"


def test_a_stream_asks_for_its_usage_and_the_rest_of_its_body_goes_as_sent(
    stack: tuple[LocalStack, dict[str, FakeBackend]],
) -> None:
    local, backends = stack
    rest = '"stream": true, "messages": [{"role": "user", "content": "\\"stream_options\\": 1"}]}'
    with httpx.Client(timeout=5) as client:
        streamed = client.post(
            _gateway_url(local),
            content=f'{{"model": "{FAILOVER}", "stream_options": {{"include_usage": false}}, {rest}',
            headers=JSON,
        )
    assert streamed.status_code == 200, streamed.text
    received = backends["single"].received[-1]
    assert (
        received.body.decode()
        == f'{{"model": "{FAILOVER}", "stream_options": {{"include_usage":true}}, {rest}'
    )
    assert received.headers["content-length"] == str(len(received.body))


def test_the_body_is_read_once_for_every_json_content_type_and_regex_matches(
    stack: tuple[LocalStack, dict[str, FakeBackend]],
) -> None:
    local, backends = stack
    charset = {"content-type": "application/json; charset=utf-8"}
    with httpx.Client(timeout=5) as client:
        by_pattern = client.post(_gateway_url(local), json={**CHAT, "model": "pattern-42"}, headers=charset)
        not_pattern = client.post(_gateway_url(local), json={**CHAT, "model": "pattern-x"})
        malformed = client.post(_gateway_url(local), content=b'{"model": "split', headers=charset)
    assert answered_by(by_pattern) == "fallback"
    assert backends["fallback"].received[-1].headers["x-ai-eg-model"] == "pattern-42"
    assert not_pattern.status_code == 404, not_pattern.text
    assert malformed.status_code == 400, malformed.text
    assert "not valid JSON" in malformed.json()["error"]["message"]


def test_a_model_header_from_the_client_picks_no_route(
    stack: tuple[LocalStack, dict[str, FakeBackend]],
) -> None:
    local, backends = stack
    for backend in backends.values():
        backend.clear()
    with httpx.Client(timeout=5) as client:
        plain_text = client.post(
            _gateway_url(local),
            content=b"hello",
            headers={"content-type": "text/plain", "x-ai-eg-model": SPLIT},
        )
        other_body = client.post(
            _gateway_url(local), json={**CHAT, "model": "other"}, headers={"x-ai-eg-model": SPLIT}
        )
    assert plain_text.status_code == 404, plain_text.text
    assert other_body.status_code == 404, other_body.text
    assert not any(backend.received for backend in backends.values())
