"""What a token endpoint answered, read into a token's parts or into a ``MintError``.

Split from ``tokens.minting``, which says whom it asks and what; this module says how an answer is read:
the body (bounded), OAuth2's JSON and STS's XML, RFC 3339 times, and a refusal in the provider's own words
(``Refused``, shortened only once ``tokens.scrub`` took every secret sent out of it).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import aiohttp

from controlplane.ir.providers import AwsKeys
from controlplane.tokens.scrub import scrubbed

_MAX_DETAIL: Final = 300
_MAX_REFUSAL_BYTES: Final = 64 * 1024
"""How much of a refusal's body is read: its words are cut to ``_MAX_DETAIL`` characters anyway."""
_MAX_ANSWER_BYTES: Final = 1024 * 1024
"""The most a 200 answer may hold (a token answer is a few KiB), unpacked: whatever answers at a URL (an OIDC
issuer, a key's ``token_uri``, each partly a tenant's choice) may send megabytes, a small gzip body that
unpacks to hundreds of them, or never stop. Only the bytes read are counted here: that memory stays near
the limit while a gzip body unpacks is aiohttp's doing (from 3.13.3, CVE-2025-69223, the floor
pyproject.toml sets; 3.12 unpacked each chunk whole: ~257 MB for a 200 MB answer, the ``MintError`` raised
all the same)."""


@dataclass(frozen=True, slots=True)
class Minted:
    value: str | AwsKeys = field(repr=False)
    expires_at: float
    """Unix seconds."""


class MintError(Exception):
    """Why a token could not be minted, without any secret in the message."""


class Refused(MintError):
    """An endpoint's refusal in the provider's own words (``detail``), which may repeat what was sent: it is
    shortened only once scrubbed, since a cut through a secret would leave its start unscrubbed."""

    def __init__(self, url: str, status: int, detail: str) -> None:
        super().__init__(f"{url} answered HTTP {status}")  # what it says before it is scrubbed
        self.url, self.status, self.detail = url, status, detail

    def without(self, secrets: list[str]) -> str:
        detail = scrubbed(self.detail, secrets=secrets)
        if len(detail) > _MAX_DETAIL:
            detail = detail[:_MAX_DETAIL] + "..."
        return scrubbed(f"{self.url} answered HTTP {self.status}", secrets=secrets) + (
            f" ({detail})" if detail else ""
        )


async def answer_text(url: str, response: aiohttp.ClientResponse) -> str:
    """The body, as text: of a refusal (any status but 200), its first ``_MAX_REFUSAL_BYTES``; a 200 answer
    of more than ``_MAX_ANSWER_BYTES`` is a ``MintError`` (read no further, nothing of it quoted)."""
    limit = _MAX_ANSWER_BYTES if response.status == 200 else _MAX_REFUSAL_BYTES
    body = bytearray()
    # One byte past the limit tells a body of exactly the limit from a longer one.
    while len(body) <= limit:
        chunk = await response.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        if response.status == 200:
            raise MintError(f"{url} answered HTTP 200 larger than {limit} bytes")
        del body[limit:]
    return body.decode("utf-8", errors="replace")  # JSON's (RFC 8259) and STS's XML's


async def json_answer(url: str, response: aiohttp.ClientResponse) -> dict[str, Any]:
    text = await answer_text(url, response)
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if response.status != 200:
        raise Refused(url, response.status, _provider_error(document))
    if not isinstance(document, dict):
        raise MintError(f"{url} answered HTTP 200 with no JSON object")
    return document


def sts_credentials(url: str, status: int, text: str) -> Minted:
    """The temporary keys in STS's XML answer, or why there are none (STS's ``Error`` ``Code`` and
    ``Message``; scrubbed by ``Refused``)."""
    try:
        # The answer of the STS endpoint the policy's region (or the operator) names; Python's expat refuses
        # entity expansion bombs, and nothing here resolves external entities.
        root = ElementTree.fromstring(text)  # noqa: S314
    except ElementTree.ParseError:
        root = None
    values = {} if root is None else {element.tag.rsplit("}", 1)[-1]: element.text for element in root.iter()}
    if status != 200:
        raise Refused(
            url, status, ": ".join(str(values[name]) for name in ("Code", "Message") if values.get(name))
        )
    names = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    found = {name: (values.get(name) or "").strip() for name in names}
    if not all(found.values()):
        raise MintError(
            f"{url} answered HTTP 200 without AccessKeyId, SecretAccessKey, SessionToken and Expiration"
        )
    keys = AwsKeys(
        access_key_id=found["AccessKeyId"],
        secret_access_key=found["SecretAccessKey"],
        session_token=found["SessionToken"],
    )
    return Minted(value=keys, expires_at=utc_seconds(url, "Expiration", found["Expiration"]))


def utc_seconds(url: str, name: str, text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MintError(f"{url} answered an {name} that is no RFC 3339 time") from None
    if moment.tzinfo is None:
        raise MintError(f"{url} answered an {name} without a time zone")
    return moment.timestamp()


def _provider_error(document: Any) -> str:
    """The provider's own error code and description (OAuth2's ``error``/``error_description``, Google's
    ``error.status``/``error.message``); ``Refused`` scrubs and shortens them."""
    if not isinstance(document, dict):
        return ""
    error = document.get("error")
    if isinstance(error, dict):
        code, description = error.get("status"), error.get("message")
    else:
        code, description = error, document.get("error_description")
    return ": ".join(str(part) for part in (code, description) if part)
