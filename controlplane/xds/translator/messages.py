"""Constructors every Envoy message builder needs: Any packing, durations, the ADS config source.

Shared by the translator's builders and the xDS layer's own test and benchmark builders
(``tests.xds_builders``), so there is one way to say "over ADS" or "N seconds".
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import config_source_pb2
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
