"""Scrubbing secrets out of a token endpoint's failure: secrets that hold or overlap one another leave none
of their text, and a secret shows in none of the forms the mint sends it in."""

from __future__ import annotations

import pytest

from controlplane.redaction import REDACTED
from controlplane.tokens.scrub import scrubbed


@pytest.mark.parametrize(
    ("message", "secrets", "expected"),
    [
        ("echo abcdef", ["abc", "abcdef"], f"echo {REDACTED}"),
        ("echo abcdef", ["abcdef", "abc"], f"echo {REDACTED}"),
        ("echo abcdefgh!", ["abcdef", "defgh"], f"echo {REDACTED}!"),
        ("echo abcabc, abc", ["abc"], f"echo {REDACTED}, {REDACTED}"),
        ("echo aaaa", ["aaa"], f"echo {REDACTED}"),
        ("nothing to hide", ["", "absent"], "nothing to hide"),
    ],
    ids=["contained", "contained-longer-first", "overlapping", "touching", "overlapping-itself", "none"],
)
def test_every_run_covered_by_a_secret_becomes_one_marker(
    message: str, secrets: list[str], expected: str
) -> None:
    assert scrubbed(message, secrets=secrets) == expected


def test_a_secret_is_scrubbed_form_encoded_and_percent_encoded() -> None:
    secret = "s3cret+/ &=%"
    form_encoded, percent_encoded, slash_kept = (
        "s3cret%2B%2F+%26%3D%25",
        "s3cret%2B%2F%20%26%3D%25",
        "s3cret%2B/%20%26%3D%25",
    )
    message = f"body client_secret={form_encoded}, path {percent_encoded}, kept {slash_kept}"
    assert (
        scrubbed(message, secrets=[secret])
        == f"body client_secret={REDACTED}, path {REDACTED}, kept {REDACTED}"
    )
