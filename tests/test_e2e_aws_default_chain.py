"""An AWSCredentials policy with no key source signs with Envoy's own default AWS credential chain.

Upstream's IRSA and Pod Identity examples name only a region: the key comes from where the data plane runs.
Envoy's ``aws_request_signing`` with no credential provider reads that chain (environment, shared files,
web identity, container and instance roles); here the environment Envoy starts with holds the key, and the
fake Bedrock endpoint checks each request's signature as AWS would.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from controlplane.devtools.stack import LocalStack
from tests.aws_sigv4 import AwsKey, verify_sigv4
from tests.e2e import CHAT, answered_by, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

ENVIRONMENT_KEY = AwsKey("AKIAE2EENVIRONMENT", "sk-e2e-aws-environment-77a0e3")
MANIFESTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: chain, namespace: default}
spec:
  gatewayClassName: ai-gateway
  listeners: [{name: http, protocol: HTTP, port: 10091}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: chain, namespace: default}
spec:
  parentRefs: [{name: chain}]
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
metadata: {name: irsa, namespace: default}
spec:
  targetRefs: [{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: bedrock}]
  type: AWSCredentials
  awsCredentials: {region: ap-south-2}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: bedrock-host, namespace: default}
spec:
  endpoints: [{ip: {address: 127.0.0.1, port: 18205}}]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    manifests = tmp_path_factory.mktemp("chain-manifests") / "route.yaml"
    manifests.write_text(MANIFESTS, encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        # Envoy inherits this environment: the key is where the chain looks first; nothing else is found.
        env.setenv("AWS_ACCESS_KEY_ID", ENVIRONMENT_KEY.access_key_id)
        env.setenv("AWS_SECRET_ACCESS_KEY", ENVIRONMENT_KEY.secret_access_key)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        with running_stack(manifests, tmp_path_factory.mktemp("chain")) as running:
            yield running


def test_a_policy_naming_no_key_signs_with_the_data_planes_own(stack: LocalStack) -> None:
    wait_until(lambda: answered_by(httpx.post(stack.url(10091), json=CHAT, timeout=5)) == "bedrock-host")
    received = stack.backends["bedrock-host"].received[-1]
    assert received.path == "/openai/v1/chat/completions"
    verify_sigv4(received, key=ENVIRONMENT_KEY, region="ap-south-2", service="bedrock")
    assert ENVIRONMENT_KEY.secret_access_key not in stack.control_plane_log()
    assert stack.envoy is not None
    assert ENVIRONMENT_KEY.secret_access_key not in stack.envoy.admin("/config_dump")
