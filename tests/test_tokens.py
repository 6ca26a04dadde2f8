"""Minting access tokens: real HTTP to a fake identity provider on loopback, the broker's refresh and failure
rules on a fake clock, and minted tokens as an input of translation (a refreshed token is a changed input)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.gatewayapi import TranslateOptions, build_ir
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.pipeline import Translator, translate
from controlplane.resources.aigateway import BackendSecurityPolicy
from controlplane.resources.problems import ObjectKey
from controlplane.resources.references import referenced_secrets_and_config_maps
from controlplane.sources.file_reading import load_paths
from controlplane.tokens.broker import TokenBroker
from controlplane.tokens.minting import Endpoints, HttpMinter, Minted, MintError
from controlplane.tokens.requests import (
    AzureClientSecret,
    AzureFederated,
    GcpServiceAccountKey,
    GcpWorkloadIdentity,
    MintRequest,
    OidcClient,
)
from controlplane.tokens.state import MintedToken, MintFailure, TokenState
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import SECRET, TYPE_URLS
from tests.token_endpoints import ENTRA_SECRET, OIDC_CLIENT_ID, OIDC_SECRET, TokenEndpoints

MINTED_CASE = Path(__file__).parent / "testdata" / "translate" / "minted-credentials.in.yaml"
AZURE_POLICY = BackendSecurityPolicy.key_for("default", "azure-secret")


@pytest.fixture
def endpoints() -> Iterator[TokenEndpoints]:
    with TokenEndpoints(lifetime_seconds=600).running() as running:
        yield running


def _minter(endpoints: TokenEndpoints) -> HttpMinter:
    return HttpMinter(endpoints=Endpoints.from_environment(endpoints.environment()), clock=lambda: 1000.0)


def _mint(endpoints: TokenEndpoints, request: MintRequest) -> Minted:
    async def once() -> Minted:
        minter = _minter(endpoints)
        try:
            return await minter(request)
        finally:
            await minter.close()

    return asyncio.run(once())


def _oidc(*, secret: str = OIDC_SECRET, discovered: bool = True, url: str) -> OidcClient:
    return OidcClient(
        issuer=url,
        token_endpoint=None if discovered else f"{url}/oidc/token",
        client_id=OIDC_CLIENT_ID,
        client_secret=secret,
        scopes=("openid", "api"),
    )


def test_azure_client_secret_grant(endpoints: TokenEndpoints) -> None:
    minted = _mint(
        endpoints, AzureClientSecret(tenant_id="tenant-1", client_id="app", client_secret=ENTRA_SECRET)
    )
    assert (minted.value, minted.expires_at) == ("entra-minted-1", 1600.0)
    where, form = endpoints.received[-1]
    assert where == "entra tenant-1"
    assert form == {
        "grant_type": "client_credentials",
        "scope": "https://cognitiveservices.azure.com/.default",
        "client_id": "app",
        "client_secret": ENTRA_SECRET,
    }


def test_azure_federated_grant_sends_the_oidc_token_as_client_assertion(endpoints: TokenEndpoints) -> None:
    request = AzureFederated(tenant_id="t", client_id="app", oidc=_oidc(url=endpoints.url))
    assert _mint(endpoints, request).value == "entra-minted-1"
    steps = [where for where, _ in endpoints.received]
    assert steps == ["oidc discovery", "oidc", "entra t"]
    assert endpoints.received[1][1] == {
        "grant_type": "client_credentials",
        "scope": "openid api",
        "client_id": "gateway",
    }
    assert endpoints.received[2][1]["client_assertion"] == "oidc-minted-1"


def test_gcp_workload_identity_exchanges_then_impersonates(endpoints: TokenEndpoints) -> None:
    audience = "//iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/p/providers/i"
    request = GcpWorkloadIdentity(
        audience=audience,
        service_account="caller@proj.iam.gserviceaccount.com",
        oidc=_oidc(url=endpoints.url, discovered=False),
    )
    minted = _mint(endpoints, request)
    assert minted.value == "gcp-minted-1"
    assert [where for where, _ in endpoints.received] == [
        "oidc",
        "sts",
        "iam caller@proj.iam.gserviceaccount.com",
    ]
    sts = endpoints.received[1][1]
    assert sts["subjectToken"] == "oidc-minted-1"
    assert sts["audience"] == audience
    assert sts["scope"] == "https://www.googleapis.com/auth/iam"
    assert sts["subjectTokenType"] == "urn:ietf:params:oauth:token-type:jwt"
    iam = endpoints.received[2][1]
    assert iam == {"scope": ["https://www.googleapis.com/auth/cloud-platform"], "bearer": "sts-minted-1"}
    # Without impersonation the federated token itself is the credential, for the cloud-platform scope.
    federated = GcpWorkloadIdentity(audience=audience, service_account=None, oidc=request.oidc)
    assert _mint(endpoints, federated).value == "sts-minted-2"
    assert endpoints.received[-1][1]["scope"] == "https://www.googleapis.com/auth/cloud-platform"


def test_gcp_service_account_key_signs_a_jwt_for_a_token(endpoints: TokenEndpoints) -> None:
    document = json.loads(endpoints.service_account_key())
    key = GcpServiceAccountKey(
        client_email=document["client_email"],
        private_key_id="key-1",
        private_key=document["private_key"],
        token_uri=document["token_uri"],
    )
    assert _mint(endpoints, key).value == "gcpkey-minted-1"  # the fake checked the signature and claims
    with pytest.raises(MintError) as refused:
        _mint(endpoints, dataclasses.replace(key, private_key="-----BEGIN PRIVATE KEY-----\nnot a key"))
    assert str(refused.value) == "the service account key's private_key is no RSA private key in PEM"


def test_failures_name_the_endpoint_and_the_providers_reason_but_no_secret(endpoints: TokenEndpoints) -> None:
    wrong = "wrong-secret-7f3e"
    with pytest.raises(MintError) as refused:
        _mint(endpoints, AzureClientSecret(tenant_id="t", client_id="app", client_secret=wrong))
    message = str(refused.value)
    assert message == (
        f"{endpoints.url}/t/oauth2/v2.0/token answered HTTP 401 "
        "(invalid_client: AADSTS7000215: Invalid client secret provided.)"
    )
    with pytest.raises(MintError) as oidc_refused:
        _mint(
            endpoints,
            AzureFederated(tenant_id="t", client_id="a", oidc=_oidc(url=endpoints.url, secret=wrong)),
        )
    assert "answered HTTP 401 (invalid_client" in str(oidc_refused.value)
    with pytest.raises(MintError) as unreachable:
        _mint(endpoints, AzureFederated(tenant_id="t", client_id="a", oidc=_oidc(url="http://127.0.0.1:9")))
    assert "ClientConnectorError" in str(unreachable.value)
    assert wrong not in str(oidc_refused.value) + str(unreachable.value)


class _Clock:
    """Time that moves only when the broker sleeps; each sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.woken = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.woken.set()
        await asyncio.sleep(0)
        self.now += seconds


class _ScriptedMinter:
    """Answers each mint with the next scripted outcome, then parks (the test has seen enough)."""

    def __init__(self, clock: _Clock, outcomes: list[int | str]) -> None:
        self._clock = clock
        self._outcomes = outcomes
        self.calls = 0
        self.done = asyncio.Event()

    def then(self, outcomes: list[int | str]) -> None:
        """More outcomes, for the mints that follow."""
        self._outcomes += outcomes
        self.done = asyncio.Event()

    async def __call__(self, request: MintRequest, /) -> Minted:
        if not self._outcomes:
            self.done.set()
            await asyncio.Event().wait()
        outcome = self._outcomes.pop(0)
        self.calls += 1
        if isinstance(outcome, str):
            raise MintError(outcome)
        return Minted(value=f"token-{self.calls}", expires_at=self._clock() + outcome)

    async def close(self) -> None:
        return None


def _run_broker(outcomes: list[int | str]) -> tuple[list[TokenState | None], _Clock]:
    """Each state the policy's token had, in order, as the broker went through ``outcomes``."""
    clock = _Clock()
    seen: list[TokenState | None] = []

    async def scenario() -> None:
        broker: TokenBroker

        def changed() -> None:
            seen.append(broker.tokens().get(AZURE_POLICY))

        minter = _ScriptedMinter(clock, list(outcomes))
        broker = TokenBroker(minter=minter, on_change=changed, clock=clock, sleep=clock.sleep)
        broker.want({AZURE_POLICY: AzureClientSecret(tenant_id="t", client_id="c", client_secret="s")})
        await minter.done.wait()
        broker.want({})
        await broker.close()

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    return seen, clock


def test_broker_refreshes_at_80_percent_and_keeps_the_last_good_token_until_it_expires() -> None:
    seen, clock = _run_broker([100, "a", "b", "c", "d", "e", "f"])
    # Minted at 1000 for 100 s; refreshing at 1080 fails: the token is kept, with the reason, and retried
    # after 1, 2, 4, 8 s, then no later than its expiry at 1100, when the policy has no token left.
    assert seen[:6] == [
        MintedToken("token-1", 1100.0),
        *(MintedToken("token-1", 1100.0, refresh_problem=reason) for reason in "abcde"),
    ]
    assert clock.sleeps[:6] == [80.0, 1.0, 2.0, 4.0, 8.0, 5.0]
    assert seen[6] == MintFailure("f")
    assert seen[7:] == [None]  # the policy went away: its token is forgotten


def test_broker_recovers_after_failures() -> None:
    seen, clock = _run_broker(["down", "down", 50])
    assert seen == [MintFailure("down"), MintedToken("token-3", 1053.0), None]
    assert clock.sleeps[:3] == [1.0, 2.0, 40.0]


def test_a_rotated_secret_is_minted_anew_while_the_current_token_keeps_serving() -> None:
    clock = _Clock()
    seen: list[TokenState | None] = []

    async def scenario() -> None:
        broker: TokenBroker
        minter = _ScriptedMinter(clock, [100])
        broker = TokenBroker(
            minter=minter,
            on_change=lambda: seen.append(broker.tokens().get(AZURE_POLICY)),
            clock=clock,
            sleep=clock.sleep,
        )
        old = AzureClientSecret(tenant_id="t", client_id="c", client_secret="old")
        broker.want({AZURE_POLICY: old})
        await minter.done.wait()
        minter.then(["AADSTS7000215: Invalid client secret provided."])  # the new secret is refused
        broker.want({AZURE_POLICY: dataclasses.replace(old, client_secret="new")})
        await minter.done.wait()
        await broker.close()

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    problem = "AADSTS7000215: Invalid client secret provided."
    assert seen == [MintedToken("token-1", 1100.0), MintedToken("token-1", 1100.0, refresh_problem=problem)]


def _secret_value(snapshot: Snapshot, name: str) -> str | None:
    found = snapshot.get(SECRET).get(name)
    if found is None:
        return None
    secret: Any = found.message
    return str(secret.generic_secret.secret.inline_string)


def test_minted_tokens_are_an_input_the_memo_sees_change() -> None:
    resources = load_paths([MINTED_CASE]).resource_set()
    options = TranslateOptions(listen_address="127.0.0.1")
    translator = Translator(options=options)
    names = ("azure-secret", "azure-federated", "gcp-federated", "gcp-key-file", "gcp-adc")
    keys = [BackendSecurityPolicy.key_for("default", name) for name in names]
    secret = "credential/default/azure-secret"

    pending = translator.snapshot(resources.with_tokens({}))
    assert set(pending.mint_requests) == set(keys)
    assert pending.mint_requests[AZURE_POLICY] == AzureClientSecret(
        tenant_id="00000000-0000-0000-0000-0000000007e7",
        client_id="00000000-0000-0000-0000-00000000c1e7",
        client_secret="golden-azure-client-secret",
    )
    assert pending.statuses[AZURE_POLICY].conditions[0].reason == "TokenPending"
    assert _secret_value(pending.snapshot, secret) is None

    first: dict[ObjectKey, TokenState] = {key: MintedToken("first", 2000.0) for key in keys}
    steps: list[tuple[dict[ObjectKey, TokenState], str | None, str]] = [
        (first, "Bearer first", "Accepted"),
        ({**first, AZURE_POLICY: MintedToken("second", 3000.0)}, "Bearer second", "Accepted"),
        (
            {**first, AZURE_POLICY: MintedToken("second", 3000.0, refresh_problem="HTTP 503")},
            "Bearer second",
            "TokenRefreshFailed",
        ),
        ({**first, AZURE_POLICY: MintFailure("HTTP 401")}, None, "TokenMintFailed"),
    ]
    memo = TranslationMemo()
    build_ir(resources.with_tokens({}), options=options, memo=memo)
    everything = memo.computed
    previous: Snapshot | None = None
    for tokens, expected_value, reason in steps:
        incremental = translator.snapshot(resources.with_tokens(tokens))
        fresh = translate(resources.with_tokens(tokens), options=options)
        build_ir(resources.with_tokens(tokens), options=options, memo=memo)
        # The changed policy, the backend using it and the route using that; the rest is replayed.
        assert 0 < memo.computed < everything
        assert _secret_value(incremental.snapshot, secret) == expected_value
        assert incremental.statuses == fresh.statuses
        for type_url in TYPE_URLS:
            assert incremental.snapshot.get(type_url).keys() == fresh.snapshot().get(type_url).keys()
            for name, resource in incremental.snapshot.get(type_url).items():
                assert resource.message == fresh.snapshot().get(type_url)[name].message
        reasons = {condition.reason for condition in incremental.statuses[AZURE_POLICY].conditions}
        assert reason in reasons
        if previous is not None and expected_value is not None:
            # A refreshed token is one SDS push: no listener, route or cluster changes version.
            changed = {
                (type_url, name)
                for type_url in TYPE_URLS
                for name, resource in incremental.snapshot.get(type_url).items()
                if previous.get(type_url).get(name) is None
                or previous.get(type_url)[name].version != resource.version
            }
            assert changed <= {(SECRET, secret)}
        previous = incremental.snapshot


def test_every_secret_a_minting_policy_names_is_watched_in_a_cluster() -> None:
    """The Kubernetes source watches only referenced Secrets: the OIDC client's, inside the loose upstream
    settings, is one of them."""
    resources = load_paths([MINTED_CASE]).resource_set()
    referenced = referenced_secrets_and_config_maps(loaded.object for loaded in resources)
    names = {key.name for key in referenced}
    assert {"azure-client", "idp-client", "gcp-key", "gcp-bad-key", "nowhere"} <= names
