"""Check a request a fake AWS endpoint received the way AWS does: its Signature V4, recomputed by botocore.

AWS recomputes the signature from the request it got (method, path, query, the headers named in
``SignedHeaders``, the payload hash) and the key it holds; so does this, with botocore's signer (the
reference implementation), and it also checks that the payload hash is the body's, that the credential scope
names the key, date, region and service, and that the timestamp is fresh.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<scope>[^,]+), SignedHeaders=(?P<signed>[^,]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})"
)
_MAX_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class AwsKey:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


class SignedRequest(Protocol):
    """What a signature check reads of a received request (a fake backend's or a fake provider's record)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> Mapping[str, str]: ...
    @property
    def headers(self) -> Mapping[str, str]:
        """Reachable by lower-case name."""
        ...

    @property
    def body(self) -> bytes: ...


@dataclass(frozen=True)
class ReceivedRequest:
    """A ``SignedRequest`` from what a fake provider recorded (its raw body, lower-case headers)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


class SignatureMismatch(AssertionError):
    """The request is not signed by the key AWS would check it against."""


def verify_sigv4(request: SignedRequest, *, key: AwsKey, region: str, service: str) -> list[str]:
    """Raises :class:`SignatureMismatch` unless ``request`` is signed by ``key``; returns what it signed."""
    found = _AUTHORIZATION.fullmatch(request.headers.get("authorization", ""))
    if found is None:
        raise SignatureMismatch(f"no SigV4 Authorization header: {request.headers.get('authorization')!r}")
    timestamp = request.headers.get("x-amz-date", "")
    signed_at = datetime.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    if abs(datetime.datetime.now(datetime.UTC) - signed_at) > _MAX_SKEW:
        raise SignatureMismatch(f"x-amz-date {timestamp} is not current")
    expected_scope = f"{key.access_key_id}/{timestamp[:8]}/{region}/{service}/aws4_request"
    if found["scope"] != expected_scope:
        raise SignatureMismatch(f"credential scope {found['scope']}, expected {expected_scope}")
    if request.headers.get("x-amz-content-sha256") != hashlib.sha256(request.body).hexdigest():
        raise SignatureMismatch("x-amz-content-sha256 is not the SHA-256 of the body received")
    if request.headers.get("x-amz-security-token") != key.session_token:
        raise SignatureMismatch("x-amz-security-token is not the key's session token")
    signed = found["signed"].split(";")
    query = "&".join(f"{name}={value}" for name, value in request.query.items())
    aws_request = AWSRequest(
        method=request.method,
        url=f"http://{request.headers['host']}{request.path}" + (f"?{query}" if query else ""),
        data=request.body,
        headers={name: request.headers[name] for name in signed},
    )
    aws_request.context["timestamp"] = timestamp
    signer = SigV4Auth(
        Credentials(key.access_key_id, key.secret_access_key, key.session_token), service, region
    )
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected, found["sig"]):
        raise SignatureMismatch(f"signature does not match; AWS's canonical request would be:\n{canonical}")
    return signed
