"""Seed 002 against the real endpoint picker: ``serve --kubernetes --enable-inference-extension`` on a real
API server, the Inference Extension's own ``epp`` (built by ``gotools``) watching the same pool, a real
Envoy fed only by our xDS server, and three model-server Pods (fake servers on 127.0.0.11-13 whose Pod
objects and Ready conditions are written through the API, and whose ``/metrics`` report the load we set).

One stack for the module (API server namespace, control plane, Envoy, picker, Pods); the tests run in order
and each leaves the pool as it found it, except the last, which adds a Pod.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from controlplane.devtools.epp import EppProcess, default_picker_config
from controlplane.devtools.fake_backend import FakeBackend, Normal, Refuse, ServerLoad
from controlplane.devtools.gotools import GoTools
from controlplane.devtools.kube import LocalKube
from controlplane.devtools.model_pool import ModelPool
from controlplane.devtools.stack import LocalStack
from controlplane.netutil import ReservedPort
from controlplane.xds.translator.filters.endpoint_picker import DESTINATION_ENDPOINT_KEY
from tests.e2e import CHAT, answered_by
from tests.inference_support import (
    FAILOVER_HEADER,
    INFERENCE_HEADER,
    POOL,
    POOL_LABELS,
    PoolSetup,
    pool_manifests,
)
from tests.kube_support import GATEWAY_CLASS, conditions, fresh_namespace
from tests.polling import wait_until

pytestmark = pytest.mark.envoy


@dataclass
class Running:
    kube: LocalKube
    namespace: str
    setup: PoolSetup
    picker: EppProcess
    stack: LocalStack

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.setup.gateway_port}/v1/chat/completions"

    def apply(self, setup: PoolSetup) -> None:
        self.kube.apply(pool_manifests(setup, with_pods=False))


@pytest.fixture(scope="module")
def running(
    kube: LocalKube, kube_tools: GoTools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("inference-epp")
    with (
        fresh_namespace(kube) as namespace,
        ModelPool(name="vllm", model="llama3-8b", size=3) as pool,
        FakeBackend(name="plain", model="plain-model") as plain,
        ReservedPort() as gateway,
    ):
        picker = EppProcess(
            binary=kube_tools.binary("epp"),
            kubeconfig=kube.kubeconfig,
            pool_name=POOL,
            pool_namespace=namespace,
            log_file=workdir / "epp.log",
            config_text=default_picker_config(kube_tools),
        )
        setup = PoolSetup(
            namespace=namespace,
            gateway_port=gateway.port,
            pool=pool,
            plain=plain,
            picker_address=picker.address,
        )
        manifest = workdir / "pool.yaml"
        manifest.write_text(pool_manifests(setup, with_pods=False))
        kube.apply(GATEWAY_CLASS)
        kube.apply(manifest)
        pool.create_pods(kube, namespace=namespace, labels=POOL_LABELS)
        with (
            picker,
            LocalStack(
                manifest,
                workdir=workdir / "stack",
                kubeconfig=kube.kubeconfig,
                fake_backends=False,
                serve_args=(
                    f"--namespace={namespace}",
                    f"--leader-election-namespace={namespace}",
                    "--enable-inference-extension",
                ),
            ) as stack,
        ):
            state = Running(kube=kube, namespace=namespace, setup=setup, picker=picker, stack=stack)
            with httpx.Client(timeout=10) as http:
                wait_until(lambda: answered_by(_to_pool(http, state.url)), timeout=60)
            yield state


@pytest.fixture
def http(running: Running) -> Iterator[httpx.Client]:
    for server in running.setup.pool.servers:
        server.clear()
    with httpx.Client(timeout=10) as client:
        yield client


def _to_pool(http: httpx.Client, url: str, header: str = INFERENCE_HEADER) -> httpx.Response:
    return http.post(url, json={**CHAT, "model": "llama3-8b"}, headers={header: "yes"})


def test_seed_002_yes_goes_through_the_real_picker_and_no_to_the_plain_backend(
    running: Running, http: httpx.Client
) -> None:
    pool = running.setup.pool
    answer = answered_by(_to_pool(http, running.url))
    served = pool.servers[[server.name for server in pool.servers].index(answer)]
    assert served.received[-1].headers[DESTINATION_ENDPOINT_KEY] == pool.endpoint(pool.servers.index(served))
    reply = http.post(running.url, json=CHAT, headers={INFERENCE_HEADER: "no"})
    assert answered_by(reply) == "plain"
    assert DESTINATION_ENDPOINT_KEY not in running.setup.plain.received[-1].headers
    route = conditions(running.kube, "aigatewayroutes", running.namespace, "inference")
    assert route["ResolvedRefs"]["status"] == "True", route


def _pool_parents(running: Running) -> dict[str, dict[str, Any]]:
    """The pool's ``status.parents`` as written in the cluster, by Gateway name."""
    pool = running.kube.get_json("inferencepools.inference.networking.k8s.io", POOL, "-n", running.namespace)
    return {entry["parentRef"]["name"]: entry for entry in pool.get("status", {}).get("parents", [])}


def _served_through_gw(running: Running) -> dict[str, dict[str, Any]]:
    parents = _pool_parents(running)
    assert "gw" in parents, parents
    entry = parents["gw"]
    assert entry["parentRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": running.namespace,
        "name": "gw",
    }, entry
    found = {condition["type"]: condition for condition in entry["conditions"]}
    assert found["Accepted"]["status"] == found["ResolvedRefs"]["status"] == "True", found
    assert found["Accepted"]["observedGeneration"] == 1, found
    return parents


def test_the_pool_status_names_our_gateway_and_keeps_other_controllers_entries(running: Running) -> None:
    wait_until(lambda: _served_through_gw(running), timeout=30)
    # Another controller's Gateway entry, written while ours was lost: ours comes back, theirs stays.
    foreign = {
        "parentRef": {"name": "their-gateway"},
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    running.kube.kubectl(
        "patch", "inferencepools.inference.networking.k8s.io", POOL, "-n", running.namespace,
        "--subresource=status", "--type=merge", "-p", json.dumps({"status": {"parents": [foreign]}}),
    )  # fmt: skip
    theirs = _pool_parents(running)
    assert set(theirs) == {"their-gateway"}, theirs
    # Status-only changes are not input; the next translation (any change) writes ours again.
    running.kube.kubectl("create", "service", "clusterip", "nudge", "--tcp=80:80", "-n", running.namespace)
    parents = wait_until(lambda: _served_through_gw(running), timeout=30)
    assert parents["their-gateway"] == theirs["their-gateway"]


def test_each_of_100_requests_reaches_the_pod_the_real_picker_named(
    running: Running, http: httpx.Client
) -> None:
    answers = Counter(answered_by(_to_pool(http, running.url)) for _ in range(100))
    pool = running.setup.pool
    assert sum(len(server.received) for server in pool.servers) == 100, answers
    for index, server in enumerate(pool.servers):
        named = {request.headers[DESTINATION_ENDPOINT_KEY].split(",")[0] for request in server.received}
        assert named <= {pool.endpoint(index)}, (server.name, named)


def test_a_streamed_answer_comes_back_whole_through_the_real_picker(
    running: Running, http: httpx.Client
) -> None:
    body = {**CHAT, "model": "llama3-8b", "stream": True, "stream_options": {"include_usage": True}}
    reply = http.post(running.url, json=body, headers={INFERENCE_HEADER: "yes"})
    assert reply.status_code == 200, reply.text
    events = [line.removeprefix("data: ") for line in reply.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    content = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks if chunk["choices"])
    pod, model, asked = content.split(",")
    assert pod in {server.name for server in running.setup.pool.servers}, content
    assert (model, asked) == ("llama3-8b", "llama3-8b"), content
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_a_pod_reporting_a_long_queue_stops_getting_traffic(running: Running, http: httpx.Client) -> None:
    busy = running.setup.pool.servers[0]
    busy.set_load(ServerLoad(waiting=200, running=50, kv_cache_usage=0.99))
    try:

        def avoided() -> bool:
            busy.clear()
            answers = Counter(answered_by(_to_pool(http, running.url)) for _ in range(20))
            assert busy.name not in answers, answers
            return True

        wait_until(avoided, timeout=30)
    finally:
        busy.set_load(ServerLoad())


def test_picker_killed_fail_close_answers_503_and_fail_open_keeps_serving(
    running: Running, http: httpx.Client
) -> None:
    running.picker.kill()
    try:
        reply = _to_pool(http, running.url)
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["type"] == "server_error"
        running.apply(replace(running.setup, failure_mode="FailOpen"))

        def served_without_picker() -> bool:
            answers = Counter(answered_by(_to_pool(http, running.url)) for _ in range(10))
            assert set(answers) <= {server.name for server in running.setup.pool.servers}, answers
            return True

        wait_until(served_without_picker, timeout=30)
    finally:
        running.apply(running.setup)
        running.picker.start()
    wait_until(lambda: answered_by(_to_pool(http, running.url)), timeout=30)


def test_pool_at_priority_0_all_down_fails_over_to_the_backend_at_priority_1_and_back(
    running: Running, http: httpx.Client
) -> None:
    pool = running.setup.pool
    for server in pool.servers:
        server.set_mode(Refuse())
    try:
        answers = [answered_by(_to_pool(http, running.url, FAILOVER_HEADER)) for _ in range(10)]
        assert answers == ["plain"] * 10
    finally:
        for server in pool.servers:
            server.set_mode(Normal())

    def back_on_the_pool() -> bool:
        assert answered_by(_to_pool(http, running.url, FAILOVER_HEADER)).startswith("vllm-")
        return True

    wait_until(back_on_the_pool, timeout=30)


def test_a_pod_made_unready_or_added_moves_traffic_without_a_restart(
    running: Running, http: httpx.Client
) -> None:
    pool, kube, namespace = running.setup.pool, running.kube, running.namespace
    pool.set_ready(kube, 1, namespace=namespace, ready=False)

    def avoids_unready() -> bool:
        answers = Counter(answered_by(_to_pool(http, running.url)) for _ in range(20))
        assert pool.pod_name(1) not in answers, answers
        return True

    wait_until(avoids_unready, timeout=30)
    pool.set_ready(kube, 1, namespace=namespace, ready=True)
    added = pool.add()
    pool.create_pod(kube, len(pool.servers) - 1, namespace=namespace, labels=POOL_LABELS)

    def reaches_added() -> bool:
        answers = Counter(answered_by(_to_pool(http, running.url)) for _ in range(30))
        assert added.name in answers, answers
        return True

    wait_until(reaches_added, timeout=30)
