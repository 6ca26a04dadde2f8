"""Providers whose path the hop builds, through a real Envoy configured only by our xDS server.

Claude on Vertex AI (GCPAnthropic) and on Bedrock (AWSAnthropic): the OpenAI SDK's chat completions reach
fakes that accept only what each cloud documents (the model and method in the path, ``anthropic_version``
and no ``model`` in the body, Vertex's bearer token, Bedrock's SigV4 signature, no ``stream`` key on
Bedrock) and get OpenAI answers back, streams included (Bedrock's event-stream frames become server-sent
events in the hop; ``test_e2e_bedrock_stream`` has the rest). Clients of Anthropic's own API
(``/anthropic/v1/messages``) reach both the same way, untranscoded. Cohere: its own Rerank v2 request on
``/cohere/v2/rerank`` reaches ``/v2/rerank`` as sent, with the key; other paths are refused.

The hops come from ``gatewayapi.providers.provider_shape`` (as ``translate`` makes them; the translate
golden ``providers`` pins the rest), so the shapes tested here are the shipped ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from controlplane import ir
from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.devtools.fake_providers import (
    ANTHROPIC_USAGE,
    BEDROCK_ANTHROPIC_VERSION,
    VERTEX_ANTHROPIC_VERSION,
    FakeProvider,
    ProviderRequest,
)
from controlplane.gatewayapi.providers import ProviderShape, provider_shape
from controlplane.netutil import PortReservations
from controlplane.resources.aigateway import VersionedAPISchema
from controlplane.resources.security import BackendSecurityPolicySpec
from controlplane.xds.cache import Snapshot
from controlplane.xds.translator import build_xds
from tests.aws_sigv4 import AwsKey, ReceivedRequest, verify_sigv4
from tests.conftest import EnvoyFactory
from tests.polling import wait_until
from tests.xds_support import ServerThread

pytestmark = pytest.mark.envoy

PROJECT, REGION = "my-project", "us-east5"
VERTEX_MODEL = "claude-sonnet-4@20250514"
OVERRIDDEN_MODEL = "claude-3-5-haiku@20241022"
BEDROCK_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
VERTEX_TOKEN = "ya29.vertex-e2e-token"
COHERE_KEY = "co-e2e-key"
RERANK_MODEL = "rerank-english-v3.0"
BEDROCK_KEY = AwsKey(access_key_id="AKIDBEDROCKE2E", secret_access_key="bedrock-e2e-secret")
CHAT: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello"},
]


def _shape(schema: str, policy: Mapping[str, object] | None) -> ProviderShape:
    spec = None if policy is None else BackendSecurityPolicySpec.model_validate({"targetRefs": [], **policy})
    shape = provider_shape(VersionedAPISchema.model_validate({"name": schema}), policy=spec)
    assert isinstance(shape, ProviderShape), shape
    return shape


def _infra(*, gateway_port: int, hops: list[tuple[str, ir.BackendHop]], upstream_port: int) -> ir.Infra:
    """One rule per (model, hop), all hops to the one upstream on ``upstream_port``."""
    routes, rule_clusters = [], []
    for index, (model, hop) in enumerate(hops):
        cluster = f"route/default/r/rule/{index}"
        routes.append(
            ir.Route(
                name=f"{cluster}/match/0",
                path=ir.PathMatch(),
                headers=(ir.HeaderMatch(name=ir.MODEL_HEADER, value=model),),
                action=ir.Forward(cluster=cluster, timeout_seconds=30),
            )
        )
        rule_clusters.append(
            ir.RuleCluster(
                name=cluster,
                endpoints=(ir.WeightedEndpoint(ir.InternalEndpoint(hop.name), weight=1, priority=0),),
            )
        )
    return ir.Infra(
        listeners=(
            ir.HttpListener(
                name="gateway",
                address="127.0.0.1",
                port=gateway_port,
                route_config="gateway",
                virtual_hosts=(ir.VirtualHost(name="gateway/*", domains=("*",), routes=tuple(routes)),),
            ),
        ),
        rule_clusters=tuple(rule_clusters),
        hops=tuple(hop for _, hop in hops),
        upstreams=(
            ir.UpstreamCluster(
                name="backend/default/cloud",
                discovery=ir.DiscoveryType.EDS,
                endpoints=(ir.SocketEndpoint("127.0.0.1", upstream_port),),
            ),
        ),
        credentials=(
            ir.CredentialSecret(name="cohere-key", header_value=f"Bearer {COHERE_KEY}"),
            ir.CredentialSecret(name="vertex-token", header_value=f"Bearer {VERTEX_TOKEN}"),
        ),
    )


def _serve(xds: ServerThread, envoys: EnvoyFactory, infra: ir.Infra, *, node_id: str) -> EnvoyProcess:
    resources = build_xds(infra)
    xds.cache.set_snapshot(
        Snapshot.from_resources(
            listeners=resources.listeners,
            routes=resources.routes,
            clusters=resources.clusters,
            endpoints=resources.endpoints,
            secrets=resources.secrets,
        )
    )
    return envoys(node_id=node_id)


def _assert_leaks_nowhere(envoy: EnvoyProcess, secret: str, answers: list[str]) -> None:
    """The credential reached the provider (the test checks that) and none of Envoy's log, config dump,
    secrets or stats, nor the answers the client got."""
    envoy.wait_ready()  # long since served: this only learns the admin address
    places = {
        "envoy log": envoy.log_path.read_text(encoding="utf-8", errors="replace"),
        "config dump": envoy.admin("/config_dump", params={"include_eds": "true"}),
        "secrets": envoy.admin("/config_dump", params={"resource": "dynamic_active_secrets"}),
        "stats": envoy.admin("/stats"),
        "answers": "\n".join(answers),
    }
    assert [place for place, text in places.items() if secret in text] == []


@dataclass(frozen=True)
class _NativeAnswers:
    unary: httpx.Response
    events: list[str]
    """The ``event:`` lines of the streamed answer."""


def _anthropic_client(gateway: int, model: str) -> _NativeAnswers:
    """A client of Anthropic's own Messages API (upstream's ``/anthropic/v1/messages``): unary then streamed,
    its system prompt top-level as Anthropic's API has it."""
    url = f"http://127.0.0.1:{gateway}{ir.ANTHROPIC_CLIENT_PATH}"
    request = {
        "model": model,
        "max_tokens": 20,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": False,
    }
    with httpx.Client(timeout=10, headers={"anthropic-version": "2023-06-01"}) as http:
        unary = http.post(url, json=request)
        with http.stream("POST", url, json={**request, "stream": True}) as streamed:
            events = [line for line in streamed.iter_lines() if line.startswith("event: ")]
    assert unary.status_code == 200, unary.text
    assert streamed.status_code == 200
    return _NativeAnswers(unary=unary, events=events)


def _first_answer(client: openai.OpenAI, model: str) -> ChatCompletion:
    def answered() -> ChatCompletion | None:
        try:
            return client.chat.completions.create(model=model, messages=CHAT)
        except openai.APIError:
            return None

    completion = wait_until(answered, timeout=30)
    assert completion is not None
    return completion


def _assert_cloud_body(request: ProviderRequest, *, version: str) -> None:
    assert request.body["anthropic_version"] == version
    assert "model" not in request.body, "the cloud names the model in the path"
    assert request.body["system"] == "be brief", "the transcoder lifts the system message"
    assert request.body["messages"] == [{"role": "user", "content": "hello"}]
    assert isinstance(request.body["max_tokens"], int)


@pytest.fixture
def vertex() -> Iterator[FakeProvider]:
    with FakeProvider(api="vertex-anthropic", name="vertex") as provider:
        yield provider


@pytest.fixture
def cohere() -> Iterator[FakeProvider]:
    with FakeProvider(api="cohere", name="cohere") as provider:
        yield provider


@pytest.fixture
def bedrock() -> Iterator[FakeProvider]:
    with FakeProvider(api="bedrock-anthropic", name="bedrock") as provider:
        yield provider


@pytest.mark.parametrize("mode", ["sotw"])
def test_claude_on_vertex_serves_openai_chat_unary_streamed_and_overridden(
    xds: ServerThread, envoys: EnvoyFactory, vertex: FakeProvider, ports: PortReservations
) -> None:
    gcp = {
        "type": "GCPCredentials",
        "gcpCredentials": {
            "projectName": PROJECT,
            "region": REGION,
            "credentialsFile": {"secretRef": {"name": "sa"}},
        },
    }
    transcoding = _shape("GCPAnthropic", gcp).transcoding
    token = ir.Credential(secret="vertex-token", header="authorization")
    hop = ir.BackendHop(
        name="route/default/r/rule/0/backend/0",
        upstream_cluster="backend/default/cloud",
        credential=token,
        transcoding=transcoding,
    )
    overridden = ir.BackendHop(
        name="route/default/r/rule/1/backend/0",
        upstream_cluster="backend/default/cloud",
        credential=token,
        transcoding=transcoding,
        model_override=OVERRIDDEN_MODEL,
    )
    gateway = ports.reserve()
    infra = _infra(
        gateway_port=gateway,
        hops=[(VERTEX_MODEL, hop), ("claude-overridden", overridden)],
        upstream_port=vertex.port,
    )
    envoy = _serve(xds, envoys, infra, node_id="vertex-claude")
    with openai.OpenAI(
        base_url=f"http://127.0.0.1:{gateway}/v1", api_key="unused", max_retries=0, timeout=10
    ) as client:
        completion = _first_answer(client, VERTEX_MODEL)
        assert completion.choices[0].message.content == f"vertex,{VERTEX_MODEL},hello"
        assert completion.usage is not None
        assert completion.usage.prompt_tokens == ANTHROPIC_USAGE["input_tokens"]
        stream = client.chat.completions.create(model=VERTEX_MODEL, messages=CHAT, stream=True)
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
        other = client.chat.completions.create(model="claude-overridden", messages=CHAT)
    assert len([piece for piece in pieces if piece]) > 1
    assert "".join(pieces) == f"vertex,{VERTEX_MODEL},hello"
    assert other.choices[0].message.content == f"vertex,{OVERRIDDEN_MODEL},hello"
    unary, streamed, override = vertex.received[-3:]
    base = f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/anthropic/models"
    assert unary.path == f"{base}/{VERTEX_MODEL}:rawPredict"
    assert streamed.path == f"{base}/{VERTEX_MODEL}:streamRawPredict"
    assert override.path == f"{base}/{OVERRIDDEN_MODEL}:rawPredict"
    for request in (unary, streamed, override):
        _assert_cloud_body(request, version=VERTEX_ANTHROPIC_VERSION)
        assert request.headers["authorization"] == f"Bearer {VERTEX_TOKEN}"
    assert "stream" not in unary.body
    assert streamed.body["stream"] is True
    native = _anthropic_client(gateway, VERTEX_MODEL)
    assert native.unary.json()["content"] == [{"type": "text", "text": f"vertex,{VERTEX_MODEL},hello"}]
    assert native.events[0] == "event: message_start", "Vertex's SSE events, as they came"
    assert native.events[-1] == "event: message_stop"
    native_unary, native_streamed = vertex.received[-2:]
    assert native_unary.path == f"{base}/{VERTEX_MODEL}:rawPredict"
    assert native_streamed.path == f"{base}/{VERTEX_MODEL}:streamRawPredict"
    for request in (native_unary, native_streamed):
        _assert_cloud_body(request, version=VERTEX_ANTHROPIC_VERSION)
        assert request.headers["authorization"] == f"Bearer {VERTEX_TOKEN}"
    assert native_unary.body["stream"] is False, "the client's own stream field is kept for Vertex"
    _assert_leaks_nowhere(
        envoy,
        VERTEX_TOKEN,
        [completion.model_dump_json(), other.model_dump_json(), *pieces, native.unary.text, *native.events],
    )


@pytest.mark.parametrize("mode", ["sotw"])
def test_claude_on_bedrock_serves_signed_unary_and_streamed_chat(
    xds: ServerThread, envoys: EnvoyFactory, bedrock: FakeProvider, ports: PortReservations
) -> None:
    shape = _shape("AWSAnthropic", None)
    keys = ir.AwsKeys(
        access_key_id=BEDROCK_KEY.access_key_id, secret_access_key=BEDROCK_KEY.secret_access_key
    )
    hop = ir.BackendHop(
        name="route/default/r/rule/0/backend/0",
        upstream_cluster="backend/default/cloud",
        credential=ir.AwsSigning(region="us-east-1", service="bedrock", keys=keys),
        transcoding=shape.transcoding,
    )
    gateway = ports.reserve()
    envoy = _serve(
        xds,
        envoys,
        _infra(gateway_port=gateway, hops=[(BEDROCK_MODEL, hop)], upstream_port=bedrock.port),
        node_id="bedrock-claude",
    )
    with openai.OpenAI(
        base_url=f"http://127.0.0.1:{gateway}/v1", api_key="unused", max_retries=0, timeout=10
    ) as client:
        completion = _first_answer(client, BEDROCK_MODEL)
        assert completion.choices[0].message.content == f"bedrock,{BEDROCK_MODEL},hello"
        assert completion.usage is not None
        assert completion.usage.completion_tokens == ANTHROPIC_USAGE["output_tokens"]
        stream = client.chat.completions.create(model=BEDROCK_MODEL, messages=CHAT, stream=True)
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([piece for piece in pieces if piece]) > 1
    assert "".join(pieces) == f"bedrock,{BEDROCK_MODEL},hello"
    unary, streamed = bedrock.received[-2:]
    assert streamed.path == f"/model/{BEDROCK_MODEL}/invoke-with-response-stream"
    _assert_cloud_body(streamed, version=BEDROCK_ANTHROPIC_VERSION)
    assert "stream" not in streamed.body, "Bedrock refuses the key: its path names the method"
    assert unary.path == f"/model/{BEDROCK_MODEL}/invoke"
    _assert_cloud_body(unary, version=BEDROCK_ANTHROPIC_VERSION)
    assert "stream" not in unary.body
    for request in (unary, streamed):
        signed = ReceivedRequest(
            method="POST", path=request.path, query={}, headers=request.headers, body=request.raw
        )
        verify_sigv4(signed, key=BEDROCK_KEY, region="us-east-1", service="bedrock")
    native = _anthropic_client(gateway, BEDROCK_MODEL)
    assert native.unary.json()["content"] == [{"type": "text", "text": f"bedrock,{BEDROCK_MODEL},hello"}]
    assert native.events[0] == "event: message_start", "Anthropic's events, out of Bedrock's frames"
    assert native.events[-1] == "event: message_stop"
    native_unary, native_streamed = bedrock.received[-2:]
    assert native_unary.path == f"/model/{BEDROCK_MODEL}/invoke"
    assert native_streamed.path == f"/model/{BEDROCK_MODEL}/invoke-with-response-stream"
    for request in (native_unary, native_streamed):
        _assert_cloud_body(request, version=BEDROCK_ANTHROPIC_VERSION)
        assert "stream" not in request.body, "Bedrock refuses the key: its path names the method"
        signed = ReceivedRequest(
            method="POST", path=request.path, query={}, headers=request.headers, body=request.raw
        )
        verify_sigv4(signed, key=BEDROCK_KEY, region="us-east-1", service="bedrock")
    _assert_leaks_nowhere(
        envoy,
        BEDROCK_KEY.secret_access_key,
        [completion.model_dump_json(), *pieces, native.unary.text, *native.events],
    )


@pytest.mark.parametrize("mode", ["sotw"])
def test_cohere_rerank_goes_as_sent_to_its_v2_path_with_the_key(
    xds: ServerThread, envoys: EnvoyFactory, cohere: FakeProvider, ports: PortReservations
) -> None:
    shape = _shape("Cohere", None)
    hop = ir.BackendHop(
        name="route/default/r/rule/0/backend/0",
        upstream_cluster="backend/default/cloud",
        credential=ir.Credential(secret="cohere-key", header="authorization"),
        provider_api=shape.api,
    )
    gateway = ports.reserve()
    envoy = _serve(
        xds,
        envoys,
        _infra(gateway_port=gateway, hops=[(RERANK_MODEL, hop)], upstream_port=cohere.port),
        node_id="cohere",
    )
    request = {"model": RERANK_MODEL, "query": "which?", "documents": ["a", "b", "c"], "top_n": 2}
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway}", timeout=10) as client:

        def reranked() -> httpx.Response | None:
            answer = client.post(
                "/cohere/v2/rerank", json=request, headers={"authorization": "Bearer client"}
            )
            return answer if answer.status_code == 200 else None

        answer = wait_until(reranked, timeout=30)
        assert answer is not None
        chat = client.post("/v1/chat/completions", json={"model": RERANK_MODEL, "messages": []})
    assert answer.json()["id"] == f"cohere,{RERANK_MODEL}"
    assert [result["index"] for result in answer.json()["results"]] == [0, 1]
    received = cohere.received[-1]
    assert received.path == "/v2/rerank"
    assert received.body == request
    assert received.headers["authorization"] == f"Bearer {COHERE_KEY}", (
        "the backend's key replaces the client's"
    )
    assert chat.status_code == 404
    assert "serves only /cohere/v2/rerank" in chat.json()["error"]["message"]
    assert all(seen.path == "/v2/rerank" for seen in cohere.received)
    _assert_leaks_nowhere(envoy, COHERE_KEY, [f"{answer.headers}\n{answer.text}", chat.text])
