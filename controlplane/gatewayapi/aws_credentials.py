"""An AWS shared credentials file (a BackendSecurityPolicy's ``awsCredentials.credentialsFile``) -> one key.

The Secret holds the INI file AWS tools write (``[profile]`` sections with ``aws_access_key_id``,
``aws_secret_access_key`` and, for temporary keys, ``aws_session_token``); the policy picks one profile.
Only that profile's keys go to Envoy. Errors name the profile, the missing setting or the line number, never a
line's text: the file is a secret.
"""

from __future__ import annotations

import configparser
from typing import Final

from controlplane import ir

BEDROCK_SIGNING_SERVICE: Final = "bedrock"
"""The SigV4 service name of Bedrock's runtime endpoints (``bedrock-runtime.<region>.amazonaws.com``)."""

_ACCESS_KEY_ID: Final = "aws_access_key_id"
_SECRET_ACCESS_KEY: Final = "aws_secret_access_key"  # noqa: S105 - the name of a setting, not a secret
_SESSION_TOKEN: Final = "aws_session_token"  # noqa: S105 - the name of a setting, not a secret


class CredentialsFileError(ValueError):
    """Why a credentials file gives no key; the message never quotes the file.

    ``field`` is the part of ``credentialsFile`` at fault: ``secretRef`` (the file) or ``profile``.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def profile_keys(text: str, *, profile: str) -> ir.AwsKeys:
    """The keys of ``profile`` in the credentials file ``text``."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00no-defaults")
    try:
        parser.read_string(text)
    except configparser.MissingSectionHeaderError as error:
        raise CredentialsFileError(
            f"is not an AWS credentials file: line {error.lineno} comes before any [profile] header",
            field="secretRef",
        ) from None
    except configparser.ParsingError as error:
        lines = ", ".join(str(line) for line, _ in error.errors)
        raise CredentialsFileError(
            f"is not an AWS credentials file: cannot parse line {lines}", field="secretRef"
        ) from None
    except configparser.Error as error:
        # Duplicate sections or settings: the exception names the section and setting, not their values.
        raise CredentialsFileError(
            f"is not an AWS credentials file: {type(error).__name__}", field="secretRef"
        ) from None
    if not parser.has_section(profile):
        found = ", ".join(parser.sections()) or "none"
        raise CredentialsFileError(f"has no profile [{profile}] (profiles: {found})", field="profile")
    section = parser[profile]
    missing = [name for name in (_ACCESS_KEY_ID, _SECRET_ACCESS_KEY) if not section.get(name, "").strip()]
    if missing:
        raise CredentialsFileError(f"profile [{profile}] has no {' or '.join(missing)}", field="profile")
    return ir.AwsKeys(
        access_key_id=section[_ACCESS_KEY_ID].strip(),
        secret_access_key=section[_SECRET_ACCESS_KEY].strip(),
        session_token=section.get(_SESSION_TOKEN, "").strip(),
    )
