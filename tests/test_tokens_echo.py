"""Token endpoints that answer an error repeating what they were sent: the mint failure (which becomes a
policy's status condition and a log line) shows none of it, whether the repeated value is a Secret's (a
client secret, a private key) or a token of an earlier step (an OIDC token, Google's federated token, a
signed assertion), and whether or not the provider's words are cut through it."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus, unquote_plus
from xml.sax.saxutils import escape

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from controlplane.tokens.minting import Endpoints, HttpMinter, MintError
from controlplane.tokens.requests import (
    AwsWebIdentity,
    AzureClientSecret,
    AzureFederated,
    GcpServiceAccountKey,
    GcpWorkloadIdentity,
    MintRequest,
    OidcClient,
)

CLIENT_SECRET = "sk-echo-azure-client-secret-4b7e19"
OIDC_SECRET = "sk-echo-oidc-client-secret-a2c5d8"
IDENTITY = "sk-echo-oidc-identity-token-71f0c3"
FEDERATED = "sk-echo-google-federated-token-9e2d64"
CUT = 300
"""Where the message shortens the provider's words (``answers._MAX_DETAIL``)."""
WINDOW = 8
"""No run this long of a repeated value may show in a failure."""

Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass
class EchoingProvider:
    """Refuses at the endpoints named in ``refusing``, repeating every secret it was sent; the others
    answer with a token. ``straddle``: the first repeated value starts just before the cut."""

    refusing: frozenset[str]
    straddle: bool
    raw: bool = False
    """Repeats the request's body and ``Authorization`` header as they came (form-encoded, base64)."""
    encode: Callable[[str], str] | None = None
    """Repeats each secret as this JSON encoder writes it (the refused request quoted as JSON text)."""
    url: str = ""
    echoed: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oidc/token", self._oauth("oidc", IDENTITY))
        app.router.add_post("/entra/{tenant}/oauth2/v2.0/token", self._oauth("entra", "entra-token"))
        app.router.add_post("/google/token", self._oauth("google", "google-token"))
        app.router.add_post("/gcp-sts", self._oauth("gcp sts", FEDERATED))
        app.router.add_post("/iam/{tail:.*}", self._iam)
        app.router.add_post("/aws-sts", self._aws_sts)
        return app

    async def _sent(self, request: web.Request) -> list[str]:
        """What the answer repeats (each value also kept in ``echoed``)."""
        if self.raw:
            values = [await request.text(), request.headers.get("Authorization", "")]
        else:
            values = await _secrets_in(request)
        found = [value for value in values if value]
        self.echoed += found
        return found if self.encode is None else [self.encode(value) for value in found]

    def _words(self, code: str, sent: list[str]) -> str:
        """The description repeating ``sent``, placed to cross the cut when ``straddle``."""
        pad = CUT - len(code) - len(": ") - WINDOW if self.straddle else 0
        return "x" * pad + " ".join(sent)

    def _oauth(self, name: str, token: str) -> Handler:
        async def answer(request: web.Request) -> web.Response:
            sent = await self._sent(request)
            if name not in self.refusing:
                return web.json_response({"access_token": token, "expires_in": 600})
            words = self._words("invalid_grant", sent)
            return web.json_response({"error": "invalid_grant", "error_description": words}, status=400)

        return answer

    async def _iam(self, request: web.Request) -> web.Response:
        sent = await self._sent(request)
        error = {"status": "PERMISSION_DENIED", "message": self._words("PERMISSION_DENIED", sent)}
        return web.json_response({"error": error}, status=403)

    async def _aws_sts(self, request: web.Request) -> web.Response:
        words = escape(self._words("InvalidIdentityToken", await self._sent(request)))
        answer = (
            "<ErrorResponse><Error><Code>InvalidIdentityToken</Code>"
            f"<Message>{words}</Message></Error></ErrorResponse>"
        )
        return web.Response(status=400, text=answer, content_type="text/xml")


async def _secrets_in(request: web.Request) -> list[str]:
    """The secrets in a request: form and JSON values that carry one, and the Authorization header's."""
    values: list[str] = []
    if request.content_type == "application/json":
        values.append(str((await request.json()).get("subjectToken", "")))
    else:
        form = await request.post()
        names = ("client_secret", "client_assertion", "assertion", "WebIdentityToken", "refresh_token")
        values += [str(form[name]) for name in names if name in form]
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme == "Basic":
        values.append(unquote_plus(base64.b64decode(credential).decode().partition(":")[2]))
    elif scheme == "Bearer":
        values.append(credential)
    return values


def _oidc(url: str, secret: str = OIDC_SECRET) -> OidcClient:
    return OidcClient(issuer=url, token_endpoint=f"{url}/oidc/token", client_id="gw", client_secret=secret)


def _private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _azure_secret(url: str) -> MintRequest:
    return AzureClientSecret(tenant_id="t", client_id="app", client_secret=CLIENT_SECRET)


def _azure_federated(url: str) -> MintRequest:
    return AzureFederated(tenant_id="t", client_id="app", oidc=_oidc(url))


def _gcp_federation(url: str) -> MintRequest:
    audience = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q"
    return GcpWorkloadIdentity(
        audience=audience, service_account="sa@p.iam.gserviceaccount.com", oidc=_oidc(url)
    )


def _gcp_key(url: str) -> MintRequest:
    return GcpServiceAccountKey(
        client_email="sa@p.iam.gserviceaccount.com",
        private_key_id="key-1",
        private_key=_private_key(),
        token_uri=f"{url}/google/token",
    )


def _aws(url: str) -> MintRequest:
    return AwsWebIdentity(
        role_arn="arn:aws:iam::1:role/r", session_name="s", region="us-east-1", oidc=_oidc(url)
    )


CASES = {
    "azure client secret": (_azure_secret, "entra", [CLIENT_SECRET]),
    "oidc client secret": (_azure_federated, "oidc", [OIDC_SECRET]),
    "oidc token at entra": (_azure_federated, "entra", [IDENTITY]),
    "oidc token at google sts": (_gcp_federation, "gcp sts", [IDENTITY]),
    "federated token at iam": (_gcp_federation, "iam", [FEDERATED]),
    "oidc token at aws sts": (_aws, "aws sts", [IDENTITY]),
    "signed assertion": (_gcp_key, "google", []),
}


def _failure(make: Callable[[str], MintRequest], provider: EchoingProvider) -> str:
    async def scenario() -> str:
        runner = web.AppRunner(provider.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        provider.url = url = f"http://127.0.0.1:{port}"
        endpoints = Endpoints(
            azure_authority=f"{url}/entra",
            gcp_sts=f"{url}/gcp-sts",
            gcp_iam_credentials=f"{url}/iam",
            aws_sts=f"{url}/aws-sts",
        )
        minter = HttpMinter(endpoints=endpoints, clock=lambda: 1000.0)
        try:
            with pytest.raises(MintError) as refused:
                await minter(make(url))
            return str(refused.value)
        finally:
            await minter.close()
            await runner.cleanup()

    return asyncio.run(asyncio.wait_for(scenario(), timeout=30))


@pytest.mark.parametrize("straddle", [False, True], ids=["whole", "cut"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_refusal_repeating_a_secret_shows_none_of_it(case: str, straddle: bool) -> None:
    make, refusing, planted = CASES[case]
    provider = EchoingProvider(refusing=frozenset({refusing}), straddle=straddle)
    message = _failure(make, provider)
    assert " answered HTTP 4" in message
    assert ("[redacte" if straddle else "[redacted]") in message  # the cut falls inside the marker
    assert set(planted) <= set(provider.echoed), "the provider was sent what the case plants"
    for value in provider.echoed:
        runs = {value[start : start + WINDOW] for start in range(len(value) - WINDOW + 1)}
        shown = sorted(run for run in runs if run in message)
        assert not shown, f"{case}: part of a secret sent shows in {message!r}"


ENCODED_SECRET = "sk-echo+encoded/secret &=%-e61b"
"""Changed by form encoding, percent encoding and base64 alike."""


@pytest.mark.parametrize("straddle", [False, True], ids=["whole", "cut"])
@pytest.mark.parametrize(
    ("request_with", "refusing"),
    [
        (
            lambda url: AzureClientSecret(tenant_id="t", client_id="app", client_secret=ENCODED_SECRET),
            "entra",
        ),
        (lambda url: AzureFederated(tenant_id="t", client_id="app", oidc=_oidc(url, ENCODED_SECRET)), "oidc"),
    ],
    ids=["form body", "basic header"],
)
def test_a_refusal_repeating_the_request_as_sent_shows_no_form_of_the_secret(
    request_with: Callable[[str], MintRequest], refusing: str, straddle: bool
) -> None:
    provider = EchoingProvider(refusing=frozenset({refusing}), straddle=straddle, raw=True)
    message = _failure(request_with, provider)
    assert " answered HTTP 4" in message
    basic = base64.b64encode(f"gw:{quote_plus(ENCODED_SECRET)}".encode()).decode()
    forms = (ENCODED_SECRET, quote_plus(ENCODED_SECRET), quote(ENCODED_SECRET, safe=""), basic)
    assert any(form in text for text in provider.echoed for form in forms), "the provider repeats a form"
    for form in forms:
        runs = {form[start : start + WINDOW] for start in range(len(form) - WINDOW + 1)}
        shown = sorted(run for run in runs if run in message)
        assert not shown, f"part of {form!r} shows in {message!r}"


JSON_SECRET = 'sk-echo "quoted" back\\slash/<&>-é-😀-\t-c90a'
"""Changed by every JSON encoder, each its own way."""
JSON_ENCODERS: dict[str, Callable[[str], str]] = {
    "ascii": json.dumps,
    "utf-8": lambda value: json.dumps(value, ensure_ascii=False),
    "go": lambda value: re.sub(
        "[<>&]", lambda found: f"\\u{ord(found.group()):04x}", json.dumps(value, ensure_ascii=False)
    ),
    "upper hex, slash escaped": lambda value: re.sub(
        r"\\u([0-9a-f]{4})", lambda found: f"\\u{found.group(1).upper()}", json.dumps(value)
    ).replace("/", "\\/"),
    "json in json": lambda value: json.dumps(json.dumps(value)),
}


@pytest.mark.parametrize("encoder", list(JSON_ENCODERS))
@pytest.mark.parametrize(
    ("request_with", "refusing"),
    [
        (lambda url: AzureClientSecret(tenant_id="t", client_id="app", client_secret=JSON_SECRET), "entra"),
        (lambda url: AzureFederated(tenant_id="t", client_id="app", oidc=_oidc(url, JSON_SECRET)), "oidc"),
    ],
    ids=["form body", "basic header"],
)
def test_a_refusal_quoting_the_secret_in_json_shows_no_escaped_form_of_it(
    request_with: Callable[[str], MintRequest], refusing: str, encoder: str
) -> None:
    encode = JSON_ENCODERS[encoder]
    provider = EchoingProvider(refusing=frozenset({refusing}), straddle=False, encode=encode)
    message = _failure(request_with, provider)
    assert " answered HTTP 4" in message
    assert "[redacted]" in message
    assert JSON_SECRET in provider.echoed, "the provider was sent the secret"
    for form in (JSON_SECRET, encode(JSON_SECRET)):
        runs = {form[start : start + WINDOW] for start in range(len(form) - WINDOW + 1)}
        shown = sorted(run for run in runs if run in message)
        assert not shown, f"part of {form!r} shows in {message!r}"
