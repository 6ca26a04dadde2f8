"""A Gemini backend on Vertex AI through a real Envoy configured only by our xDS server: the OpenAI SDK's
chat completions, unary and streamed, reach a fake that accepts only Vertex AI's generateContent API (the
model and method in the project's path, ``contents``, ``alt=sse`` streams) and get OpenAI answers back.

The snapshot is built from the IR (the hop a GCPVertexAI backend gets, as ``gatewayapi.providers`` makes it
and the translate golden ``providers`` pins), since the GCPCredentials that name the project and region
are minted by another part of the control plane; the path and conversion are Envoy's and ours alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from controlplane import ir
from controlplane.devtools.fake_providers import GEMINI_USAGE, FakeProvider
from controlplane.netutil import PortReservations
from controlplane.xds.cache import Snapshot
from controlplane.xds.translator import build_xds
from tests.conftest import EnvoyFactory
from tests.polling import wait_until
from tests.xds_support import ServerThread

pytestmark = pytest.mark.envoy

PROJECT, REGION = "my-project", "us-central1"


def _infra(*, gateway_port: int, vertex_port: int) -> ir.Infra:
    hop = ir.BackendHop(
        name="route/default/r/rule/0/backend/0",
        upstream_cluster="backend/default/vertex",
        transcoding=ir.Transcoding(
            api=ir.LlmApi.GEMINI_GENERATE_CONTENT,
            path_pattern="^/v1beta/models/",
            path_substitution=f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/",
        ),
    )
    route = ir.Route(
        name="route/default/r/rule/0/match/0",
        path=ir.PathMatch(),
        headers=(ir.HeaderMatch(name=ir.MODEL_HEADER, value="gemini-e2e"),),
        action=ir.Forward(cluster="route/default/r/rule/0", timeout_seconds=30),
    )
    return ir.Infra(
        listeners=(
            ir.HttpListener(
                name="gateway",
                address="127.0.0.1",
                port=gateway_port,
                route_config="gateway",
                virtual_hosts=(ir.VirtualHost(name="gateway/*", domains=("*",), routes=(route,)),),
                token_costs=(
                    ir.TokenCost(
                        metadata_key="total", expression=ir.cost_expression.Variable("total_tokens", "uint")
                    ),
                ),
            ),
        ),
        rule_clusters=(
            ir.RuleCluster(
                name="route/default/r/rule/0",
                endpoints=(ir.WeightedEndpoint(ir.InternalEndpoint(hop.name), weight=1, priority=0),),
            ),
        ),
        hops=(hop,),
        upstreams=(
            ir.UpstreamCluster(
                name="backend/default/vertex",
                discovery=ir.DiscoveryType.EDS,
                endpoints=(ir.SocketEndpoint("127.0.0.1", vertex_port),),
            ),
        ),
    )


@pytest.fixture
def vertex() -> Iterator[FakeProvider]:
    with FakeProvider(api="vertex", name="vertex") as provider:
        yield provider


@pytest.mark.parametrize("mode", ["sotw"])
def test_gemini_on_vertex_serves_openai_chat_unary_and_streamed(
    xds: ServerThread, envoys: EnvoyFactory, vertex: FakeProvider, ports: PortReservations
) -> None:
    gateway = ports.reserve()
    resources = build_xds(_infra(gateway_port=gateway, vertex_port=vertex.port))
    xds.cache.set_snapshot(
        Snapshot.from_resources(
            listeners=resources.listeners,
            routes=resources.routes,
            clusters=resources.clusters,
            endpoints=resources.endpoints,
            secrets=resources.secrets,
        )
    )
    envoys(node_id="vertex")
    with openai.OpenAI(
        base_url=f"http://127.0.0.1:{gateway}/v1", api_key="unused", max_retries=0, timeout=10
    ) as client:
        chat: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]

        def answered() -> ChatCompletion | None:
            try:
                return client.chat.completions.create(model="gemini-e2e", messages=chat)
            except openai.APIError:
                return None

        completion = wait_until(answered, timeout=30)
        assert completion is not None
        assert completion.choices[0].message.content == "vertex,gemini-e2e,hello"
        assert completion.usage is not None
        assert completion.usage.total_tokens == GEMINI_USAGE["totalTokenCount"]
        stream = client.chat.completions.create(model="gemini-e2e", messages=chat, stream=True)
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([piece for piece in pieces if piece]) > 1
    assert "".join(pieces) == "vertex,gemini-e2e,hello"
    unary, streamed = vertex.received[-2:]
    base = f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/gemini-e2e"
    assert unary.path == f"{base}:generateContent"
    assert streamed.path == f"{base}:streamGenerateContent?alt=sse"
    assert unary.body["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]
    assert "model" not in unary.body, "Gemini names the model in the path"
