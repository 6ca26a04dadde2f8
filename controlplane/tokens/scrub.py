r"""Secrets taken out of what a token endpoint's failure says, since a provider may repeat what it was sent.

A secret is looked for as it was given and as the mint sent it: form-encoded (a form body's value, a URL's
part) and inside the Basic credential of an ``Authorization`` header (the mint adds the header's base64 to
the secrets, since the secret's own base64 depends on what precedes it in the pair). A provider may also
repeat it inside a JSON text in its words (the request it refused, quoted), or the words may be a Python
``repr`` (a list where a string was expected): then the secret is backslash-escaped (``\"``, ``\\``, ``\/``,
``\n``, ``\u00e9`` or ``\u00E9``, a surrogate pair, ``\u0026`` for ``&`` as Go writes it, ``\xe9``), in any
mix encoders choose. So each form is also looked for in the message with those escapes read (up to
``_ESCAPE_LEVELS`` times, for JSON quoted inside JSON), and what it covers there is scrubbed where it stands
in the message. One secret can hold another or overlap it (a client secret and a token that repeats it), so
every occurrence of every form is found in the original text first and each run of overlapping occurrences
is replaced once: replacing them one secret at a time would leave the rest of a longer secret after a
shorter one's marker.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from typing import Final
from urllib.parse import quote, quote_plus

from controlplane.redaction import REDACTED

_ESCAPE: Final = re.compile(
    r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair: one character
    r"|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|U[0-9a-fA-F]{8}|[\"'\\/bfnrt])"
)
"""A JSON string's escapes and a Python ``repr``'s."""
_SHORT_ESCAPES: Final = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE_LEVELS: Final = 3


def scrubbed(message: str, *, secrets: Iterable[str]) -> str:
    """``message`` with every run of text covered by an occurrence of a secret, in any form the mint sends
    one, escaped or not, replaced by ``REDACTED``."""
    forms = {form for secret in secrets if secret for form in _sent_forms(secret)}
    spans = [span for form in forms for span in _occurrences(message, form)]
    # Where each character of the text read stands in the message: built from the first escape found on (a
    # message without one, most, costs no list as long as the message).
    read, starts = message, None
    for _ in range(_ESCAPE_LEVELS):
        read, level_starts = _escapes_read(read)
        if level_starts is None:
            break
        starts = level_starts if starts is None else [starts[at] for at in level_starts]
        spans += [(starts[start], starts[end]) for form in forms for start, end in _occurrences(read, form)]
    pieces: list[str] = []
    shown_up_to = 0
    for start, end in _merged(spans):
        pieces += (message[shown_up_to:start], REDACTED)
        shown_up_to = end
    pieces.append(message[shown_up_to:])
    return "".join(pieces)


def _sent_forms(secret: str) -> tuple[str, ...]:
    """``secret`` as given, form-encoded (``quote_plus``, a form body's) and percent-encoded (``quote``, a URL
    part's, with and without ``/`` kept)."""
    return (secret, quote_plus(secret), quote(secret, safe=""), quote(secret))


def _escapes_read(text: str) -> tuple[str, list[int] | None]:
    """``text`` with its escapes read, and where each of its characters starts in ``text`` (and one more:
    the end); None when ``text`` holds no escape."""
    characters: list[str] = []
    starts: list[int] = []
    shown_up_to = 0
    for escape in _ESCAPE.finditer(text):
        characters.append(text[shown_up_to : escape.start()])
        starts += range(shown_up_to, escape.start())
        characters.append(_character(escape.group()))
        starts.append(escape.start())
        shown_up_to = escape.end()
    if not characters:
        return text, None
    characters.append(text[shown_up_to:])
    starts += range(shown_up_to, len(text) + 1)
    return "".join(characters), starts


def _character(escape: str) -> str:
    """The one character ``escape`` stands for."""
    kind = escape[1]
    if kind in "uxU":
        code = int(escape[2:6] if len(escape) == 12 else escape[2:], 16)
        if len(escape) == 12:  # a surrogate pair
            code = 0x10000 + ((code - 0xD800) << 10) + (int(escape[8:], 16) - 0xDC00)
        return chr(code) if code <= sys.maxunicode else "\N{REPLACEMENT CHARACTER}"
    return _SHORT_ESCAPES.get(kind, kind)


def _occurrences(message: str, form: str) -> Iterator[tuple[int, int]]:
    """Where ``form`` occurs in ``message``, overlapping occurrences included."""
    start = message.find(form)
    while start != -1:
        yield start, start + len(form)
        start = message.find(form, start + 1)


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` in order, each run of overlapping or touching ones made one span."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
