"""Secrets taken out of what a token endpoint's failure says, since a provider may repeat what it was sent.

A secret is looked for as it was given and as the mint sent it: form-encoded (a form body's value, a URL's
part) and inside the Basic credential of an ``Authorization`` header (the mint adds the header's base64 to
the secrets, since the secret's own base64 depends on what precedes it in the pair). One secret can hold
another or overlap it (a client secret and a token that repeats it), so every occurrence of every form is
found in the original text first and each run of overlapping occurrences is replaced once: replacing them
one secret at a time would leave the rest of a longer secret after a shorter one's marker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import quote, quote_plus

from controlplane.redaction import REDACTED


def scrubbed(message: str, *, secrets: Iterable[str]) -> str:
    """``message`` with every run of text covered by an occurrence of a secret, in any form the mint sends
    one, replaced by ``REDACTED``."""
    forms = {form for secret in secrets if secret for form in _sent_forms(secret)}
    pieces: list[str] = []
    shown_up_to = 0
    for start, end in _merged(span for form in forms for span in _occurrences(message, form)):
        pieces += (message[shown_up_to:start], REDACTED)
        shown_up_to = end
    pieces.append(message[shown_up_to:])
    return "".join(pieces)


def _sent_forms(secret: str) -> tuple[str, ...]:
    """``secret`` as given, form-encoded (``quote_plus``, a form body's) and percent-encoded (``quote``, a URL
    part's, with and without ``/`` kept)."""
    return (secret, quote_plus(secret), quote(secret, safe=""), quote(secret))


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
