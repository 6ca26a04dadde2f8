"""The examples, end to end: real HTTP through a real Envoy configured only by ``controlplane serve``.

Covers seeds 001 (weighted split, no model), 002 (header and body-model routing to a pool or a backend)
and 003 (path rewrite, model from the backend, key from a Secret) in both xDS modes, plus what must hold
when the files change at runtime: secret rotation, bad input kept out, last good config kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from controlplane.devtools.stack import LocalStack
from tests.e2e import CHAT, EXAMPLES, answered_by, reset_backends, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

SECRET_VALUE = "sk-demo-not-a-real-key"
SPLIT = "001-weighted-split"
POOL = "002-inference-pool"
FAILOVER = "003-model-failover"


@pytest.fixture(scope="module", params=["sotw", "delta"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp(request.param)
    with running_stack(EXAMPLES, workdir, delta=request.param == "delta") as running, httpx.Client() as http:
        wait_until(lambda: _serving(running, http))
        yield running


@pytest.fixture
def http(stack: LocalStack) -> Iterator[httpx.Client]:
    reset_backends(stack)
    with httpx.Client(timeout=10) as client:
        yield client


def _serving(stack: LocalStack, http: httpx.Client) -> bool:
    answered_by(http.post(stack.url(10081), json=CHAT))
    answered_by(http.post(stack.url(10082), json={**CHAT, "model": "llama3-8b"}))
    answered_by(http.post(stack.url(10083, "/model"), json=CHAT))
    return True


def test_seed_001_splits_50_50_without_a_model_and_each_backend_gets_its_model(
    stack: LocalStack, http: httpx.Client
) -> None:
    answers = Counter(answered_by(http.post(stack.url(10081), json=CHAT)) for _ in range(200))
    assert set(answers) == {"ollama-small", "ollama-large"}
    # 4.5 standard deviations of Binomial(200, 0.5) on each side: a false failure is ~1 in 100,000.
    assert 68 <= answers["ollama-small"] <= 132, answers
    assert {r.model for r in stack.backends["ollama-small"].received} == {"qwen:0.5b"}
    assert {r.model for r in stack.backends["ollama-large"].received} == {"qwen:1.8b"}
    assert all(r.headers["x-ai-eg-model"] == "qwen:0.5b" for r in stack.backends["ollama-small"].received)


def test_seed_002_header_routes_to_the_pool_or_the_backend(stack: LocalStack, http: httpx.Client) -> None:
    url = stack.url(10082)
    to_pool = Counter(
        answered_by(
            http.post(url, json={**CHAT, "model": "m"}, headers={"x-target-inference-extension": "yes"})
        )
        for _ in range(10)
    )
    assert set(to_pool) == {"vllm-a", "vllm-b"}, "the pool's selector bundles both labelled backends"
    to_backend = {
        answered_by(
            http.post(url, json={**CHAT, "model": "m"}, headers={"x-target-inference-extension": "no"})
        )
        for _ in range(5)
    }
    assert to_backend == {"plain-backend"}


def test_seed_002_body_model_picks_the_rule(stack: LocalStack, http: httpx.Client) -> None:
    url = stack.url(10082)
    assert answered_by(http.post(url, json={**CHAT, "model": "llama3-8b"})) == "vllm-a"
    assert answered_by(http.post(url, json={**CHAT, "model": "mistral-7b-instruct"})) == "plain-backend"
    # A client cannot pick a rule by claiming a model in the header that its body does not name.
    spoofed = http.post(url, json={**CHAT, "model": "unknown"}, headers={"x-ai-eg-model": "llama3-8b"})
    assert spoofed.status_code == 404
    received = stack.backends["vllm-a"].received[-1]
    assert received.model == "llama3-8b", "without modelNameOverride the body is passed on unchanged"


def test_unknown_model_gets_an_openai_style_404(stack: LocalStack, http: httpx.Client) -> None:
    reply = http.post(stack.url(10082), json={**CHAT, "model": "no-such-model"})
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert "No matching route found" in error["message"]
    assert error["type"] == "invalid_request_error"


def test_seed_003_rewrites_the_path_sets_the_model_and_injects_the_key(
    stack: LocalStack, http: httpx.Client
) -> None:
    reply = http.post(
        stack.url(10083, "/model"), json=CHAT, headers={"authorization": "Bearer client-supplied-key"}
    )
    assert answered_by(reply) == "openai-pool-1"
    received = stack.backends["openai-pool-1"].received[-1]
    assert received.path == "/v1/chat/completions"
    assert received.model == "gpt-4o", "a request without a model gets the first priority's"
    assert received.headers["authorization"] == f"Bearer {SECRET_VALUE}", (
        "the Secret's key replaces the client's"
    )


def test_the_key_appears_in_no_log_and_no_admin_output(stack: LocalStack, http: httpx.Client) -> None:
    answered_by(http.post(stack.url(10083, "/model"), json=CHAT))
    assert stack.envoy is not None
    places = {
        "control plane log": stack.control_plane_log(),
        "envoy log": stack.envoy.log_path.read_text(encoding="utf-8", errors="replace"),
        "envoy config dump": stack.envoy.admin("/config_dump", params={"include_eds": "true"}),
        "status page": http.get(f"http://127.0.0.1:{stack.admin_port}/status").text,
    }
    for where, text in places.items():
        assert text, where
        assert SECRET_VALUE not in text, f"the API key leaked into the {where}"


def test_changing_the_secret_changes_the_key_envoy_sends_without_restart(
    stack: LocalStack, http: httpx.Client
) -> None:
    manifest = f"{FAILOVER}/route.yaml"
    original = (EXAMPLES / manifest).read_text(encoding="utf-8")
    pid = stack.envoy.pid if stack.envoy else None
    stack.rewrite_config(manifest, original.replace(SECRET_VALUE, "sk-rotated-value"))
    try:

        def rotated() -> bool:
            answered_by(http.post(stack.url(10083, "/model"), json=CHAT))
            assert (
                stack.backends["openai-pool-1"].received[-1].headers["authorization"]
                == "Bearer sk-rotated-value"
            )
            return True

        wait_until(rotated)
        assert stack.envoy is not None
        assert stack.envoy.pid == pid, "Envoy was not restarted"
    finally:
        stack.rewrite_config(manifest, original)
        wait_until(lambda: _sends_key(stack, http, SECRET_VALUE))


def _sends_key(stack: LocalStack, http: httpx.Client, key: str) -> bool:
    answered_by(http.post(stack.url(10083, "/model"), json=CHAT))
    assert stack.backends["openai-pool-1"].received[-1].headers["authorization"] == f"Bearer {key}"
    return True


def test_bad_files_are_reported_and_everything_else_keeps_serving(
    stack: LocalStack, http: httpx.Client
) -> None:
    manifest = f"{SPLIT}/route.yaml"
    original = (EXAMPLES / manifest).read_text(encoding="utf-8")
    status_url = f"http://127.0.0.1:{stack.admin_port}/status"
    broken_route = (
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\n"
        "metadata: {name: broken, namespace: default}\n"
        "spec:\n  parentRefs: [{name: qwen-gateway}]\n  rules:\n"
        "  - matches: [{headers: [{name: x-ai-eg-model, value: broken}]}]\n"
        "    backendRefs: [{name: does-not-exist, wieght: 2}]\n"
    )
    stack.rewrite_config("extra/broken-route.yaml", broken_route)
    stack.rewrite_config(
        manifest, original.replace("kind: AIGatewayRoute", "kind: AIGatewayRoute\n  oops: [", 1)
    )
    try:

        def reported() -> bool:
            problems = http.get(status_url).json()["problems"]
            unknown_field = (
                "AIGatewayRoute/default/broken: spec.rules[0].backendRefs[0].wieght: unknown field"
            )
            assert any(f"broken-route.yaml:0: {unknown_field}" in p for p in problems), problems
            assert any(f"{SPLIT}/route.yaml" in p and "invalid YAML" in p for p in problems), problems
            return True

        wait_until(reported)
        # The file with a YAML error keeps serving its last good version; every other example is untouched.
        assert {answered_by(http.post(stack.url(10081), json=CHAT)) for _ in range(4)} == {
            "ollama-small",
            "ollama-large",
        }
        assert answered_by(http.post(stack.url(10083, "/model"), json=CHAT)) == "openai-pool-1"
    finally:
        (stack.config_dir / "extra" / "broken-route.yaml").unlink()
        stack.rewrite_config(manifest, original)
        wait_until(lambda: _no_errors(http, status_url))


def _no_errors(http: httpx.Client, status_url: str) -> bool:
    problems = http.get(status_url).json()["problems"]
    assert not any("invalid YAML" in p or "broken" in p for p in problems), problems
    return True


def test_metrics_and_health_on_the_admin_port(stack: LocalStack, http: httpx.Client) -> None:
    base = f"http://127.0.0.1:{stack.admin_port}"
    assert http.get(f"{base}/healthz").status_code == 200
    assert http.get(f"{base}/readyz").status_code == 200
    assert "xds" in http.get(f"{base}/metrics").text
    statuses = http.get(f"{base}/status").json()["objects"]
    assert {s["kind"] for s in statuses} >= {"AIGatewayRoute", "AIServiceBackend", "BackendSecurityPolicy"}
