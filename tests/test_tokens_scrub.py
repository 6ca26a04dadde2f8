"""Scrubbing secrets out of a token endpoint's failure: secrets that hold or overlap one another leave none
of their text, and a secret shows in none of the forms the mint sends it in; a long message without escapes
costs no more than a copy of it."""

from __future__ import annotations

import tracemalloc

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


SECRET_TO_ESCAPE = 'it\'s "é" \\ 😀'


@pytest.mark.parametrize(
    "escaped",
    [
        '"it\'s \\"\\u00e9\\" \\\\ \\ud83d\\ude00"',  # JSON, ASCII only
        '"it\'s \\"\\u00E9\\" \\\\ \\uD83D\\uDE00"',  # JSON, upper-case hex
        '"it\'s \\"é\\" \\\\ 😀"',  # JSON, UTF-8
        repr([SECRET_TO_ESCAPE]),  # what str() of a list the provider sent as its error says
        "'it\\'s \"\\xe9\" \\\\ \\U0001f600'",  # a repr of ASCII-only text
    ],
    ids=["json-ascii", "json-upper-hex", "json-utf-8", "repr", "repr-ascii"],
)
def test_a_secret_is_scrubbed_backslash_escaped_in_any_mix(escaped: str) -> None:
    message = f"refused: {escaped}, try again"
    assert SECRET_TO_ESCAPE not in message
    scrubbed_message = scrubbed(message, secrets=[SECRET_TO_ESCAPE])
    middle = scrubbed_message.removeprefix("refused: ").removesuffix(", try again")
    assert middle != scrubbed_message
    assert REDACTED in middle
    assert set(middle.replace(REDACTED, "")) <= set("\"'[]")  # the quotes around it, nothing of it


def test_escapes_read_are_only_where_a_secret_shows() -> None:
    message = 'path C:\\new\\table, code \\UFFFFFFFF, \\"quoted\\" and s\\u0065cret'
    assert scrubbed(message, secrets=["secret"]) == (
        f'path C:\\new\\table, code \\UFFFFFFFF, \\"quoted\\" and {REDACTED}'
    )


def test_a_long_message_without_escapes_costs_about_a_copy_of_it() -> None:
    """What maps the text read back to the message is built only once an escape is found (it was a list
    of an int per character: 40 MB for a 1 MB message)."""
    message = "x" * 1_000_000 + " secret"
    tracemalloc.start()
    try:
        scrubbed_message = scrubbed(message, secrets=["secret"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scrubbed_message.endswith(f" {REDACTED}")
    assert peak < 3 * len(message)
