"""A token endpoint's refusal is read no further than its first 64 KiB: only 300 characters of its words are
shown, and whatever answers at the URL may send megabytes, or never stop (here: a body that never ends,
which was read until the mint's 30 s timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web

from controlplane.tokens.minting import Endpoints, HttpMinter, MintError
from controlplane.tokens.requests import AwsWebIdentity, AzureClientSecret, MintRequest, OidcClient

_CHUNK = b"x" * 65536


async def _endless_refusal(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=500, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        while True:
            await response.write(_CHUNK)
    except (ConnectionError, RuntimeError):  # the mint stopped reading and closed the connection
        return response


async def _oidc_token(request: web.Request) -> web.Response:
    return web.json_response({"access_token": "oidc-token", "expires_in": 600})


def _entra(url: str) -> MintRequest:
    return AzureClientSecret(tenant_id="tenant", client_id="app", client_secret="client-secret")


def _aws(url: str) -> MintRequest:
    oidc = OidcClient(
        issuer=url, token_endpoint=f"{url}/oidc/token", client_id="gw", client_secret="oidc-secret"
    )
    return AwsWebIdentity(role_arn="arn:aws:iam::1:role/r", session_name="s", region="us-east-1", oidc=oidc)


@pytest.mark.parametrize(
    ("make", "refusing"),
    [(_entra, "/entra/tenant/oauth2/v2.0/token"), (_aws, "/aws-sts")],
    ids=["oauth2-json", "aws-sts-xml"],
)
def test_an_endless_refusal_is_told_by_its_status(make: Callable[[str], MintRequest], refusing: str) -> None:
    async def scenario() -> str:
        app = web.Application()
        app.router.add_post(refusing, _endless_refusal)
        app.router.add_post("/oidc/token", _oidc_token)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        minter = HttpMinter(endpoints=Endpoints(azure_authority=f"{url}/entra", aws_sts=f"{url}/aws-sts"))
        try:
            with pytest.raises(MintError) as refused:
                await minter(make(url))
            return str(refused.value).replace(url, "URL")
        finally:
            await minter.close()
            await runner.cleanup()

    assert asyncio.run(scenario()) == f"URL{refusing} answered HTTP 500"
