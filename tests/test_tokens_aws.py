"""AWS ``oidcExchangeToken``: an OIDC token from the provider, traded at STS (``AssumeRoleWithWebIdentity``)
for the role's temporary keys, over real HTTP to a fake identity provider and STS on loopback; where STS is;
and the minted keys as an input of translation (the hop's signing keys, or a condition saying why none).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from controlplane import ir
from controlplane.gatewayapi import TranslateOptions, build_ir
from controlplane.pipeline import translate
from controlplane.resources.aigateway import BackendSecurityPolicy
from controlplane.resources.problems import ObjectKey
from controlplane.resources.references import referenced_secrets_and_config_maps
from controlplane.sources.file_reading import load_paths
from controlplane.tokens.minting import Endpoints, HttpMinter, Minted, MintError
from controlplane.tokens.requests import AwsWebIdentity, OidcClient
from controlplane.tokens.state import MintedToken, MintFailure, TokenState
from controlplane.xds.resource import LISTENER
from tests.token_endpoints import AWS_ROLE_ARN, OIDC_CLIENT_ID, OIDC_SECRET, TokenEndpoints

AWS_CASE = Path(__file__).parent / "testdata" / "translate" / "aws-credentials.in.yaml"
POLICY = BackendSecurityPolicy.key_for("default", "oidc")
HOP = "route/default/aws/rule/1/backend/0"
"""The hop of the backend the OIDC-exchange policy protects."""


@pytest.fixture
def endpoints() -> Iterator[TokenEndpoints]:
    with TokenEndpoints(lifetime_seconds=900).running() as running:
        yield running


def _request(
    endpoints: TokenEndpoints, *, secret: str = OIDC_SECRET, role: str = AWS_ROLE_ARN
) -> AwsWebIdentity:
    oidc = OidcClient(
        issuer=endpoints.url, token_endpoint=None, client_id=OIDC_CLIENT_ID, client_secret=secret
    )
    return AwsWebIdentity(role_arn=role, session_name="ai-gateway-bedrock", region="us-west-2", oidc=oidc)


def _mint(endpoints: TokenEndpoints, request: AwsWebIdentity) -> Minted:
    async def once() -> Minted:
        minter = HttpMinter(endpoints=Endpoints.from_environment(endpoints.environment()))
        try:
            return await minter(request)
        finally:
            await minter.close()

    return asyncio.run(once())


def test_the_oidc_token_is_traded_at_sts_for_the_roles_temporary_keys(endpoints: TokenEndpoints) -> None:
    minted = _mint(endpoints, _request(endpoints))
    (issued,) = endpoints.aws_keys
    assert minted.value == ir.AwsKeys(
        access_key_id=issued.access_key_id,
        secret_access_key=issued.secret_access_key,
        session_token=str(issued.session_token),
    )
    # STS's Expiration, not a lifetime counted here: what AWS says is when the keys stop working.
    assert time.time() + 800 < minted.expires_at <= time.time() + 900
    assert [where for where, _ in endpoints.received] == ["oidc discovery", "oidc", "aws sts"]
    assert endpoints.received[-1][1] == {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": AWS_ROLE_ARN,
        "RoleSessionName": "ai-gateway-bedrock",
        "WebIdentityToken": "oidc-minted-1",
    }


def test_sts_refusals_name_stss_code_and_message_but_no_secret(endpoints: TokenEndpoints) -> None:
    sts = f"{endpoints.url}/aws-sts/"
    with pytest.raises(MintError) as refused:
        _mint(endpoints, _request(endpoints, role="arn:aws:iam::123456789012:role/other"))
    assert str(refused.value) == (
        f"{sts} answered HTTP 403 (AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity)"
    )
    wrong = "wrong-oidc-secret-91d0"
    with pytest.raises(MintError) as oidc_refused:
        _mint(endpoints, _request(endpoints, secret=wrong))
    assert "/oidc/token answered HTTP 401 (invalid_client" in str(oidc_refused.value)
    assert wrong not in str(oidc_refused.value)
    endpoints.failing = True
    with pytest.raises(MintError) as down:
        _mint(endpoints, _request(endpoints))
    assert "answered HTTP 503 (temporarily_unavailable" in str(down.value)
    assert [key for key, _ in endpoints.received].count("aws sts") == 1


def test_sts_is_the_policy_regions_endpoint_unless_the_aws_sdk_variables_name_one() -> None:
    default = Endpoints.from_environment({})
    assert default.aws_sts_url("eu-central-1") == "https://sts.eu-central-1.amazonaws.com"
    assert default.aws_sts_url("cn-north-1") == "https://sts.cn-north-1.amazonaws.com.cn"
    everything = Endpoints.from_environment({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"})
    assert everything.aws_sts_url("us-east-1") == "http://127.0.0.1:4566"
    both = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_STS": "https://sts.internal/"}
    assert Endpoints.from_environment(both).aws_sts_url("us-east-1") == "https://sts.internal/"


def _inline_credential(tokens: dict[ObjectKey, TokenState]) -> tuple[Any, list[str]]:
    """The hop's inline signing credential (None without one) and the policy's condition reasons."""
    resources = load_paths([AWS_CASE]).resource_set().with_tokens(tokens)
    result = translate(resources, options=TranslateOptions(listen_address="127.0.0.1"))
    reasons = [condition.reason for condition in result.statuses[POLICY].conditions]
    listener = result.snapshot().get(LISTENER).get(HOP)
    if listener is None:
        return None, reasons
    text = json_format.MessageToJson(listener.message)
    return (text if "inlineCredential" in text else None), reasons


def test_minted_keys_sign_the_hop_and_a_policy_without_keys_says_why() -> None:
    keys = ir.AwsKeys("ASIAUNIT", "unit-secret-key", "unit-session-token")
    resources = load_paths([AWS_CASE]).resource_set()
    pending = build_ir(resources.with_tokens({}), options=TranslateOptions(listen_address="127.0.0.1"))
    assert pending.mint_requests[POLICY] == AwsWebIdentity(
        role_arn="arn:aws:iam::123456789012:role/bedrock",
        session_name="ai-gateway-oidc",
        region="us-west-2",
        oidc=OidcClient(
            issuer="https://issuer.example.com",
            token_endpoint=None,
            client_id="gateway",
            client_secret="golden-oidc-client-secret",
        ),
    )
    signed, reasons = _inline_credential({POLICY: MintedToken(keys, expires_at=time.time() + 600)})
    assert signed is not None
    for part in ("ASIAUNIT", "unit-secret-key", "unit-session-token"):
        assert part in signed
    assert "Accepted" in reasons
    kept, reasons = _inline_credential(
        {POLICY: MintedToken(keys, expires_at=time.time() + 60, refresh_problem="HTTP 503")}
    )
    assert kept == signed
    assert "TokenRefreshFailed" in reasons
    unsigned, reasons = _inline_credential({})
    assert (unsigned, reasons[0]) == (None, "TokenPending")
    unsigned, reasons = _inline_credential({POLICY: MintFailure("STS answered HTTP 403 (AccessDenied)")})
    assert (unsigned, reasons[0]) == (None, "TokenMintFailed")


def test_the_oidc_client_secret_of_an_aws_policy_is_watched_in_a_cluster() -> None:
    resources = load_paths([AWS_CASE]).resource_set()
    referenced = referenced_secrets_and_config_maps(resources.security_policies())
    assert "oidc-client" in {key.name for key in referenced}
