"""A token endpoint's answer is read no further than a limit: a refusal's first 64 KiB (only 300 characters
of its words are shown), a 200 answer up to 1 MiB, unpacked, and one larger is an error. Whatever answers at
the URL may send megabytes, a small gzip body unpacking to hundreds of them (a 200 was read whole: 300 MB of
memory), or never stop (here: bodies that never end, which were read until the mint's 30 s timeout)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from controlplane.tokens.answers import _MAX_ANSWER_BYTES
from controlplane.tokens.minting import Endpoints, HttpMinter, MintError
from controlplane.tokens.requests import AwsWebIdentity, AzureClientSecret, MintRequest, OidcClient

_CHUNK = b"x" * 65536


async def _endless_refusal(request: web.Request) -> web.StreamResponse:
    return await _endless(request, status=500)


async def _endless_200(request: web.Request) -> web.StreamResponse:
    return await _endless(request, status=200)


async def _endless(request: web.Request, *, status: int) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
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


_Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _mint_error(make: Callable[[str], MintRequest], *, path: str, answer: _Answer) -> str:
    """What minting ``make``'s request says when ``answer`` answers at ``path`` (the URL written ``URL``)."""
    told = _minted_or_error(make, path=path, answer=answer)
    assert told.startswith("error: "), told
    return told.removeprefix("error: ")


def _minted_or_error(make: Callable[[str], MintRequest], *, path: str, answer: _Answer) -> str:
    """``minted``, or ``error: `` and what the ``MintError`` says (the URL written ``URL``), when ``answer``
    answers ``make``'s request at ``path``."""

    async def scenario() -> str:
        app = web.Application()
        app.router.add_post(path, answer)
        app.router.add_post("/oidc/token", _oidc_token)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        minter = HttpMinter(endpoints=Endpoints(azure_authority=f"{url}/entra", aws_sts=f"{url}/aws-sts"))
        try:
            await minter(make(url))
        except MintError as refused:
            return "error: " + str(refused).replace(url, "URL")
        else:
            return "minted"
        finally:
            await minter.close()
            await runner.cleanup()

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("make", "refusing"),
    [(_entra, "/entra/tenant/oauth2/v2.0/token"), (_aws, "/aws-sts")],
    ids=["oauth2-json", "aws-sts-xml"],
)
def test_an_endless_refusal_is_told_by_its_status(make: Callable[[str], MintRequest], refusing: str) -> None:
    assert _mint_error(make, path=refusing, answer=_endless_refusal) == f"URL{refusing} answered HTTP 500"


async def _gzipped_token(request: web.Request) -> web.Response:
    """A token answer that would do, padded to 4 MiB unpacked (a few KiB sent)."""
    answer = {"access_token": "entra-token", "expires_in": 600, "padding": " " * (4 * 1024 * 1024)}
    return web.Response(
        body=gzip.compress(json.dumps(answer).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )


@pytest.mark.parametrize(
    ("make", "answering", "answer"),
    [
        (_entra, "/entra/tenant/oauth2/v2.0/token", _gzipped_token),
        (_entra, "/entra/tenant/oauth2/v2.0/token", _endless_200),
        (_aws, "/aws-sts", _endless_200),
    ],
    ids=["oauth2-gzip", "oauth2-endless", "aws-sts-endless"],
)
def test_a_200_answer_larger_than_the_limit_is_an_error(
    make: Callable[[str], MintRequest], answering: str, answer: _Answer
) -> None:
    told = _mint_error(make, path=answering, answer=answer)
    assert told == f"URL{answering} answered HTTP 200 larger than 1048576 bytes"


_ENTRA_TOKEN = "/entra/tenant/oauth2/v2.0/token"


def _token_answer_of(size: int) -> _Answer:
    """A token answer that would do, padded to ``size`` bytes, sent as is."""

    async def answer(request: web.Request) -> web.Response:
        unpadded = json.dumps({"access_token": "entra-token", "expires_in": 600, "padding": ""}).encode()
        body = unpadded[:-2] + b" " * (size - len(unpadded)) + unpadded[-2:]
        assert len(body) == size
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    return answer


@pytest.mark.parametrize(
    ("size", "told"),
    [
        (_MAX_ANSWER_BYTES, "minted"),
        (
            _MAX_ANSWER_BYTES + 1,
            f"error: URL{_ENTRA_TOKEN} answered HTTP 200 larger than {_MAX_ANSWER_BYTES} bytes",
        ),
    ],
    ids=["at-the-limit", "one-byte-more"],
)
def test_a_200_answer_of_the_limit_is_read_and_one_byte_more_is_not(size: int, told: str) -> None:
    assert _minted_or_error(_entra, path=_ENTRA_TOKEN, answer=_token_answer_of(size)) == told
