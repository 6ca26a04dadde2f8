"""An AWS shared credentials file (a BackendSecurityPolicy's ``awsCredentials.credentialsFile``) -> one key.

The Secret holds the INI file AWS tools write (``[profile]`` sections with ``aws_access_key_id``,
``aws_secret_access_key`` and, for temporary keys, ``aws_session_token``); the policy picks one profile.
Only that profile's keys go to Envoy. Errors name the profile, the missing setting or the line number, never a
line's text: the file is a secret.
"""

from __future__ import annotations

from typing import Final

from controlplane import ir

BEDROCK_SIGNING_SERVICE: Final = "bedrock"
"""The SigV4 service name of Bedrock's runtime endpoints (``bedrock-runtime.<region>.amazonaws.com``)."""

_ACCESS_KEY_ID: Final = "aws_access_key_id"
_SECRET_ACCESS_KEY: Final = "aws_secret_access_key"  # noqa: S105 - the name of a setting, not a secret
_SESSION_TOKEN: Final = "aws_session_token"  # noqa: S105 - the name of a setting, not a secret
_KEY_SETTINGS: Final = frozenset((_ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _SESSION_TOKEN))


class CredentialsFileError(ValueError):
    """Why a credentials file gives no key; the message never quotes the file.

    ``field`` is the part of ``credentialsFile`` at fault: ``secretRef`` (the file) or ``profile``.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def profile_keys(text: str, *, profile: str) -> ir.AwsKeys:
    """The keys of ``profile`` in the credentials file ``text``."""
    profiles = _profiles(text)
    if profile not in profiles:
        found = ", ".join(profiles) or "none"
        raise CredentialsFileError(f"has no profile [{profile}] (profiles: {found})", field="profile")
    section = profiles[profile]
    missing = [name for name in (_ACCESS_KEY_ID, _SECRET_ACCESS_KEY) if not section.get(name)]
    if missing:
        raise CredentialsFileError(f"profile [{profile}] has no {' or '.join(missing)}", field="profile")
    return ir.AwsKeys(
        access_key_id=section[_ACCESS_KEY_ID],
        secret_access_key=section[_SECRET_ACCESS_KEY],
        session_token=section.get(_SESSION_TOKEN, ""),
    )


def _profiles(text: str) -> dict[str, dict[str, str]]:
    """The file's ``[profile]`` sections and their ``name = value`` settings, as AWS tools read them.

    Parsed here rather than with ``configparser``, whose parser and section proxies refer to each other:
    every translation would leave that cycle for the garbage collector (see ``controlplane.heap``).
    """
    profiles: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            if name in profiles:
                raise CredentialsFileError(
                    f"is not an AWS credentials file: profile [{name}] appears twice (line {number})",
                    field="secretRef",
                )
            section = profiles[name] = {}
            continue
        key, separator, value = line.partition("=")
        if not separator:
            key, separator, value = line.partition(":")
        if not separator or not key.strip():
            raise CredentialsFileError(
                f"is not an AWS credentials file: cannot parse line {number}", field="secretRef"
            )
        if section is None:
            raise CredentialsFileError(
                f"is not an AWS credentials file: line {number} comes before any [profile] header",
                field="secretRef",
            )
        setting = key.strip().lower()
        if setting in section:
            # Only a setting AWS defines is named: what precedes a line's `=` or `:` may be a pasted key.
            named = setting if setting in _KEY_SETTINGS else "a setting"
            raise CredentialsFileError(
                f"is not an AWS credentials file: {named} is set twice (line {number})", field="secretRef"
            )
        section[setting] = value.strip()
    return profiles
