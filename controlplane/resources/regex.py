"""Regular expressions checked as Envoy will compile them: with RE2, under Envoy's program size limit.

A header or path match of type ``RegularExpression`` becomes an Envoy ``safe_regex``. Python's ``re`` accepts
a different language (backreferences, lookarounds) and would let through patterns Envoy refuses, which
then arrive as a NACK that names no object. Compiling with the same RE2 library (``google-re2``) and the
same limit makes the model refuse them instead, with the field named, in file and Kubernetes mode alike.
Facts: envoyproxy/envoy ``source/common/common/regex.cc`` (RE2 with ``Quiet`` options; program size above
the runtime ``re2.max_program_size.error_level``, 100 by default, is refused).
"""

from __future__ import annotations

from re2 import _re2  # the library itself: the ``re2`` module on top rewrites patterns Python-style

ENVOY_MAX_PROGRAM_SIZE = 100
"""Envoy's default ``re2.max_program_size.error_level``: a larger compiled regex is refused."""


def _options() -> _re2.RE2.Options:
    options = _re2.RE2.Options()
    options.log_errors = False  # RE2::Quiet, as Envoy compiles; errors come back through error()
    return options


_OPTIONS = _options()


def re2_problem(pattern: str) -> str | None:
    """Why Envoy would refuse ``pattern`` as a ``safe_regex``, or None when it compiles within the limit."""
    compiled = _re2.RE2(pattern.encode("utf-8", errors="surrogatepass"), _OPTIONS)
    if not compiled.ok():
        return f"not a valid RE2 regular expression: {compiled.error().decode('utf-8', 'replace')}"
    size = compiled.ProgramSize()
    if size > ENVOY_MAX_PROGRAM_SIZE:
        return (
            f"regular expression too complex for Envoy: RE2 program size {size} is over its limit of "
            f"{ENVOY_MAX_PROGRAM_SIZE}"
        )
    return None
