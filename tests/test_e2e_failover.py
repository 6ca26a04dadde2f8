"""Priority failover and failback through a real Envoy, with no extra policy (seeds 000, 001 and 003).

Each test gets its own stack: ejections outlive a test by seconds, and a shared stack would let one test's
failing backend change what the next one sees.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from controlplane.devtools.fake_backend import Normal, Refuse, Status
from controlplane.devtools.stack import LocalStack
from tests.e2e import CHAT, EXAMPLES, answered_by, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

REGION = EXAMPLES / "000-region-failover"
LOCAL = EXAMPLES / "001-local-failover"
MODELS = EXAMPLES / "003-model-failover"
REGION_HOST = {"host": "llm.example.com"}

StartStack = Callable[[Path, Callable[[LocalStack, httpx.Client], object]], LocalStack]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # Short enough that a hang fails the test instead of stalling the suite.
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def start(tmp_path: Path, http: httpx.Client) -> Iterator[StartStack]:
    """Starts a stack on some manifests and waits until ``probe`` succeeds through Envoy."""
    with ExitStack() as stacks:

        def start_stack(manifests: Path, probe: Callable[[LocalStack, httpx.Client], object]) -> LocalStack:
            stack = stacks.enter_context(running_stack(manifests, tmp_path / manifests.name))
            wait_until(lambda: probe(stack, http))
            return stack

        yield start_stack


def _local(stack: LocalStack, http: httpx.Client, **headers: str) -> httpx.Response:
    return http.post(stack.url(10084), json=CHAT, headers=headers)


def _region(stack: LocalStack, http: httpx.Client) -> httpx.Response:
    return http.post(stack.url(10080), json=CHAT, headers=REGION_HOST)


def test_seed_001_unresolvable_primary_fails_over_to_the_local_fallback(
    start: StartStack, http: httpx.Client
) -> None:
    stack = start(LOCAL, lambda s, c: answered_by(_local(s, c)))
    for _ in range(10):
        reply = _local(stack, http, **{"x-failover-case": "unresolvable"})
        assert answered_by(reply) == "qwen-small"
    assert {r.model for r in stack.backends["qwen-small"].received} == {"qwen:0.5b", "qwen:1.8b"} - {
        "qwen:1.8b"
    }


def test_seed_001_primary_answering_429_fails_over_and_is_then_skipped(
    start: StartStack, http: httpx.Client
) -> None:
    stack = start(LOCAL, lambda s, c: answered_by(_local(s, c)))
    primary, fallback = stack.backends["qwen-large"], stack.backends["qwen-small"]
    primary.clear()
    fallback.clear()
    primary.set_mode(Status(429))
    answers = [answered_by(_local(stack, http)) for _ in range(10)]
    assert answers == ["qwen-small"] * 10, "every client request gets the fallback's 200, never the 429"
    assert {r.model for r in primary.received} == {"qwen:1.8b"}, "each attempt carries its backend's model"
    assert {r.model for r in fallback.received} == {"qwen:0.5b"}
    # Outlier detection ejects the primary after 3 consecutive errors (the ejection reaches Envoy's workers
    # asynchronously, so one more attempt may slip through); from then on requests no longer pay a retry.
    ejected_after = len(primary.received)
    assert 3 <= ejected_after <= 4, ejected_after
    assert [answered_by(_local(stack, http)) for _ in range(10)] == ["qwen-small"] * 10
    assert len(primary.received) == ejected_after, "an ejected primary must not be tried again"


def test_seed_003_third_priority_answers_with_its_own_model(start: StartStack, http: httpx.Client) -> None:
    stack = start(MODELS, lambda s, c: answered_by(c.post(s.url(10083, "/model"), json=CHAT)))
    first, second, third = (stack.backends[f"openai-pool-{n}"] for n in (1, 2, 3))
    for backend in (first, second, third):
        backend.clear()
    first.set_mode(Status(429))
    second.set_mode(Status(503))
    reply = http.post(stack.url(10083, "/model"), json=CHAT)
    assert answered_by(reply) == "openai-pool-3"
    assert [r.model for r in first.received] == ["gpt-4o"]
    assert [r.model for r in second.received] == ["gpt-4.0-turbo"]
    assert [r.model for r in third.received] == ["gpt-3.5-turbo"]
    assert all(r.headers["authorization"].startswith("Bearer sk-") for r in third.received)


def test_seed_000_fails_over_to_us_and_back_to_eu_while_every_request_succeeds(
    start: StartStack, http: httpx.Client
) -> None:
    stack = start(REGION, lambda s, c: answered_by(_region(s, c)))
    eu = stack.backends["vllm-eu"]
    timeline: list[tuple[float, str]] = []
    began = time.monotonic()
    stopped_at = restarted_at = None
    # A bounded client loop: at most 400 requests or 25 s, whichever comes first.
    for _ in range(400):
        now = time.monotonic() - began
        if stopped_at is None and now > 1.0:
            eu.stop()
            stopped_at = now
        if stopped_at is not None and restarted_at is None and now > stopped_at + 3.0:
            eu.start()
            restarted_at = now
        timeline.append((now, answered_by(_region(stack, http))))
        if restarted_at is not None and timeline[-1][1] == "vllm-eu" and now > restarted_at:
            break
        if now > 25:
            break
        time.sleep(0.05)
    assert stopped_at is not None
    assert restarted_at is not None
    during = {who for at, who in timeline if stopped_at + 0.5 < at < restarted_at}
    assert during == {"vllm-us"}, "while eu is down, us answers every request"
    back = next((at for at, who in timeline if at > restarted_at and who == "vllm-eu"), None)
    assert back is not None, "traffic never failed back to eu"
    # Failback is bounded by the ejection time (5 s) plus the detection interval (1 s).
    assert back - restarted_at < 10.0, back - restarted_at


def test_weighted_split_and_priority_failover_in_one_rule(
    start: StartStack, http: httpx.Client, tmp_path: Path
) -> None:
    manifests = tmp_path / "weighted-priority"
    manifests.mkdir()
    (manifests / "route.yaml").write_text(
        (REGION / "route.yaml")
        .read_text()
        .replace(
            "    - name: eu\n      priority: 0\n",
            "    - name: eu\n      priority: 0\n    - name: eu-2\n      priority: 0\n",
        )
        + _BACKEND_EU_2,
        encoding="utf-8",
    )
    stack = start(manifests, lambda s, c: answered_by(_region(s, c)))
    split = Counter(answered_by(_region(stack, http)) for _ in range(40))
    assert set(split) == {"vllm-eu", "vllm-eu-2"}, (
        "the lower priority gets nothing while the first is healthy"
    )
    stack.backends["vllm-eu"].set_mode(Status(503))
    answers = [answered_by(_region(stack, http)) for _ in range(40)]
    assert set(answers) <= {"vllm-eu-2", "vllm-us"}
    # Once eu is ejected, its healthy sibling keeps the whole level; us only served the first failed attempts.
    assert answers[-20:] == ["vllm-eu-2"] * 20, answers
    stack.backends["vllm-eu-2"].set_mode(Refuse())
    assert answered_by(_region(stack, http)) == "vllm-us", "with the whole first level down, us answers"


def test_upstream_backend_traffic_policy_overrides_the_defaults(
    start: StartStack, http: httpx.Client, tmp_path: Path
) -> None:
    """Envoy AI Gateway's provider-fallback policy, unchanged: it retries only 500s; a 429 is returned."""
    manifests = tmp_path / "with-policy"
    manifests.mkdir()
    (manifests / "route.yaml").write_text((REGION / "route.yaml").read_text() + _UPSTREAM_FALLBACK_POLICY)
    stack = start(manifests, lambda s, c: answered_by(_region(s, c)))
    eu = stack.backends["vllm-eu"]
    eu.set_mode(Status(500))
    assert answered_by(_region(stack, http)) == "vllm-us"
    eu.set_mode(Status(429))
    assert _region(stack, http).status_code == 429


def test_a_policy_retry_section_left_empty_means_envoy_gateways_defaults(
    start: StartStack, http: httpx.Client, tmp_path: Path
) -> None:
    """``retry: {}`` is Envoy Gateway's retry: a 503 is retried twice, a 500 not at all, and with no
    ``numAttemptsPerPriority`` retries stay on the first level (where this policy replaces our failover)."""
    manifests = tmp_path / "with-empty-retry"
    manifests.mkdir()
    (manifests / "route.yaml").write_text((REGION / "route.yaml").read_text() + _EMPTY_RETRY_POLICY)
    stack = start(manifests, lambda s, c: answered_by(_region(s, c)))
    eu, us = stack.backends["vllm-eu"], stack.backends["vllm-us"]
    for status, attempts in ((500, 1), (503, 3)):
        # A success first: our outlier detection (not replaced) must not have ejected eu in between.
        eu.set_mode(Normal())
        assert answered_by(_region(stack, http)) == "vllm-eu"
        eu.clear()
        us.clear()
        eu.set_mode(Status(status))
        assert _region(stack, http).status_code == status
        assert (len(eu.received), len(us.received)) == (attempts, 0)


def test_all_priorities_down_gives_a_prompt_openai_style_503(start: StartStack, http: httpx.Client) -> None:
    stack = start(REGION, lambda s, c: answered_by(_region(s, c)))
    for backend in stack.backends.values():
        backend.set_mode(Refuse())
    for _ in range(5):
        reply = _region(stack, http)
        assert reply.status_code == 503
        assert reply.headers["content-type"] == "application/json"
        assert reply.json()["error"]["type"] == "server_error"


_UPSTREAM_FALLBACK_POLICY = """---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: provider-fallback, namespace: default}
spec:
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: inference
  retry:
    numAttemptsPerPriority: 1
    numRetries: 5
    perRetry:
      backOff: {baseInterval: 100ms, maxInterval: 10s}
      timeout: 30s
    retryOn:
      httpStatusCodes: [500]
      triggers: [connect-failure, retriable-status-codes]
"""

_EMPTY_RETRY_POLICY = """---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: defaults, namespace: default}
spec:
  targetRefs:
  - {group: aigateway.envoyproxy.io, kind: AIGatewayRoute, name: inference}
  retry: {}
"""

_BACKEND_EU_2 = """---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {name: eu-2, namespace: default}
spec:
  schema: {name: OpenAI}
  backendRef: {name: vllm-eu-2, kind: Backend, group: gateway.envoyproxy.io}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: vllm-eu-2, namespace: default}
spec:
  endpoints:
  - ip: {address: 127.0.0.1, port: 18103}
"""
