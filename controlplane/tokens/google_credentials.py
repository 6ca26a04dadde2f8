"""GCP credentials ``serve`` reads itself: service account key files and Application Default Credentials.

A service account key file (a ``credentialsFile`` Secret, or ADC's file) is parsed here and signs the RS256
JWT that is traded for a token (RFC 7523).

A GCPCredentials policy with neither ``credentialsFile`` nor ``workloadIdentityFederationConfig`` uses ADC
(upstream's API says so; its external processor resolves them beside Envoy, here ``serve`` does, so the
identity is the control plane's). In order: the JSON file ``GOOGLE_APPLICATION_CREDENTIALS`` names; gcloud's
``application_default_credentials.json`` in ``CLOUDSDK_CONFIG`` (default ``~/.config/gcloud``); else the
metadata server of the machine (GCE, GKE Workload Identity, Cloud Run), at ``GCE_METADATA_HOST`` if set.
A file may hold a service account key or a user's refresh token (``authorized_user``); other kinds are
refused with their type named. Errors name the file, never its content.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from controlplane.tokens.requests import GcpServiceAccountKey

GOOGLE_TOKEN_URI: Final = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
_WELL_KNOWN_FILE: Final = "application_default_credentials.json"
_METADATA_HOST: Final = "metadata.google.internal"


class KeyFileError(ValueError):
    """Why a credentials file gives no credential; never quotes the file. ``unsupported``: a valid file of a
    kind that is not served."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True, slots=True)
class AuthorizedUser:
    """A user's OAuth2 refresh token (``gcloud auth application-default login``)."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_uri: str


@dataclass(frozen=True, slots=True)
class MetadataServer:
    """The machine's metadata server, which hands out its attached service account's tokens."""

    token_url: str


@dataclass(frozen=True, slots=True)
class AdcLocations:
    """Where ADC are looked for, read from the environment once (``from_environment``)."""

    file: str | None = None
    """``GOOGLE_APPLICATION_CREDENTIALS``."""
    gcloud_file: str | None = None
    metadata_host: str = _METADATA_HOST

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> AdcLocations:
        config = environ.get("CLOUDSDK_CONFIG") or (
            os.path.join(environ["HOME"], ".config", "gcloud") if environ.get("HOME") else None
        )
        return cls(
            file=environ.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
            gcloud_file=os.path.join(config, _WELL_KNOWN_FILE) if config else None,
            metadata_host=environ.get("GCE_METADATA_HOST") or _METADATA_HOST,
        )


def application_default(
    locations: AdcLocations, *, scope: str
) -> GcpServiceAccountKey | AuthorizedUser | MetadataServer:
    """The credential ADC resolve to now (a file is read on every call: it may have been rotated)."""
    path = locations.file
    if path is None and locations.gcloud_file is not None and os.path.isfile(locations.gcloud_file):
        path = locations.gcloud_file
    if path is None:
        return MetadataServer(
            f"http://{locations.metadata_host}/computeMetadata/v1/instance/service-accounts/default/token"
            f"?scopes={scope}"
        )
    where = f"the Application Default Credentials file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8"
        raise KeyFileError(f"{where} cannot be read ({reason})") from None
    document = json_object(text)
    if document is None:
        raise KeyFileError(f"{where} is not a JSON object")
    kind = document.get("type")
    try:
        if kind == "service_account":
            return service_account_key(document)
        if kind == "authorized_user":
            return _authorized_user(document)
    except KeyFileError as error:
        raise KeyFileError(f"{where} {error}") from None
    raise KeyFileError(
        f"{where} is of type {kind!r}; service_account and authorized_user are supported", unsupported=True
    )


def json_object(text: str) -> dict[str, Any] | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def service_account_key(document: dict[str, Any]) -> GcpServiceAccountKey:
    """The parts of a service account key file (``type: service_account``) minting needs."""
    fields, token_uri = _required(document, "client_email", "private_key", "private_key_id")
    return GcpServiceAccountKey(
        client_email=str(fields["client_email"]),
        private_key_id=str(fields["private_key_id"]),
        private_key=str(fields["private_key"]),
        token_uri=str(token_uri),
    )


def _required(document: dict[str, Any], *names: str) -> tuple[dict[str, str | None], str]:
    """The string fields ``names`` of a credentials file and its token URI (Google's by default); a
    ``KeyFileError`` naming every one that is missing or unusable."""
    fields = _strings(document, *names)
    token_uri = document.get("token_uri", GOOGLE_TOKEN_URI)
    missing = [name for name, value in fields.items() if value is None]
    if not is_url(token_uri):
        missing.append("token_uri")
    if missing:
        raise KeyFileError(f"has no usable {', '.join(missing)}")
    return fields, str(token_uri)


def _authorized_user(document: dict[str, Any]) -> AuthorizedUser:
    fields, token_uri = _required(document, "client_id", "client_secret", "refresh_token")
    return AuthorizedUser(
        client_id=str(fields["client_id"]),
        client_secret=str(fields["client_secret"]),
        refresh_token=str(fields["refresh_token"]),
        token_uri=str(token_uri),
    )


def _strings(document: dict[str, Any], *names: str) -> dict[str, str | None]:
    """Each named field's value when it is a non-empty string, else None."""
    return {name: value if isinstance(value := document.get(name), str) and value else None for name in names}


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) > 8


def signed_jwt(key: GcpServiceAccountKey, *, scope: str, now: float) -> str:
    """The RS256 JWT a service account presents for an access token, valid for an hour (Google's limit)."""
    header = {"alg": "RS256", "typ": "JWT", "kid": key.private_key_id}
    issued = int(now)
    claims = {
        "iss": key.client_email,
        "scope": scope,
        "aud": key.token_uri,
        "iat": issued,
        "exp": issued + 3600,
    }
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    private_key = serialization.load_pem_private_key(key.private_key.encode(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError("not an RSA key")
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
