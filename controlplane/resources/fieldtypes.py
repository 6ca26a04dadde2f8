"""Scalar field types shared by the Kubernetes, Gateway API and AI Gateway models.

Durations are parsed once here (Gateway API GEP-2257 format, used by AI Gateway and Envoy Gateway alike) so
the translator works with ``timedelta`` and never re-parses strings. The Gateway API's named string types
(group, kind, object name, namespace, hostname, header name) carry their upstream limits here: the file
source checks them through pydantic and our CRDs (``controlplane.crdgen``) carry the same numbers, so a
manifest the API server would refuse is refused in a folder of files too.
Facts: kubernetes-sigs/gateway-api ``apis/v1/shared_types.go`` and ``httproute_types.go``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

# GEP-2257: up to four <1..5 digits><unit> groups, units h, m, s, ms; "0s" is valid.
_DURATION = re.compile(r"^(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT = {
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(0, 0, 0, 1),
}


def parse_duration(text: str) -> timedelta:
    """Parses a Gateway API duration such as ``60s``, ``1m30s`` or ``500ms``; raises ValueError otherwise."""
    if not _DURATION.match(text):
        raise ValueError(f"invalid duration {text!r}")
    return sum(
        (int(count) * _UNIT[unit] for count, unit in _DURATION_PART.findall(text)),
        start=timedelta(0),
    )


def format_duration(value: timedelta) -> str:
    """The inverse of ``parse_duration``, in the shortest form (``90s`` becomes ``1m30s``)."""
    total_ms = int(value / timedelta(milliseconds=1))
    if total_ms == 0:
        return "0s"
    out = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)):
        count, total_ms = divmod(total_ms, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def _duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("duration_type", "must be a duration string such as 60s, 1m30s or 500ms")
    try:
        return parse_duration(value)
    except ValueError:
        raise PydanticCustomError(
            "duration_format",
            "invalid duration '{value}': expected up to four <number><h|m|s|ms> groups, e.g. 1m30s",
            {"value": value},
        ) from None


def _int_or_string(value: Any) -> int | str:
    # A plain validator (not ``int | str``) keeps union member names out of error paths.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PydanticCustomError("int_or_string", "must be a port number or a port name")
    if isinstance(value, str) and not value:
        raise PydanticCustomError("int_or_string", "must be a port number or a port name")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern}),
]
"""A Gateway API duration string, held as ``timedelta``."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise PydanticCustomError("duration_positive", "must be longer than 0s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A duration Envoy needs above zero (an interval, a back-off); the upstream CRDs do not say so."""

IntOrString = Annotated[
    int | str, PlainValidator(_int_or_string), WithJsonSchema({"x-kubernetes-int-or-string": True})
]
"""Kubernetes IntOrString (a Service ``targetPort``: a number or a container port name)."""


INT32_MAX = 2**31 - 1
"""Upstream's ``int32`` fields: the API server does not range-check the format; a Go client (and Envoy's
protobuf fields) refuse more."""
UINT32_MAX = 2**32 - 1
"""Upstream's ``uint32`` fields, likewise."""


# --- Gateway API's named strings ----------------------------------------------------------------------

DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"

Group = Annotated[str, Field(max_length=253, pattern=rf"^$|^{DNS_SUBDOMAIN}$")]
"""An API group; empty is the core group."""
_KIND = r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?"
Kind = Annotated[str, Field(min_length=1, max_length=63, pattern=rf"^{_KIND}$")]
KindOrEmpty = Annotated[str, Field(max_length=63, pattern=rf"^$|^{_KIND}$")]
"""A kind where empty means the field's default (AI Gateway's backendRef)."""
ObjectName = Annotated[str, Field(min_length=1, max_length=253)]
Namespace = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
"""A DNS label (RFC 1123)."""
SectionName = Annotated[str, Field(min_length=1, max_length=253, pattern=rf"^{DNS_SUBDOMAIN}$")]
Hostname = Annotated[str, Field(min_length=1, max_length=253, pattern=rf"^(\*\.)?{DNS_SUBDOMAIN}$")]
"""A DNS name, optionally with one leading ``*.`` label."""
HeaderName = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$")]
"""An HTTP header name (an RFC 7230 token)."""


def _envoy_header_value(value: str) -> str:
    # Envoy refuses these in any header value it is configured with (a NACK naming no object).
    if any(char in value for char in "\x00\r\n"):
        raise PydanticCustomError("header_value", "must not contain NUL, CR or LF (not allowed in a header)")
    return value


def _envoy_header_name(value: str) -> str:
    if not _HEADER_TOKEN.fullmatch(value):
        raise PydanticCustomError("header_name", "must be an HTTP header name (an RFC 7230 token)")
    return value


def validate_absolute_path(value: str) -> str:
    """Gateway API's rules for a path (HTTPPathMatch, HTTPPathModifier), which Envoy needs too."""
    if not _URL_PATH.fullmatch(value):
        raise PydanticCustomError(
            "url_path", "must be an absolute path of URL path characters (others %-encoded), e.g. /v1/chat"
        )
    if any(part in value for part in _NOT_IN_PATHS) or value.endswith(("/..", "/.")):
        raise PydanticCustomError("url_path", "must not contain //, /./, /../ or %2f, nor end in /. or /..")
    return value


_NOT_IN_PATHS = ("//", "/./", "/../", "%2f", "%2F")  # "#" is not a path character at all
_HEADER_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+")
_URL_PATH = re.compile(r"/(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*")

HeaderValue = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_envoy_header_value)]
"""Also refused (by the model only, as upstream's CRD has no such rule): what Envoy refuses in a header."""
ModelName = Annotated[str, AfterValidator(_envoy_header_value)]
"""A model name, which travels in the ``x-ai-eg-model`` header too."""
HeaderNameToRemove = Annotated[str, AfterValidator(_envoy_header_name)]
"""A header name in a ``remove`` list (upstream's CRD checks nothing; Envoy refuses a non-token)."""
AbsolutePath = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(validate_absolute_path)]
PreciseHostname = Annotated[str, Field(min_length=1, max_length=253, pattern=rf"^{DNS_SUBDOMAIN}$")]
