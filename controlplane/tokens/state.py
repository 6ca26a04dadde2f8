"""What the translator is told about each policy's token: the current one, or why there is none.

These are inputs of a translation like the resources themselves (``ResourceSet.tokens``): a refreshed token
or a new failure is a changed input, so the memo recomputes exactly the policy it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controlplane.ir.providers import AwsKeys
from controlplane.resources.problems import ObjectKey


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A token that is valid now; ``refresh_problem``: the last refresh failed, so this older one is kept."""

    value: str | AwsKeys = field(repr=False)
    """An access token, or an AWS role's temporary keys (``AwsWebIdentity``)."""
    expires_at: float
    """Unix seconds."""
    refresh_problem: str | None = None


@dataclass(frozen=True, slots=True)
class MintFailure:
    """No valid token: minting failed (and any earlier token has expired)."""

    message: str


TokenState = MintedToken | MintFailure
Tokens = Mapping[ObjectKey, TokenState]
"""Per BackendSecurityPolicy; a policy missing here has no token yet (it is being minted)."""

OFFLINE_TOKEN = MintedToken(value="<minted by controlplane serve>", expires_at=0.0)
"""What ``translate`` (which mints nothing) takes every token to be: the configuration printed is the one
``serve`` sends once the token is minted, and secret values are redacted in its output anyway."""


def utc_time(seconds: float) -> str:
    """``2026-01-02T03:04:05Z``: how expiry times appear in conditions."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
