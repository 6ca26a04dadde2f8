"""AWSCredentials with ``oidcExchangeToken`` through a real Envoy configured by our xDS server.

The control plane gets a token from a fake OIDC provider on loopback, trades it at a fake AWS STS
(``AssumeRoleWithWebIdentity``, pointed at by ``AWS_ENDPOINT_URL_STS`` as AWS's SDKs are) for the role's
temporary keys, and Envoy signs each attempt with them: the fake Bedrock endpoint checks the SigV4 signature
and session token as AWS would (botocore's signer). The keys are refreshed before they expire, kept while
refreshing fails until they expire, then the policy says why it has none. No secret shows anywhere but the
upstream requests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from controlplane.devtools.fake_backend import HoldStream, Normal
from controlplane.devtools.stack import LocalStack
from tests.aws_sigv4 import AwsKey, verify_sigv4
from tests.e2e import CHAT, answered_by, everywhere_but_upstream, running_stack
from tests.polling import wait_until
from tests.token_endpoints import AWS_ROLE_ARN, OIDC_SECRET, TOKEN_MARK, TokenEndpoints

pytestmark = pytest.mark.envoy

KEY_LIFETIME = 6
"""Seconds: refreshed after 4.8 s, so the test sees a refresh and an expiry without waiting long."""
REGION = "eu-west-3"
MANIFESTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: exchange, namespace: default}
spec:
  gatewayClassName: ai-gateway
  listeners: [{name: http, protocol: HTTP, port: 10093}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: exchange, namespace: default}
spec:
  parentRefs: [{name: exchange}]
  rules: [{backendRefs: [{name: bedrock}]}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {name: bedrock, namespace: default}
spec:
  schema: {name: OpenAI, prefix: /openai/v1}
  backendRef: {name: bedrock-host, kind: Backend, group: gateway.envoyproxy.io}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {name: web-identity, namespace: default}
spec:
  targetRefs: [{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: bedrock}]
  type: AWSCredentials
  awsCredentials:
    region: REGION
    oidcExchangeToken:
      awsRoleArn: ROLE_ARN
      oidc:
        provider: {issuer: "IDP_URL"}
        clientID: gateway
        clientSecret: {name: idp-client}
---
apiVersion: v1
kind: Secret
metadata: {name: idp-client, namespace: default}
stringData: {client-secret: OIDC_SECRET}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: bedrock-host, namespace: default}
spec:
  endpoints: [{ip: {address: 127.0.0.1, port: 18221}}]
"""


@pytest.fixture(scope="module")
def idp() -> Iterator[TokenEndpoints]:
    with TokenEndpoints(lifetime_seconds=KEY_LIFETIME).running() as running:
        yield running


@pytest.fixture(scope="module")
def stack(idp: TokenEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    manifests = tmp_path_factory.mktemp("exchange-manifests") / "route.yaml"
    text = MANIFESTS
    for placeholder, value in {
        "IDP_URL": idp.url,
        "OIDC_SECRET": OIDC_SECRET,
        "ROLE_ARN": AWS_ROLE_ARN,
        "REGION": REGION,
    }.items():
        text = text.replace(placeholder, value)
    manifests.write_text(text, encoding="utf-8")
    with contextlib.ExitStack() as cleanup:
        # The control plane reads where the OIDC provider's STS is when it starts.
        with pytest.MonkeyPatch.context() as patch:
            for name, value in idp.environment().items():
                patch.setenv(name, value)
            running = cleanup.enter_context(running_stack(manifests, tmp_path_factory.mktemp("exchange")))
        wait_until(lambda: _answered(running) == "bedrock-host")
        yield running


def _answered(stack: LocalStack) -> str:
    return answered_by(httpx.post(stack.url(10093), json=CHAT, timeout=10))


def _signed_with(stack: LocalStack, idp: TokenEndpoints) -> AwsKey:
    """The issued key the last request reached the backend signed with (checked as AWS checks it)."""
    assert _answered(stack) == "bedrock-host"
    received = stack.backends["bedrock-host"].received[-1]
    authorization = received.headers.get("authorization", "")
    key = next(key for key in idp.aws_keys if f"Credential={key.access_key_id}/" in authorization)
    verify_sigv4(received, key=key, region=REGION, service="bedrock")
    return key


def test_requests_are_signed_with_the_roles_temporary_keys(stack: LocalStack, idp: TokenEndpoints) -> None:
    key = _signed_with(stack, idp)
    assert key.session_token
    assert stack.backends["bedrock-host"].received[-1].path == "/openai/v1/chat/completions"
    exchange = next(sent for where, sent in idp.received if where == "aws sts")
    assert exchange["RoleArn"] == AWS_ROLE_ARN
    assert exchange["RoleSessionName"] == "ai-gateway-web-identity"


def test_keys_are_refreshed_before_they_expire_and_no_request_is_lost(
    stack: LocalStack, idp: TokenEndpoints
) -> None:
    backend = stack.backends["bedrock-host"]
    first = _signed_with(stack, idp)
    statuses: list[int] = []

    def signed_with_new_keys() -> bool:
        reply = httpx.post(stack.url(10093), json=CHAT, timeout=10)
        statuses.append(reply.status_code)
        return reply.status_code == 200 and f"Credential={first.access_key_id}/" not in str(
            backend.received[-1].headers.get("authorization")
        )

    # New keys are minted at 80% of the lifetime and pushed to Envoy (a new version of the hop's listener):
    # requests are signed with them, and none sent meanwhile fails. (A connection the replaced listener
    # still holds may carry one more request signed with the previous keys, valid for 20% of their life.)
    wait_until(signed_with_new_keys, timeout=30)
    assert set(statuses) == {200}, statuses


def test_a_stream_in_flight_while_the_keys_change_completes(stack: LocalStack, idp: TokenEndpoints) -> None:
    backend = stack.backends["bedrock-host"]
    hold = HoldStream()
    backend.set_mode(hold)
    try:
        with (
            httpx.Client(timeout=60) as client,
            client.stream("POST", stack.url(10093), json={**CHAT, "stream": True}) as reply,
        ):
            assert reply.status_code == 200
            lines = (line for line in reply.iter_lines() if line.startswith("data: "))
            next(lines)
            streamed_with = backend.received[-1].headers.get("authorization")
            # Meanwhile the keys are refreshed and the hop's listener replaced.
            wait_until(lambda: _signed_with(stack, idp).access_key_id not in str(streamed_with), timeout=30)
            hold.release.set()
            rest = list(lines)
    finally:
        hold.release.set()
        backend.set_mode(Normal())
    assert rest[-1] == "data: [DONE]"


def test_no_secret_or_key_leaks(stack: LocalStack) -> None:
    answers = [httpx.post(stack.url(10093), json=CHAT, timeout=10)]
    places = everywhere_but_upstream(stack, answers, translate_exit=0)
    for where, text in places.items():
        for secret in (OIDC_SECRET, TOKEN_MARK):
            assert secret not in text, f"a secret, token or key leaked into the {where}"
    assert "ASIAE2E" in places["envoy config dump"]  # the access key ID, which AWS treats as no secret


def test_a_failing_refresh_keeps_the_keys_until_they_expire_then_says_why(
    stack: LocalStack, idp: TokenEndpoints
) -> None:
    idp.failing = True
    status = f"http://127.0.0.1:{stack.admin_port}/status"
    wait_until(lambda: "TokenRefreshFailed" in httpx.get(status).text, timeout=30)
    assert _signed_with(stack, idp) in idp.aws_keys
    wait_until(lambda: "TokenMintFailed" in httpx.get(status).text, timeout=30)
    text = httpx.get(status).text
    assert "temporarily_unavailable" in text
    assert OIDC_SECRET not in text
    backend = stack.backends["bedrock-host"]
    wait_until(lambda: httpx.post(stack.url(10093), json=CHAT, timeout=10).status_code >= 400)
    backend.clear()
    refused = httpx.post(stack.url(10093), json=CHAT, timeout=10)
    assert refused.status_code >= 400, refused.text
    assert backend.received == []
