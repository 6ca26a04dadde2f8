"""The route configurations served are assembled from separately serialised pieces (``route_bytes``,
``wire``): they must be byte for byte what serialising the whole message gives, for every golden
configuration and along a sequence of edits that reuses pieces, or Envoy and the versions would differ."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from hypothesis import given
from hypothesis import strategies as st

from controlplane import ir
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import ROUTE
from controlplane.xds.translator import route_bytes
from controlplane.xds.translator.route import fill_route, route_configuration, route_configuration_references
from controlplane.xds.translator.route_bytes import RouteConfigurationBytes
from controlplane.xds.wire import length_delimited, with_repeated
from tests.test_xds_declared_references import CASES, _infra


def _whole(listener: ir.HttpListener) -> bytes:
    serialized: bytes = route_configuration(listener).SerializeToString(deterministic=True)
    return serialized


def _golden_listeners() -> list[ir.HttpListener]:
    return [listener for case in CASES for listener in _infra(case).listeners]


@pytest.mark.parametrize("case", CASES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_golden_route_configuration_is_assembled_to_its_serialisation(case: Path) -> None:
    assembled = RouteConfigurationBytes()
    for listener in _infra(case).listeners:
        content = assembled(listener)
        assert content.name == listener.route_config
        assert content.data == _whole(listener)


def test_the_goldens_hold_what_the_pieces_vary_by() -> None:
    """Otherwise the comparison above would prove little: listeners with and without the body check, header
    matches, model overrides (a map in each route), direct responses (several virtual hosts: below)."""
    listeners = _golden_listeners()
    routes = [route for listener in listeners for vhost in listener.virtual_hosts for route in vhost.routes]
    assert {listener.reads_body for listener in listeners} == {True, False}
    assert any(route.headers for route in routes)
    assert any(isinstance(route.action, ir.DirectResponse) for route in routes)
    assert any(isinstance(route.action, ir.Forward) and route.action.model_override for route in routes)


def _edits() -> list[Callable[[ir.HttpListener], ir.HttpListener]]:
    """Edits of a listener with several virtual hosts, each a step the next one starts from."""

    def hosts(
        listener: ir.HttpListener, change: Callable[[ir.VirtualHost], ir.VirtualHost]
    ) -> ir.HttpListener:
        return replace(listener, virtual_hosts=tuple(change(vhost) for vhost in listener.virtual_hosts))

    def first_route(change: Callable[[ir.Route], ir.Route]) -> Callable[[ir.VirtualHost], ir.VirtualHost]:
        return lambda vhost: replace(vhost, routes=(change(vhost.routes[0]), *vhost.routes[1:]))

    def retimed(route: ir.Route) -> ir.Route:
        action = route.action
        if isinstance(action, ir.Forward):
            return replace(route, action=replace(action, timeout_seconds=action.timeout_seconds + 7))
        return replace(route, name=route.name + "-renamed")

    long_answer = ir.DirectResponse(status=200, message="m" * 5000)
    short_answer = ir.DirectResponse(status=200, message="short")
    return [
        lambda listener: listener,
        lambda listener: hosts(listener, first_route(retimed)),
        lambda listener: hosts(
            listener, lambda vhost: replace(vhost, routes=vhost.routes[1:] or vhost.routes)
        ),
        lambda listener: hosts(
            listener, lambda vhost: replace(vhost, domains=(*vhost.domains, "extra.example"))
        ),
        # A body longer than Envoy's default: a field numbered after the virtual hosts joins the shell.
        lambda listener: hosts(listener, first_route(lambda route: replace(route, action=long_answer))),
        lambda listener: replace(
            listener,
            virtual_hosts=(*listener.virtual_hosts, replace(listener.virtual_hosts[0], name="added")),
        ),
        # Every other route changes: the long bodies, kept, still set the limit.
        lambda listener: hosts(
            listener, lambda vhost: replace(vhost, routes=(vhost.routes[0], *map(retimed, vhost.routes[1:])))
        ),
        # Only the first virtual host changes: the long bodies of the others, kept, still set the limit.
        lambda listener: replace(
            listener,
            virtual_hosts=(
                replace(listener.virtual_hosts[0], domains=("only.example",)),
                *listener.virtual_hosts[1:],
            ),
        ),
        # No long body left: the limit is Envoy's default again.
        lambda listener: hosts(listener, first_route(lambda route: replace(route, action=short_answer))),
        # Every route answered directly, none matching the model: the body check goes, every route changes.
        lambda listener: hosts(
            listener,
            lambda vhost: replace(
                vhost, routes=tuple(replace(r, headers=(), action=long_answer) for r in vhost.routes)
            ),
        ),
        lambda listener: replace(listener, virtual_hosts=listener.virtual_hosts[1:]),
    ]


def _many_hosts() -> ir.HttpListener:
    """The golden listener with the most routes, its virtual hosts repeated under other names."""
    listener = max(
        _golden_listeners(), key=lambda found: sum(len(vhost.routes) for vhost in found.virtual_hosts)
    )
    copies = (
        replace(vhost, name=f"{vhost.name}-{copy}") for copy in range(3) for vhost in listener.virtual_hosts
    )
    return replace(listener, virtual_hosts=(*listener.virtual_hosts, *copies))


def test_pieces_kept_from_earlier_calls_assemble_each_edit_to_its_serialisation() -> None:
    assembled = RouteConfigurationBytes()
    listener = _many_hosts()
    assert listener.reads_body
    for edit in _edits():
        listener = edit(listener)
        assert assembled(listener).data == _whole(listener)
        assert RouteConfigurationBytes()(listener).data == _whole(listener)
    assert not listener.reads_body


def test_a_changed_route_is_the_only_one_serialised_again(monkeypatch: pytest.MonkeyPatch) -> None:
    assembled = RouteConfigurationBytes()
    listener = _many_hosts()
    assembled(listener)
    filled: list[ir.Route] = []

    def counting(message: Any, route: ir.Route, *, reads_model: bool) -> None:
        filled.append(route)
        fill_route(message, route, reads_model=reads_model)

    monkeypatch.setattr(route_bytes, "fill_route", counting)
    changed = _edits()[1](listener)
    assert assembled(changed).data == _whole(changed)
    first_routes = [vhost.routes[0] for vhost in changed.virtual_hosts]
    assert filled == first_routes
    filled.clear()
    # The same listener again: nothing is serialised again.
    assert assembled(changed).data == _whole(changed)
    assert filled == []


def test_listeners_gone_are_forgotten() -> None:
    assembled = RouteConfigurationBytes()
    listeners = _golden_listeners()
    for listener in listeners:
        assembled(listener)
    assembled.keep_only({listeners[0].route_config})
    assert assembled(listeners[0]).data == _whole(listeners[0])
    assembled.release()
    assert assembled(listeners[-1]).data == _whole(listeners[-1])


def test_an_assembled_route_configuration_is_the_resource_the_message_gives() -> None:
    listener = _many_hosts()
    references = route_configuration_references(listener)
    built = XdsResource.build(ROUTE, route_configuration(listener), references=references)
    assert XdsResource.build(ROUTE, RouteConfigurationBytes()(listener), references=references) is built
    with pytest.raises(ValueError, match="declared references"):
        XdsResource.build(ROUTE, RouteConfigurationBytes()(listener))


_names = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)


@given(
    name=_names,
    domains=st.lists(_names, max_size=3),
    routes=st.lists(_names, max_size=5),
    headers=st.lists(st.tuples(_names, _names), max_size=3),
    attempt_count=st.booleans(),
)
def test_a_repeated_field_joins_the_shell_where_its_number_puts_it(
    name: str, domains: list[str], routes: list[str], headers: list[tuple[str, str]], attempt_count: bool
) -> None:
    """A virtual host has fields numbered below its routes (name, domains) and above them (headers to add,
    the attempt count), each of which the shell may or may not hold; lengths up to multi-byte varints."""
    whole = rc.VirtualHost(
        name=name,
        domains=domains,
        routes=[rc.Route(name=route) for route in routes],
        request_headers_to_add=[
            base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value))
            for key, value in headers
        ],
        include_request_attempt_count=attempt_count,
    )
    shell = rc.VirtualHost()
    shell.CopyFrom(whole)
    del shell.routes[:]
    records = [
        length_delimited(rc.VirtualHost.ROUTES_FIELD_NUMBER, route.SerializeToString(deterministic=True))
        for route in whole.routes
    ]
    spliced = with_repeated(shell.SerializeToString(), rc.VirtualHost.ROUTES_FIELD_NUMBER, records)
    assert spliced == whole.SerializeToString(deterministic=True)


def test_a_shell_holding_the_field_is_refused() -> None:
    host = rc.VirtualHost(name="h", routes=[rc.Route(name="r")]).SerializeToString()
    with pytest.raises(ValueError, match="already holds field"):
        with_repeated(host, rc.VirtualHost.ROUTES_FIELD_NUMBER, [])
