"""A fake identity provider on loopback: Entra ID, an OIDC provider, Google's STS, IAM Credentials, OAuth2 and
metadata server, and AWS STS.

Each endpoint speaks the provider's documented protocol (form-encoded OAuth2 client credentials with
``client_secret`` or a JWT-bearer ``client_assertion``, OIDC discovery, RFC 8693 exchange as Google's STS
takes it in JSON, ``generateAccessToken`` with a bearer token, AWS STS ``AssumeRoleWithWebIdentity`` as a
form POST answered in XML, errors too; a refresh-token grant; the metadata server's token, asked with
``Metadata-Flavor: Google``) and checks what it receives: a request
carrying the wrong secret, assertion or subject token is answered 401 the way the provider answers. Tokens
are numbered per kind (``entra-minted-1``, ``entra-minted-2``, ...) so tests see refreshes; ``failing``
makes every endpoint answer 503. Runs its own event loop in a thread, like the fake backends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import BasicAuth, web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.aws_sigv4 import AwsKey

ENTRA_SECRET = "e2e-entra-client-secret-5d2a"
OIDC_CLIENT_ID = "gateway"
OIDC_SECRET = "e2e-oidc-client-secret-8c41"
SERVICE_ACCOUNT = "vertex-caller@my-project.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_MARK = "-minted-"
"""In every token issued (``entra-minted-1``), so a test finds them all (AWS: in the secret key and session
token, not in the access key ID, which AWS treats as no secret and Envoy's config dump shows)."""
AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/bedrock-caller"
USER_CLIENT_SECRET = "e2e-gcloud-user-client-secret-1f0b"
USER_REFRESH_TOKEN = "e2e-gcloud-user-refresh-token-77c3"
_STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass
class TokenEndpoints:
    lifetime_seconds: int = 3600
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(endpoint, what it was sent) in arrival order."""
    failing: bool = False
    aws_keys: list[AwsKey] = field(default_factory=list)
    """The temporary keys AWS STS issued, oldest first."""
    _issued: dict[str, int] = field(default_factory=dict)
    _tokens: set[str] = field(default_factory=set)
    port: int = 0
    _key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def issued(self, kind: str) -> list[str]:
        return [f"{kind}{TOKEN_MARK}{number}" for number in range(1, self._issued.get(kind, 0) + 1)]

    def _issue(self, kind: str) -> str:
        self._issued[kind] = self._issued.get(kind, 0) + 1
        token = f"{kind}{TOKEN_MARK}{self._issued[kind]}"
        self._tokens.add(token)
        return token

    # --- endpoints ---

    async def _entra(self, request: web.Request) -> web.Response:
        form = {name: str(value) for name, value in (await request.post()).items()}
        self.received.append((f"entra {request.match_info['tenant']}", dict(form)))
        if self.failing:
            return _error(503, "temporarily_unavailable", "AADSTS90033: try again later")
        assertion_ok = form.get("client_assertion_type", "").endswith("jwt-bearer") and form.get(
            "client_assertion", ""
        ).startswith("oidc-")
        if form.get("client_secret") != ENTRA_SECRET and not assertion_ok:
            return _error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("grant_type") != "client_credentials" or not form.get("scope", "").endswith("/.default"):
            return _error(400, "invalid_request", "AADSTS900144: bad grant or scope")
        return _oauth(self._issue("entra"), self.lifetime_seconds)

    async def _discovery(self, request: web.Request) -> web.Response:
        self.received.append(("oidc discovery", {}))
        # Scopes the provider supports: the mint asks for none of them the policy does not list.
        scopes = ["openid", "profile", "email", "offline_access", "api"]
        return web.json_response(
            {"issuer": self.url, "token_endpoint": f"{self.url}/oidc/token", "scopes_supported": scopes}
        )

    async def _oidc(self, request: web.Request) -> web.Response:
        form = {name: str(value) for name, value in (await request.post()).items()}
        auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        self.received.append(("oidc", {**form, "client_id": auth.login}))
        if self.failing:
            return _error(503, "temporarily_unavailable", "the provider is down")
        if (auth.login, auth.password) != (OIDC_CLIENT_ID, OIDC_SECRET):
            return _error(401, "invalid_client", "client authentication failed")
        return _oauth(self._issue("oidc"), self.lifetime_seconds)

    async def _sts(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(("sts", body))
        if self.failing:
            return web.json_response({"error": {"status": "UNAVAILABLE", "message": "STS down"}}, status=503)
        if body.get("subjectToken") not in self._tokens or not body.get("audience", "").startswith(
            "//iam.googleapis.com/projects/"
        ):
            return _error(400, "invalid_grant", "The audience or subject token is invalid")
        return _oauth(self._issue("sts"), self.lifetime_seconds)

    async def _google_oauth(self, request: web.Request) -> web.Response:
        form = {name: str(value) for name, value in (await request.post()).items()}
        self.received.append(("google oauth", form))
        if self.failing:
            return _error(503, "temporarily_unavailable", "try again")
        if form.get("grant_type") == "refresh_token":
            user = (form.get("client_id"), form.get("client_secret"), form.get("refresh_token"))
            if user != ("gcloud-user", USER_CLIENT_SECRET, USER_REFRESH_TOKEN):
                return _error(400, "invalid_grant", "Token has been expired or revoked.")
            return _oauth(self._issue("gcpuser"), self.lifetime_seconds)
        try:
            claims = self._verified_claims(form.get("assertion", ""))
        except (ValueError, InvalidSignature):
            return _error(400, "invalid_grant", "Invalid JWT Signature.")
        expected = {"iss": SERVICE_ACCOUNT, "aud": f"{self.url}/google/token", "scope": CLOUD_PLATFORM}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or any(
            claims.get(name) != value for name, value in expected.items()
        ):
            return _error(400, "invalid_grant", "Invalid grant or claims.")
        return _oauth(self._issue("gcpkey"), self.lifetime_seconds)

    async def _aws_sts(self, request: web.Request) -> web.Response:
        form = {name: str(value) for name, value in (await request.post()).items()}
        self.received.append(("aws sts", form))
        if self.failing:
            return _sts_error(503, "ServiceUnavailable", "Service is unable to handle request.")
        if (form.get("Action"), form.get("Version")) != ("AssumeRoleWithWebIdentity", "2011-06-15"):
            return _sts_error(400, "InvalidAction", "Could not find operation")
        token = form.get("WebIdentityToken", "")
        if token not in self._tokens or not token.startswith("oidc-"):
            return _sts_error(400, "InvalidIdentityToken", "The web identity token is not valid.")
        if form.get("RoleArn") != AWS_ROLE_ARN or not form.get("RoleSessionName"):
            return _sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        secret = self._issue("aws")
        key = AwsKey(f"ASIAE2E{len(self.aws_keys) + 1:08d}", secret, f"{secret}-session")
        self.aws_keys.append(key)
        expiry = datetime.now(UTC) + timedelta(seconds=self.lifetime_seconds)
        answer = (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{_STS_XMLNS}"><AssumeRoleWithWebIdentityResult>'
            f"<Credentials><SessionToken>{key.session_token}</SessionToken>"
            f"<SecretAccessKey>{key.secret_access_key}</SecretAccessKey>"
            f"<Expiration>{expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
            f"<AccessKeyId>{key.access_key_id}</AccessKeyId></Credentials>"
            f"<SubjectFromWebIdentityToken>{OIDC_CLIENT_ID}</SubjectFromWebIdentityToken>"
            "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        )
        return web.Response(text=answer, content_type="text/xml")

    async def _metadata(self, request: web.Request) -> web.Response:
        self.received.append(("metadata", dict(request.query)))
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        if self.failing:
            return web.Response(status=503, text="unavailable")
        return _oauth(self._issue("adc"), self.lifetime_seconds)

    def authorized_user_file(self) -> str:
        """What ``gcloud auth application-default login`` writes, its token_uri this provider."""
        return json.dumps(
            {
                "type": "authorized_user",
                "client_id": "gcloud-user",
                "client_secret": USER_CLIENT_SECRET,
                "refresh_token": USER_REFRESH_TOKEN,
                "token_uri": f"{self.url}/google/token",
            }
        )

    def _verified_claims(self, jwt: str) -> dict[str, Any]:
        header, claims, signature = (
            base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in jwt.split(".")
        )
        if json.loads(header) != {"alg": "RS256", "typ": "JWT", "kid": "key-1"}:
            raise ValueError("header")
        signed = jwt.rsplit(".", 1)[0].encode()
        self._key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        found: dict[str, Any] = json.loads(claims)
        return found

    def service_account_key(self) -> str:
        """A service account key file (``service_account.json``) whose token_uri is this provider."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return json.dumps(
            {
                "type": "service_account",
                "project_id": "my-project",
                "private_key_id": "key-1",
                "private_key": pem,
                "client_email": SERVICE_ACCOUNT,
                "token_uri": f"{self.url}/google/token",
            }
        )

    async def _iam(self, request: web.Request) -> web.Response:
        body = await request.json()
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.received.append((f"iam {request.match_info['account']}", {**body, "bearer": bearer}))
        if bearer not in self._tokens or not bearer.startswith("sts-"):
            message = {"status": "UNAUTHENTICATED", "message": "Request had invalid credentials."}
            return web.json_response({"error": message}, status=401)
        expiry = datetime.now(UTC) + timedelta(seconds=self.lifetime_seconds)
        return web.json_response(
            {"accessToken": self._issue("gcp"), "expireTime": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}
        )

    # --- lifecycle ---

    @contextmanager
    def running(self) -> Iterator[TokenEndpoints]:
        app = web.Application()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._entra)
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_post("/oidc/token", self._oidc)
        app.router.add_post("/sts/v1/token", self._sts)
        app.router.add_post("/google/token", self._google_oauth)
        app.router.add_post("/iam/v1/projects/-/serviceAccounts/{account}:generateAccessToken", self._iam)
        app.router.add_post("/aws-sts/", self._aws_sts)
        app.router.add_get("/computeMetadata/v1/instance/service-accounts/default/token", self._metadata)
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        self.port = runner.addresses[0][1]
        thread = threading.Thread(target=loop.run_forever, name="token-endpoints", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    def environment(self) -> dict[str, str]:
        """What points ``controlplane.tokens.minting`` at these endpoints."""
        return {
            "AZURE_AUTHORITY_HOST": self.url,
            "AIXDS_GCP_STS_URL": f"{self.url}/sts/v1/token",
            "AIXDS_GCP_IAM_CREDENTIALS_URL": f"{self.url}/iam",
            "AWS_ENDPOINT_URL_STS": f"{self.url}/aws-sts/",
            "GCE_METADATA_HOST": f"127.0.0.1:{self.port}",
        }


def _oauth(token: str, lifetime: int) -> web.Response:
    return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": lifetime})


def _sts_error(status: int, code: str, message: str) -> web.Response:
    answer = (
        f'<ErrorResponse xmlns="{_STS_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>e2e</RequestId></ErrorResponse>"
    )
    return web.Response(text=answer, status=status, content_type="text/xml")


def _error(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=status)
