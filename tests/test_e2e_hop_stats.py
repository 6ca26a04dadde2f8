"""What Envoy counts for hops and backends, through a real Envoy configured by our xDS server.

Every hop's listener and connection manager count into one set of stats (``listener.hop.*``,
``http.hop.*``), so thousands of hops hold no stats of their own; each backend's cluster keeps its own
(``cluster.backend/<namespace>/<Backend>.*``), and its traffic stats (``upstream_rq_*``) exist from its first
request on, under the bootstrap's deferred stats.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from controlplane.devtools.stack import LocalStack
from tests.e2e import CHAT, answered_by, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

MANIFESTS = (
    """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: hops, namespace: default}
spec:
  gatewayClassName: ai-gateway
  listeners: [{name: http, protocol: HTTP, port: 10095}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: hops, namespace: default}
spec:
  parentRefs: [{name: hops}]
  rules:
  - matches: [{headers: [{name: x-ai-eg-model, value: first}]}]
    backendRefs: [{name: first}]
  - matches: [{headers: [{name: x-ai-eg-model, value: second}]}]
    backendRefs: [{name: second}]
  - matches: [{headers: [{name: x-ai-eg-model, value: idle}]}]
    backendRefs: [{name: idle}]
"""
    + "".join(
        f"""---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: {name}, namespace: default}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: {name}-host, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {{name: {name}, namespace: default}}
spec:
  targetRefs: [{{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: {name}}}]
  type: APIKey
  apiKey: {{secretRef: {{name: key}}}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: {name}-host, namespace: default}}
spec:
  endpoints: [{{ip: {{address: 127.0.0.1, port: {port}}}}}]
"""
        for name, port in (("first", 18231), ("second", 18232), ("idle", 18233))
    )
    + """---
apiVersion: v1
kind: Secret
metadata: {name: key, namespace: default}
stringData: {apiKey: sk-e2e-hop-stats-1f0a}
"""
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    manifests = tmp_path_factory.mktemp("hop-stats-manifests") / "route.yaml"
    manifests.write_text(MANIFESTS, encoding="utf-8")
    with running_stack(manifests, tmp_path_factory.mktemp("hop-stats")) as running:
        wait_until(lambda: _post(running, "first").status_code == 200)
        yield running


def _post(stack: LocalStack, model: str) -> httpx.Response:
    return httpx.post(stack.url(10095), json={**CHAT, "model": model}, timeout=10)


def _stats(stack: LocalStack) -> dict[str, int]:
    assert stack.envoy is not None
    return stack.envoy.stats()


def test_hops_count_into_one_set_of_stats_and_backends_keep_their_own(stack: LocalStack) -> None:
    before = _stats(stack)
    assert answered_by(_post(stack, "first")) == "first-host"
    assert answered_by(_post(stack, "second")) == "second-host"
    after = _stats(stack)
    # Both hops' requests, in the shared connection manager's counters.
    assert after["http.hop.downstream_rq_2xx"] - before["http.hop.downstream_rq_2xx"] == 2
    assert after["listener.hop.downstream_cx_total"] > before["listener.hop.downstream_cx_total"]
    own = [name for name in after if name.startswith(("http.route/", "listener.envoy_internal_"))]
    assert own == []
    for backend in ("first", "second"):
        prefix = f"cluster.backend/default/{backend}-host."
        assert after[f"{prefix}upstream_rq_2xx"] - before.get(f"{prefix}upstream_rq_2xx", 0) == 1


def test_a_backend_without_traffic_has_its_cluster_but_no_traffic_stats_until_its_first_request(
    stack: LocalStack,
) -> None:
    prefix = "cluster.backend/default/idle-host."
    unused = _stats(stack)
    assert unused[f"{prefix}membership_total"] == 1
    assert f"{prefix}upstream_rq_total" not in unused
    assert answered_by(_post(stack, "idle")) == "idle-host"
    wait_until(lambda: _stats(stack).get(f"{prefix}upstream_rq_total") == 1)
