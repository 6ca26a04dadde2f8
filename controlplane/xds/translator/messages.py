"""Constructors every Envoy message builder needs: Any packing, durations, the ADS config source, a header
set whatever the request or response already carried.

Shared by the translator's builders and the xDS layer's own test and benchmark builders
(``tests.xds_builders``), so there is one way to say "over ADS" or "N seconds".
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2, config_source_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message


def pack(message: Message) -> Any:
    # Deterministic: a packed message with a map (a Struct's fields, say) otherwise serialises in hash
    # order, which differs between processes, and the same input would get another version in each replica.
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return packed


_NANOS_PER_SECOND = 1_000_000_000


def seconds(value: float) -> duration_pb2.Duration:
    # Split here rather than through ``FromNanoseconds``: its normalisation costs several times the
    # construction, and a full translation makes one per cluster. Both parts carry the sign, as protobuf says.
    whole, nanos = divmod(abs(round(value * 1e9)), _NANOS_PER_SECOND)
    sign = -1 if value < 0 else 1
    return duration_pb2.Duration(seconds=sign * whole, nanos=sign * nanos)


_ADS_SOURCE = config_source_pb2.ConfigSource(
    ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.ApiVersion.V3
)


def ads_source() -> Any:
    """Every dynamic reference (RDS, EDS, SDS) is fetched over the same ADS stream as LDS/CDS."""
    # A copy of one prepared message: building it field by field costs several times as much.
    source = config_source_pb2.ConfigSource()
    source.CopyFrom(_ADS_SOURCE)
    return source


def overwritten_header(name: str, value_format: str, *, keep_empty: bool = False) -> Any:
    """``name`` set to ``value_format`` (an Envoy format string), replacing any value it had; with
    ``keep_empty``, set even when the format comes out empty."""
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, value=value_format),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        keep_empty_value=keep_empty,
    )
