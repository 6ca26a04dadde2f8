"""The terminal router filter, shared by public and internal listeners."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm

from controlplane.xds.translator.messages import pack


def router_filter(*, suppress_envoy_headers: bool = False, upstream_filters: Sequence[Any] = ()) -> Any:
    """``upstream_filters`` run on every attempt after the route's rewrites (the full chain, codec last)."""
    router = router_pb2.Router(
        suppress_envoy_headers=suppress_envoy_headers, upstream_http_filters=list(upstream_filters)
    )
    return hcm.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router))
