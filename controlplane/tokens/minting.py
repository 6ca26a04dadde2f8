"""Speaking to the token endpoints: Entra ID, an OIDC provider, Google STS, IAM Credentials, OAuth2, AWS STS.

Each mint is one to three HTTP exchanges as the providers document them (OAuth2 client credentials, RFC 8693
token exchange, ``generateAccessToken``, a service account's RS256 JWT traded for a token per RFC 7523, AWS
STS ``AssumeRoleWithWebIdentity``: an unsigned form POST answered in XML).
Failures raise ``MintError`` with a message fit for a condition: the endpoint, the HTTP status and the
provider's own error code and description, never a secret (every secret sent, the tokens of earlier steps
too, in the forms it was sent in, is scrubbed from the message by ``tokens.scrub``, before the provider's
words are shortened).

Where the endpoints are: ``AZURE_AUTHORITY_HOST`` (the variable Azure's SDKs read, for sovereign clouds),
``AIXDS_GCP_STS_URL`` and ``AIXDS_GCP_IAM_CREDENTIALS_URL`` (private endpoints); AWS STS is the policy
region's endpoint (``https://sts.<region>.amazonaws.com``, ``.amazonaws.com.cn`` in China), as upstream's AWS
SDK picks it, unless ``AWS_ENDPOINT_URL_STS`` (then ``AWS_ENDPOINT_URL``), the variables AWS's SDKs read for
a private endpoint, name one. The tests point them all at fake servers on loopback; a service account key
names its own ``token_uri``. Where Application Default Credentials are: ``tokens.google_credentials``; how
an answer is read: ``tokens.answers``.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import quote, quote_plus

import aiohttp
from cryptography.exceptions import UnsupportedAlgorithm

from controlplane.tokens.answers import (
    Minted,
    MintError,
    Refused,
    answer_text,
    json_answer,
    sts_credentials,
    utc_seconds,
)
from controlplane.tokens.google_credentials import (
    AdcLocations,
    AuthorizedUser,
    KeyFileError,
    MetadataServer,
    application_default,
    signed_jwt,
)
from controlplane.tokens.requests import (
    AZURE_SCOPE,
    GCP_CLOUD_PLATFORM_SCOPE,
    GCP_IAM_SCOPE,
    AwsWebIdentity,
    AzureClientSecret,
    AzureFederated,
    GcpApplicationDefault,
    GcpServiceAccountKey,
    GcpWorkloadIdentity,
    MintRequest,
    OidcClient,
)
from controlplane.tokens.scrub import scrubbed

__all__ = ["Endpoints", "HttpMinter", "MintError", "Minted", "Minter"]
"""What the rest of the server uses (``Minted`` and ``MintError`` live in ``tokens.answers``)."""

_JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_JWT_BEARER_ASSERTION: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN
_ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
_JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - a URN
_STS_API_VERSION: Final = "2011-06-15"
_TIMEOUT_SECONDS: Final = 30.0


@dataclass(frozen=True, slots=True)
class Endpoints:
    azure_authority: str = "https://login.microsoftonline.com"
    gcp_sts: str = "https://sts.googleapis.com/v1/token"
    gcp_iam_credentials: str = "https://iamcredentials.googleapis.com"
    aws_sts: str | None = None
    """None: the regional endpoint of the policy's region (``aws_sts_url``)."""
    gcp_adc: AdcLocations = field(default_factory=AdcLocations)

    def aws_sts_url(self, region: str) -> str:
        if self.aws_sts is not None:
            return self.aws_sts
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://sts.{region}.{suffix}"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Endpoints:
        default = cls()
        return cls(
            azure_authority=environ.get("AZURE_AUTHORITY_HOST", default.azure_authority).rstrip("/"),
            gcp_sts=environ.get("AIXDS_GCP_STS_URL", default.gcp_sts),
            gcp_iam_credentials=environ.get(
                "AIXDS_GCP_IAM_CREDENTIALS_URL", default.gcp_iam_credentials
            ).rstrip("/"),
            aws_sts=environ.get("AWS_ENDPOINT_URL_STS") or environ.get("AWS_ENDPOINT_URL") or None,
            gcp_adc=AdcLocations.from_environment(environ),
        )


class Minter(Protocol):
    async def __call__(self, request: MintRequest, /) -> Minted: ...

    async def close(self) -> None:
        """Releases its connections (the server is stopping)."""
        ...


class HttpMinter:
    """Mints over HTTP with one session (opened on first use, on the running loop)."""

    def __init__(self, *, endpoints: Endpoints | None = None, clock: Callable[[], float] = time.time) -> None:
        self._endpoints = endpoints or Endpoints.from_environment()
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, request: MintRequest, /) -> Minted:
        # Every secret sent so far, the tokens of earlier steps included (an OIDC token, Google's federated
        # token, a signed assertion): scrubbed from whatever a failure says, even a provider repeating one.
        spent = list(_secrets_of(request))
        try:
            return await self._mint(request, spent)
        except Refused as error:
            raise MintError(error.without(spent)) from None
        except MintError as error:
            raise MintError(scrubbed(str(error), secrets=spent)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise MintError(scrubbed(f"{type(error).__name__}: {error}", secrets=spent)) from None

    async def _mint(self, request: MintRequest, spent: list[str]) -> Minted:
        if isinstance(request, AzureClientSecret):
            return await self._entra(
                request.tenant_id,
                {"client_id": request.client_id, "client_secret": request.client_secret},
            )
        if isinstance(request, AzureFederated):
            assertion = await self._oidc(request.oidc, spent)
            return await self._entra(
                request.tenant_id,
                {
                    "client_id": request.client_id,
                    "client_assertion_type": _JWT_BEARER_ASSERTION,
                    "client_assertion": assertion,
                },
            )
        if isinstance(request, GcpServiceAccountKey):
            return await self._service_account(request, spent)
        if isinstance(request, AwsWebIdentity):
            return await self._aws(request, spent)
        if isinstance(request, GcpApplicationDefault):
            return await self._application_default(spent)
        return await self._gcp(request, spent)

    async def _application_default(self, spent: list[str]) -> Minted:
        try:
            source = application_default(self._endpoints.gcp_adc, scope=GCP_CLOUD_PLATFORM_SCOPE)
        except KeyFileError as error:
            raise MintError(str(error)) from None
        if isinstance(source, GcpServiceAccountKey):
            spent.append(source.private_key)
            return await self._service_account(source, spent)
        if isinstance(source, AuthorizedUser):
            spent += (source.client_secret, source.refresh_token)
            form = {
                "grant_type": "refresh_token",
                "client_id": source.client_id,
                "client_secret": source.client_secret,
                "refresh_token": source.refresh_token,
            }
            return self._oauth_token(source.token_uri, await self._post(source.token_uri, data=form))
        return await self._metadata_token(source)

    async def _metadata_token(self, server: MetadataServer) -> Minted:
        try:
            async with self._http().get(server.token_url, headers={"Metadata-Flavor": "Google"}) as response:
                return self._oauth_token(server.token_url, await json_answer(server.token_url, response))
        except (aiohttp.ClientError, OSError) as error:
            raise MintError(
                "no Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS names no file, gcloud "
                f"has none, and the metadata server at {server.token_url} cannot be reached "
                f"({type(error).__name__})"
            ) from None

    async def _aws(self, request: AwsWebIdentity, spent: list[str]) -> Minted:
        identity = await self._oidc(request.oidc, spent)
        url = self._endpoints.aws_sts_url(request.region)
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": _STS_API_VERSION,
            "RoleArn": request.role_arn,
            "RoleSessionName": request.session_name,
            "WebIdentityToken": identity,
        }
        async with self._http().post(url, data=form) as response:
            text = await answer_text(url, response)
            status = response.status
        return sts_credentials(url, status, text)

    async def _service_account(self, request: GcpServiceAccountKey, spent: list[str]) -> Minted:
        try:
            assertion = signed_jwt(request, scope=GCP_CLOUD_PLATFORM_SCOPE, now=self._clock())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise MintError("the service account key's private_key is no RSA private key in PEM") from None
        spent.append(assertion)
        form = {"grant_type": _JWT_BEARER_GRANT, "assertion": assertion}
        return self._oauth_token(request.token_uri, await self._post(request.token_uri, data=form))

    async def _entra(self, tenant: str, client: dict[str, str]) -> Minted:
        url = f"{self._endpoints.azure_authority}/{quote(tenant, safe='')}/oauth2/v2.0/token"
        form = {"grant_type": "client_credentials", "scope": AZURE_SCOPE, **client}
        return self._oauth_token(url, await self._post(url, data=form))

    async def _oidc(self, client: OidcClient, spent: list[str]) -> str:
        """The OIDC provider's token (an identity the next step exchanges; its lifetime is not ours), added
        to ``spent``."""
        url = client.token_endpoint or await self._discover_token_endpoint(client.issuer)
        form = {"grant_type": "client_credentials"}
        if client.scopes:
            form["scope"] = " ".join(client.scopes)
        # client_secret_basic (RFC 6749 2.3.1): both parts form-encoded, then Basic.
        pair = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}"
        basic = base64.b64encode(pair.encode()).decode()
        spent.append(basic)  # a provider repeating the header repeats the pair's base64, not the secret's
        auth = {"Authorization": f"Basic {basic}"}
        identity = str(self._oauth_token(url, await self._post(url, data=form, headers=auth)).value)
        spent.append(identity)
        return identity

    async def _gcp(self, request: GcpWorkloadIdentity, spent: list[str]) -> Minted:
        identity = await self._oidc(request.oidc, spent)
        exchange = {
            "grantType": _TOKEN_EXCHANGE,
            "audience": request.audience,
            "scope": GCP_IAM_SCOPE if request.service_account else GCP_CLOUD_PLATFORM_SCOPE,
            "requestedTokenType": _ACCESS_TOKEN_TYPE,
            "subjectToken": identity,
            "subjectTokenType": _JWT_TOKEN_TYPE,
        }
        federated = self._oauth_token(
            self._endpoints.gcp_sts, await self._post(self._endpoints.gcp_sts, json_body=exchange)
        )
        if request.service_account is None:
            return federated
        spent.append(str(federated.value))
        url = (
            f"{self._endpoints.gcp_iam_credentials}/v1/projects/-/serviceAccounts/"
            f"{quote(request.service_account, safe='@')}:generateAccessToken"
        )
        answer = await self._post(
            url,
            json_body={"scope": [GCP_CLOUD_PLATFORM_SCOPE]},
            headers={"Authorization": f"Bearer {federated.value}"},
        )
        token, expiry = answer.get("accessToken"), answer.get("expireTime")
        if not isinstance(token, str) or not token or not isinstance(expiry, str):
            raise MintError(f"{url} answered without accessToken and expireTime")
        return Minted(value=token, expires_at=utc_seconds(url, "expireTime", expiry))

    async def _discover_token_endpoint(self, issuer: str) -> str:
        url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
        async with self._http().get(url) as response:
            document = await json_answer(url, response)
        endpoint = document.get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise MintError(f"{url} names no token_endpoint")
        return endpoint

    async def _post(
        self,
        url: str,
        *,
        data: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        auth: aiohttp.BasicAuth | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        async with self._http().post(url, data=data, json=json_body, auth=auth, headers=headers) as response:
            return await json_answer(url, response)

    def _oauth_token(self, url: str, answer: dict[str, Any]) -> Minted:
        token, lifetime = answer.get("access_token"), answer.get("expires_in")
        try:
            seconds = float(lifetime)  # type: ignore[arg-type]  # Entra ID has sent it as a string
        except (TypeError, ValueError):
            seconds = -1
        if not isinstance(token, str) or not token or seconds <= 0:
            raise MintError(f"{url} answered without access_token and a positive expires_in")
        return Minted(value=token, expires_at=self._clock() + seconds)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS))
        return self._session


def _secrets_of(request: MintRequest) -> tuple[str, ...]:
    """The secrets the request carries (ADC read theirs when minting, and add them to ``spent`` then)."""
    if isinstance(request, AzureClientSecret):
        return (request.client_secret,)
    if isinstance(request, GcpServiceAccountKey):
        return (request.private_key,)
    if isinstance(request, GcpApplicationDefault):
        return ()
    return (request.oidc.client_secret,)
