"""BackendTLSPolicy end to end: Envoy speaks TLS to a hosted-provider stand-in, with SNI and validation.

The CA is generated in the test and handed to the gateway as a ConfigMap; a Backend whose policy trusts
only the system CAs must fail the handshake, which proves the certificate is really verified.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from controlplane.devtools.certs import generate_dev_certs
from controlplane.devtools.fake_backend import FakeBackend
from controlplane.devtools.stack import LocalStack
from controlplane.netutil import ReservedPort
from tests.e2e import CHAT, answered_by
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

_MANIFESTS = """
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: hosted, namespace: default}}
spec:
  rules:
  - matches: [{{headers: [{{name: x-ai-eg-model, value: trusted}}]}}]
    backendRefs: [{{name: trusted}}]
  - matches: [{{headers: [{{name: x-ai-eg-model, value: untrusted}}]}}]
    backendRefs: [{{name: untrusted}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: trusted, namespace: default}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: provider, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: untrusted, namespace: default}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: provider-system-ca, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: provider, namespace: default}}
spec:
  endpoints: [{{fqdn: {{hostname: localhost, port: {port}}}}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: provider-system-ca, namespace: default}}
spec:
  endpoints: [{{fqdn: {{hostname: localhost, port: {port}}}}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata: {{name: provider-tls, namespace: default}}
spec:
  targetRefs: [{{group: gateway.envoyproxy.io, kind: Backend, name: provider}}]
  validation:
    caCertificateRefs: [{{group: "", kind: ConfigMap, name: test-ca}}]
    hostname: localhost
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: provider-system-ca, namespace: default}}
spec:
  targetRefs: [{{group: gateway.envoyproxy.io, kind: Backend, name: provider-system-ca}}]
  validation:
    wellKnownCACertificates: System
    hostname: localhost
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: test-ca, namespace: default}}
data:
  ca.crt: |
{ca}
"""


TlsStack = tuple[LocalStack, FakeBackend, int]


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsStack]:
    workdir = tmp_path_factory.mktemp("tls")
    certs = generate_dev_certs(workdir / "certs", dns_names=("localhost",))
    ca_pem = certs.ca_file.read_text(encoding="ascii")
    with FakeBackend(name="hosted", model="gpt-4o", tls=certs) as backend:
        manifests = workdir / "manifests"
        manifests.mkdir()
        (manifests / "tls.yaml").write_text(
            _MANIFESTS.format(port=backend.port, ca="\n".join("    " + line for line in ca_pem.splitlines())),
            encoding="utf-8",
        )
        with (
            ReservedPort() as gateway,
            LocalStack(
                manifests,
                workdir=workdir / "stack",
                serve_args=("--listener-port", str(gateway.port)),
                fake_backends=False,
            ) as stack,
        ):
            yield stack, backend, gateway.port


def test_upstream_tls_with_sni_and_a_ca_from_a_configmap(
    tls_stack: tuple[LocalStack, FakeBackend, int],
) -> None:
    _, backend, port = tls_stack
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    with httpx.Client(timeout=10) as http:
        reply = wait_until(lambda: _answered(http, url, "trusted"))
    assert answered_by(reply) == "hosted"
    received = backend.received[-1]
    assert received.tls
    assert received.sni == "localhost"
    assert received.headers["host"] == "localhost", "hosted providers route by Host: it must be the backend's"


def test_a_certificate_not_signed_by_a_trusted_ca_is_refused(
    tls_stack: tuple[LocalStack, FakeBackend, int],
) -> None:
    _, backend, port = tls_stack
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    with httpx.Client(timeout=10) as http:
        wait_until(lambda: _answered(http, url, "trusted"))
        backend.clear()
        reply = http.post(url, json={**CHAT, "model": "untrusted"})
    assert reply.status_code == 503
    assert reply.json()["error"]["type"] == "server_error"
    assert not backend.received, "no request may be sent over an unverified connection"


def _answered(http: httpx.Client, url: str, model: str) -> httpx.Response:
    reply = http.post(url, json={**CHAT, "model": model})
    assert reply.status_code == 200, reply.text
    return reply
