"""The one marker that stands for a credential value wherever output would show one, and credential values
taken out of text Envoy wrote.

A proxy's refusal (an xDS NACK) quotes the refused message in protobuf text form, with a hop's AWS keys and
an SDS secret's value in the clear. Envoy 1.40 writes, for a listener::

    Error adding/updating listener(s) NAME: goo.gle/debugstr  <the marker's word and spaces vary by run>
    <the refused message, nested Anys expanded, one field a line>
    : Proto constraint validation failed (<the validation error>)

That text goes to the log, ``proxy-status``, ``/status`` and the objects' status conditions in the cluster,
so the values of the fields that carry credentials are replaced first. Any quoted string can hold a field
name and quotes of its own (a policy's free-form ``region``, printed just before the keys), so the text is
read as a run of quoted strings from left to right, each one whole, and only a string that is a credential
field's value is replaced.

What that reading relies on: Envoy escapes every quote inside the message's strings, and no string spans a
line (neither text form nor JSON allows a raw newline in one), so a string ends at the end of its line at the
latest. A quote Envoy did not escape (in the listener's name, on the first line) can throw the reading off
on its own line only; Envoy 1.40 prints one field a line, so each credential field starts a line the reading
begins outside any string. A credential's value that is not closed on its line is replaced to the end of the
text: the text was cut short there, or is not laid out as expected.
"""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "[redacted]"
TRUNCATED: Final = "(truncated)"
"""Follows ``REDACTED`` when the text ended inside the value (Envoy cut the message short)."""

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
_NAMES: Final = "|".join(_CREDENTIAL_FIELDS)
_QUOTED_STRING: Final = re.compile(
    # A credential field's name (bare in text form, quoted in JSON) and colon, when the string follows one.
    rf'(?P<field>(?:\b(?:{_NAMES})|"(?:{_NAMES})")\s*:\s*)?'
    # A quoted string on one line, escapes included, possessive so that no input makes it backtrack.
    r'"(?:[^"\\\n]|\\[^\n])*+'
    # Its closing quote; or, not closed on its line, the rest of the text when it is a credential's value.
    r'(?:(?P<closed>")|\\?(?(field)[\s\S]*))',
)


def redacted_envoy_text(text: str) -> str:
    """``text`` with every quoted value of a field that carries a credential replaced by ``REDACTED``, and
    every other quoted string kept as it is."""
    return _QUOTED_STRING.sub(_redacted_if_credential, text)


def _redacted_if_credential(found: re.Match[str]) -> str:
    if found["field"] is None:
        return found[0]
    if found["closed"] is not None:
        return f'{found["field"]}"{REDACTED}"'
    return f'{found["field"]}"{REDACTED} {TRUNCATED}"'
