"""The one marker that stands for a credential value wherever output would show one, and credential values
taken out of text Envoy wrote.

A proxy's refusal (an xDS NACK) quotes the refused message in protobuf text form: ``Proto constraint
validation failed (...): <the message, nested Anys expanded>``, as Envoy 1.40 writes it, with a hop's AWS
keys and an SDS secret's value in the clear. That text goes to the log, ``proxy-status``, ``/status`` and
the objects' status conditions in the cluster, so the values of the fields that carry credentials are
replaced first.
"""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "[redacted]"

_CREDENTIAL_FIELDS: Final = (
    "access_key_id",
    "secret_access_key",
    "session_token",
    "inline_string",
    "inline_bytes",
    "accessKeyId",
    "secretAccessKey",
    "sessionToken",
    "inlineString",
    "inlineBytes",
)
"""Where Envoy's messages hold a credential: an ``inline_credential``'s keys, a ``DataSource`` (an SDS
secret's value); text form and JSON (proto or camelCase names)."""
_QUOTED_CREDENTIAL: Final = re.compile(
    rf'(?P<field>\b(?:{"|".join(_CREDENTIAL_FIELDS)})"?\s*:\s*)'
    # A quoted value, escapes included; or, when the text ends inside one (a message cut short), the rest.
    r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)',
    re.DOTALL,
)


def redacted_envoy_text(text: str) -> str:
    """``text`` with every quoted value of a field that carries a credential replaced by ``REDACTED``."""
    return _QUOTED_CREDENTIAL.sub(lambda found: f'{found["field"]}"{REDACTED}"', text)
