"""The public listeners' route configurations as served: serialised a route at a time, unchanged routes kept.

At 5,000 routes a route configuration is megabytes of one message; building it and serialising it whole
(``route.route_configuration``, then ``SerializeToString``) runs thousands of routes through Python on every
change, and the serialising is one C call that holds the GIL for 8-13 ms, while the event loop serving the
xDS streams waits. Here each route is serialised on its own and its bytes are kept while its IR node is
unchanged; each virtual host's bytes likewise, while the whole virtual host is unchanged. The configuration's
bytes are then joined from those pieces (``wire``): a change serialises the routes it changed, and no single
C call handles more than one route or one join of finished bytes. The bytes are the very ones
``route_configuration(listener).SerializeToString(deterministic=True)`` gives (tests/test_route_bytes.py).
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import Any, NamedTuple

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from controlplane import ir
from controlplane.heap import release_gradually
from controlplane.xds.content import Serialized
from controlplane.xds.translator.route import (
    direct_body_size,
    fill_route,
    fill_virtual_host_shell,
    leading_routes,
    route_configuration_shell,
)
from controlplane.xds.wire import length_delimited, with_repeated

_VIRTUAL_HOSTS = route_pb2.RouteConfiguration.VIRTUAL_HOSTS_FIELD_NUMBER
_ROUTES = rc.VirtualHost.ROUTES_FIELD_NUMBER


class _Host(NamedTuple):
    """One virtual host as last serialised."""

    node: ir.VirtualHost
    record: bytes
    """Its ``virtual_hosts`` record in the route configuration."""
    routes: dict[ir.Route, bytes]
    """Each of its routes' ``routes`` record."""
    direct_bodies: dict[ir.Route, int]
    """Its routes that answer themselves, by ``direct_body_size`` (few: the configuration's limit must fit
    the longest, found without going through every route again)."""


class _Config(NamedTuple):
    """One route configuration's virtual hosts as last serialised, by name."""

    checks_body: bool
    hosts: dict[str, _Host]


class RouteConfigurationBytes:
    """``route_configuration`` for a sequence of translations, serialised (see the module docstring). One
    instance per ``ReusingTranslator``: it keeps the pieces of the configurations that translator serves."""

    def __init__(self) -> None:
        self._configs: dict[str, _Config] = {}
        """By route configuration name: what the last call for it serialised."""

    def __call__(self, listener: ir.HttpListener) -> Serialized:
        checks_body = listener.reads_body
        before = self._configs.get(listener.route_config)
        known = before.hosts if before is not None and before.checks_body == checks_body else {}
        hosts: dict[str, _Host] = {}
        records = []
        for vhost in listener.virtual_hosts:
            host = known.get(vhost.name)
            if host is None or (host.node is not vhost and host.node != vhost):
                host = _serialised_host(vhost, checks_body=checks_body, before=host)
            hosts[vhost.name] = host
            records.append(host.record)
        self._configs[listener.route_config] = _Config(checks_body, hosts)
        longest = max((size for host in hosts.values() for size in host.direct_bodies.values()), default=0)
        shell = route_configuration_shell(listener, longest_direct_body=longest).SerializeToString(
            deterministic=True
        )
        return Serialized(listener.route_config, with_repeated(shell, _VIRTUAL_HOSTS, records))

    def keep_only(self, names: Collection[str]) -> None:
        """Forgets the configurations not named in ``names`` (those of listeners that are gone)."""
        for name in [name for name in self._configs if name not in names]:
            self._release(self._configs.pop(name))

    def release(self) -> None:
        """Forgets everything, a route at a time (``heap.release_gradually``)."""
        while self._configs:
            self._release(self._configs.popitem()[1])

    @staticmethod
    def _release(config: _Config) -> None:
        release_gradually(*(host.routes for host in config.hosts.values()))


def _serialised_host(vhost: ir.VirtualHost, *, checks_body: bool, before: _Host | None) -> _Host:
    """``vhost`` serialised; routes ``before`` (the host as last serialised) holds are not serialised
    again."""
    known = before.routes if before is not None else {}
    records = list(_leading_records(checks_body=checks_body))
    routes: dict[ir.Route, bytes] = {}
    direct_bodies: dict[ir.Route, int] = {}
    for route in vhost.routes:
        record = known.get(route)
        if record is None:
            message: Any = rc.Route()
            fill_route(message, route, reads_model=checks_body)
            record = length_delimited(_ROUTES, message.SerializeToString(deterministic=True))
            if size := direct_body_size(route):
                direct_bodies[route] = size
        routes[route] = record
        records.append(record)
    if before is not None:
        direct_bodies.update((route, size) for route, size in before.direct_bodies.items() if route in routes)
    shell: Any = rc.VirtualHost()
    fill_virtual_host_shell(shell, vhost)
    body = with_repeated(shell.SerializeToString(deterministic=True), _ROUTES, records)
    return _Host(vhost, length_delimited(_VIRTUAL_HOSTS, body), routes, direct_bodies)


@cache
def _leading_records(*, checks_body: bool) -> tuple[bytes, ...]:
    return tuple(
        length_delimited(_ROUTES, route.SerializeToString(deterministic=True))
        for route in leading_routes(checks_body=checks_body)
    )
