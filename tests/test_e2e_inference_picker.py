"""An InferencePool with an endpoint picker, through a real Envoy fed only by our xDS server: our own picker
(``devtools.picker``, the endpoint picker protocol over gRPC with TLS) in front of three model-server Pods on
127.0.0.11-13 (the real picker against a real API server: ``test_kubernetes_inference_epp``).

Each test gets its own Envoy, pool and picker: ejections and picker state outlive a test.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest

from controlplane.devtools.fake_backend import FakeBackend, Normal, Refuse
from controlplane.devtools.model_pool import ModelPool
from controlplane.devtools.picker import Erroring, LocalPicker, Outside
from controlplane.gatewayapi import TranslateOptions
from controlplane.gatewayapi.pools import H2C_APP_PROTOCOL
from controlplane.netutil import PortReservations
from controlplane.pipeline import translate
from controlplane.resources.parse import load_text
from controlplane.xds.translator.filters.endpoint_picker import (
    DESTINATION_ENDPOINT_KEY,
    SERVED_ENDPOINT_KEY,
)
from tests.conftest import EnvoyFactory
from tests.e2e import CHAT, answered_by
from tests.inference_support import FAILOVER_HEADER, INFERENCE_HEADER, PoolSetup, pool_manifests
from tests.polling import wait_until
from tests.xds_support import ServerThread

pytestmark = pytest.mark.envoy

Serve = Callable[..., str]


@pytest.fixture
def mode() -> str:
    return "sotw"


@pytest.fixture
def pool() -> Iterator[ModelPool]:
    with ModelPool(name="vllm", model="llama3-8b", size=3) as started:
        yield started


@pytest.fixture
def picker(pool: ModelPool) -> Iterator[LocalPicker]:
    with LocalPicker(endpoints=pool.endpoints) as started:
        yield started


@pytest.fixture
def plain() -> Iterator[FakeBackend]:
    with FakeBackend(name="plain", model="plain-model") as started:
        yield started


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def serve(
    xds: ServerThread,
    envoys: EnvoyFactory,
    pool: ModelPool,
    picker: LocalPicker,
    plain: FakeBackend,
    http: httpx.Client,
    ports: PortReservations,
) -> Serve:
    """Serves the pool (with our picker unless ``with_picker=False``; ``plaintext_picker`` instead, if given,
    named as h2c) and returns the chat URL once the pool answers through Envoy."""
    envoys()

    def start(
        *,
        failure_mode: str = "FailClose",
        with_picker: bool = True,
        plaintext_picker: LocalPicker | None = None,
    ) -> str:
        serving = plaintext_picker or picker
        setup = PoolSetup(
            namespace="default",
            gateway_port=ports.reserve(),
            pool=pool,
            plain=plain,
            picker_address=(serving.host, serving.port) if with_picker else None,
            failure_mode=failure_mode,
            picker_app_protocol=H2C_APP_PROTOCOL if plaintext_picker is not None else None,
        )
        loaded = load_text(pool_manifests(setup, with_pods=True), file="pool.yaml")
        options = TranslateOptions(listen_address="127.0.0.1", inference_extension=True)
        result = translate(loaded.resource_set(), options=options)
        assert not result.problems, result.problems
        xds.cache.set_snapshot(result.snapshot())
        url = f"http://127.0.0.1:{setup.gateway_port}/v1/chat/completions"
        wait_until(lambda: answered_by(_to_pool(http, url)), timeout=30)
        for server in pool.servers:
            server.clear()
        return url

    return start


def _to_pool(http: httpx.Client, url: str, header: str = INFERENCE_HEADER) -> httpx.Response:
    return http.post(url, json={**CHAT, "model": "llama3-8b"}, headers={header: "yes"})


def test_every_request_reaches_the_pod_the_picker_named(
    serve: Serve, pool: ModelPool, picker: LocalPicker, http: httpx.Client
) -> None:
    url = serve()
    before = len(picker.picks)
    answers = [answered_by(_to_pool(http, url)) for _ in range(100)]
    picks = picker.picks[before:]
    assert answers == [pool.pod_name(pool.endpoints.index(pick)) for pick in picks]
    assert picker.served[-100:] == picks, "Envoy reports the served endpoint back to the picker"
    assert set(answers) == {pool.pod_name(index) for index in range(3)}, Counter(answers)
    for index, server in enumerate(pool.servers):
        named = {request.headers[DESTINATION_ENDPOINT_KEY].split(",")[0] for request in server.received}
        assert named == {pool.endpoint(index)}


def test_seed_002_header_no_goes_to_the_plain_backend_without_the_picker(
    serve: Serve, picker: LocalPicker, plain: FakeBackend, http: httpx.Client
) -> None:
    url = serve()
    before = len(picker.picks)
    reply = http.post(url, json=CHAT, headers={INFERENCE_HEADER: "no"})
    assert answered_by(reply) == "plain"
    assert len(picker.picks) == before
    assert DESTINATION_ENDPOINT_KEY not in plain.received[-1].headers


def test_a_pick_outside_the_pool_is_never_reached(
    serve: Serve, pool: ModelPool, picker: LocalPicker, http: httpx.Client
) -> None:
    url = serve()
    with FakeBackend(name="intruder", model="m", host="127.0.0.30", port=pool.port) as intruder:
        picker.set_mode(Outside(f"127.0.0.30:{pool.port}"))
        answers = Counter(answered_by(_to_pool(http, url)) for _ in range(20))
        assert set(answers) <= {pool.pod_name(index) for index in range(3)}, answers
        assert intruder.received == []


@pytest.mark.parametrize("trouble", ["killed", "erroring"])
def test_fail_open_pool_keeps_serving_when_the_picker_fails(
    serve: Serve, pool: ModelPool, picker: LocalPicker, http: httpx.Client, trouble: str
) -> None:
    url = serve(failure_mode="FailOpen")
    _make_trouble(picker, trouble)
    answers = Counter(answered_by(_to_pool(http, url)) for _ in range(30))
    assert set(answers) == {pool.pod_name(index) for index in range(3)}, answers


@pytest.mark.parametrize("trouble", ["killed", "erroring"])
def test_fail_close_pool_answers_503_in_openai_json_when_the_picker_fails(
    serve: Serve, pool: ModelPool, picker: LocalPicker, http: httpx.Client, trouble: str
) -> None:
    url = serve(failure_mode="FailClose")
    _make_trouble(picker, trouble)
    for _ in range(3):
        reply = _to_pool(http, url)
        assert reply.status_code == 503, reply.text
        assert reply.headers["content-type"] == "application/json"
        assert reply.json()["error"]["type"] == "server_error"
    assert all(server.received == [] for server in pool.servers)


def test_a_pool_without_a_picker_spreads_requests_by_least_request(
    serve: Serve, pool: ModelPool, http: httpx.Client
) -> None:
    url = serve(with_picker=False)
    answers = Counter(answered_by(_to_pool(http, url)) for _ in range(30))
    assert set(answers) == {pool.pod_name(index) for index in range(3)}, answers
    assert all(DESTINATION_ENDPOINT_KEY not in r.headers for s in pool.servers for r in s.received)


def test_pool_at_priority_0_all_down_fails_over_to_the_backend_at_priority_1_and_back(
    serve: Serve, pool: ModelPool, plain: FakeBackend, http: httpx.Client
) -> None:
    url = serve()
    assert answered_by(_to_pool(http, url, FAILOVER_HEADER)).startswith("vllm-")
    for server in pool.servers:
        server.set_mode(Refuse())
    answers = [answered_by(_to_pool(http, url, FAILOVER_HEADER)) for _ in range(10)]
    assert answers == ["plain"] * 10
    for server in pool.servers:
        server.set_mode(Normal())

    def back_on_the_pool() -> bool:
        assert answered_by(_to_pool(http, url, FAILOVER_HEADER)).startswith("vllm-")
        return True

    wait_until(back_on_the_pool, timeout=20)


def _make_trouble(picker: LocalPicker, trouble: str) -> None:
    if trouble == "killed":
        picker.stop()
    else:
        picker.set_mode(Erroring())


def test_an_unreachable_pick_is_retried_on_the_pickers_fallback_endpoint(
    serve: Serve, pool: ModelPool, picker: LocalPicker, http: httpx.Client
) -> None:
    url = serve()
    pool.servers[0].set_mode(Refuse())
    before = len(picker.picks)
    answers = [answered_by(_to_pool(http, url)) for _ in range(30)]
    picks = picker.picks[before:]
    served = picker.served[-30:]
    fallback_of = {pool.endpoint(index): pool.endpoint((index + 1) % 3) for index in range(3)}
    for pick, answer, reported in zip(picks, answers, served, strict=True):
        expected = fallback_of[pick] if pick == pool.endpoint(0) else pick
        assert answer == pool.pod_name(pool.endpoints.index(expected)), (pick, answer)
        assert reported == expected, "Envoy tells the picker which endpoint really served"


def test_a_picker_service_port_marked_h2c_is_reached_without_tls(
    serve: Serve, pool: ModelPool, http: httpx.Client
) -> None:
    with LocalPicker(endpoints=pool.endpoints, tls=False) as plaintext:
        url = serve(plaintext_picker=plaintext)
        before = len(plaintext.picks)
        answers = [answered_by(_to_pool(http, url)) for _ in range(10)]
        picks = plaintext.picks[before:]
        assert answers == [pool.pod_name(pool.endpoints.index(pick)) for pick in picks]


def test_a_streamed_answer_comes_back_whole_through_the_picker(
    serve: Serve, pool: ModelPool, picker: LocalPicker, http: httpx.Client
) -> None:
    url = serve()
    body = {**CHAT, "model": "llama3-8b", "stream": True}
    reply = http.post(url, json=body, headers={INFERENCE_HEADER: "yes"})
    assert reply.status_code == 200, reply.text
    assert SERVED_ENDPOINT_KEY not in reply.headers, "the served endpoint is for the picker, not the client"
    events = [line.removeprefix("data: ") for line in reply.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    # The gateway asks for usage on every stream (stream_options.include_usage, as upstream does): it comes
    # last, in a chunk with no choices.
    assert chunks[-1]["choices"] == [], chunks[-1]
    assert chunks[-1]["usage"]["total_tokens"] > 0, chunks[-1]
    content = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks[:-1])
    assert content == f"{pool.pod_name(pool.endpoints.index(picker.picks[-1]))},llama3-8b,llama3-8b"


def test_the_picker_is_never_sent_the_clients_credentials(
    serve: Serve, pool: ModelPool, picker: LocalPicker, http: httpx.Client
) -> None:
    url = serve()
    credentials = {"authorization": "Bearer sk-client", "x-api-key": "sk-client", "api-key": "sk-client"}
    reply = http.post(
        url, json={**CHAT, "model": "llama3-8b"}, headers={INFERENCE_HEADER: "yes", **credentials}
    )
    served = pool.servers[pool.endpoints.index(picker.picks[-1])]
    assert answered_by(reply) == served.name
    seen = picker.header_names[-1]
    assert INFERENCE_HEADER in seen
    assert not seen & set(credentials), seen
    assert served.received[-1].headers["authorization"] == "Bearer sk-client", "the model server gets them"
