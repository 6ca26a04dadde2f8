"""What an ``oidcExchangeToken`` policy sends its OIDC provider, from the manifest to the form on the wire:
``grant_type=client_credentials`` and the scopes the policy lists, whatever its ``grantType`` and ``aud`` say
and whatever the provider's discovery document offers (as Envoy AI Gateway ignores ``grantType`` and ``aud``;
unlike it, no ``scopes_supported`` is added), with both fields noted on the policy as having no effect (but a
``grantType`` of ``client_credentials``, which asks for what is sent anyway)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.gatewayapi import TranslateOptions, build_ir
from controlplane.pipeline import translate
from controlplane.resources.aigateway import BackendSecurityPolicy
from controlplane.sources.file_reading import load_paths
from controlplane.tokens.minting import Endpoints, HttpMinter
from controlplane.tokens.requests import MintRequest
from tests.token_endpoints import OIDC_CLIENT_ID, OIDC_SECRET, TokenEndpoints

POLICY = BackendSecurityPolicy.key_for("default", "federated")
EXCHANGE = "spec.azureCredentials.oidcExchangeToken"
_MANIFEST = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: ai-gateway
  listeners: [{{name: http, protocol: HTTP, port: 8080}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: route, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: azure}}]}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: azure-host, namespace: default}}
spec:
  endpoints: [{{fqdn: {{hostname: my-resource.openai.azure.com, port: 443}}}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: azure, namespace: default}}
spec:
  schema: {{name: AzureOpenAI, version: "2024-10-21"}}
  backendRef: {{name: azure-host, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {{name: federated, namespace: default}}
spec:
  targetRefs: [{{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: azure}}]
  type: AzureCredentials
  azureCredentials:
    clientID: app
    tenantID: tenant-1
    oidcExchangeToken:
      oidc:
        provider: {{issuer: "{issuer}"}}
        clientID: {client_id}
        clientSecret: {{name: idp-client}}
{scopes}\
{extra}\
---
apiVersion: v1
kind: Secret
metadata: {{name: idp-client, namespace: default}}
stringData: {{client-secret: {secret}}}
"""


@pytest.fixture
def endpoints() -> Iterator[TokenEndpoints]:
    with TokenEndpoints(lifetime_seconds=600).running() as running:
        yield running


def _manifest(tmp_path: Path, endpoints: TokenEndpoints, *, scopes: list[str], extra: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        _MANIFEST.format(
            issuer=endpoints.url,
            client_id=OIDC_CLIENT_ID,
            scopes=f"        scopes: [{', '.join(scopes)}]\n" if scopes else "",
            extra=extra,
            secret=OIDC_SECRET,
        )
    )
    return path


def _oidc_form(endpoints: TokenEndpoints, request: MintRequest) -> dict[str, object]:
    """The form the OIDC provider's token endpoint received for ``request``'s mint."""

    async def once() -> None:
        minter = HttpMinter(endpoints=Endpoints.from_environment(endpoints.environment()))
        try:
            await minter(request)
        finally:
            await minter.close()

    asyncio.run(once())
    (form,) = [form for where, form in endpoints.received if where == "oidc"]
    return form


@pytest.mark.parametrize(
    ("scopes", "expected_scope"),
    [(["api"], {"scope": "api"}), ([], {})],
    ids=["listed-scopes-only", "no-scope-listed-none-asked"],
)
def test_the_oidc_provider_is_sent_client_credentials_and_the_listed_scopes_only(
    tmp_path: Path, endpoints: TokenEndpoints, scopes: list[str], expected_scope: dict[str, str]
) -> None:
    extra = (
        '      grantType: "urn:ietf:params:oauth:grant-type:jwt-bearer"\n'
        "      aud: api://AzureADTokenExchange\n"
    )
    manifest = _manifest(tmp_path, endpoints, scopes=scopes, extra=extra)
    pending = build_ir(
        load_paths([manifest]).resource_set().with_tokens({}),
        options=TranslateOptions(listen_address="127.0.0.1"),
    )
    form = _oidc_form(endpoints, pending.mint_requests[POLICY])
    # The fake's discovery document lists openid, profile, email, offline_access and api.
    assert form == {"grant_type": "client_credentials", **expected_scope, "client_id": OIDC_CLIENT_ID}
    assert [where for where, _ in endpoints.received] == ["oidc discovery", "oidc", "entra tenant-1"]


@pytest.mark.parametrize(
    ("grant_type", "grant_type_noted"),
    [("client_credentials", False), ("urn:ietf:params:oauth:grant-type:jwt-bearer", True)],
    ids=["the-grant-type-sent-is-quiet", "another-grant-type-is-noted"],
)
def test_aud_and_a_grant_type_other_than_the_one_sent_are_noted_as_having_no_effect(
    tmp_path: Path, endpoints: TokenEndpoints, grant_type: str, grant_type_noted: bool
) -> None:
    extra = f'      grantType: "{grant_type}"\n      aud: api://AzureADTokenExchange\n'
    loaded = load_paths([_manifest(tmp_path, endpoints, scopes=["api"], extra=extra)])
    warned = {problem.field_path: problem.message for problem in loaded.problems}
    assert warned[f"{EXCHANGE}.aud"].startswith(
        "ignored, as Envoy AI Gateway ignores it: the OIDC token is asked for with no audience"
    )
    if grant_type_noted:
        assert warned[f"{EXCHANGE}.grantType"].startswith(
            "ignored, as Envoy AI Gateway ignores it: the OIDC token is always asked for with grant_type"
            " client_credentials"
        )
    else:
        assert f"{EXCHANGE}.grantType" not in warned
    result = translate(
        loaded.resource_set().with_tokens({}), options=TranslateOptions(listen_address="127.0.0.1")
    )
    (warnings,) = [c for c in result.statuses[POLICY].conditions if c.type == "Warnings"]
    assert warnings.reason == "UnimplementedFields"
    assert (f"{EXCHANGE}.grantType" in warnings.message) is grant_type_noted
    assert f"{EXCHANGE}.aud" in warnings.message
    assert all(OIDC_SECRET not in c.message for c in result.statuses[POLICY].conditions)
    # Unset, they say nothing.
    quiet = load_paths([_manifest(tmp_path, endpoints, scopes=["api"], extra="")])
    assert not [problem for problem in quiet.problems if problem.field_path.startswith(EXCHANGE)]
