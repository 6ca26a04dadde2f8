"""Routes placed on a listener -> its virtual hosts and the listener itself, in Gateway API precedence.

``routes`` turns each AIGatewayRoute's rules into candidates; here the candidates of all routes attached to
one Envoy listener are merged, ordered (exact paths, then longer prefixes, then more
header matches, then older routes, then rule order) and de-duplicated, a rule whose match is identical to
an earlier one's losing as a conflict reported on its own route. Each step goes through
``TranslationMemo.kept``, so a virtual host or listener whose candidates are the same objects as last
translation is last translation's object: one changed route re-sorts only its own virtual hosts, and
Envoy resources built from unchanged ones are found by identity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from controlplane import ir
from controlplane.gatewayapi import costs
from controlplane.gatewayapi.listeners import ListenerBinder
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.gatewayapi.models import models_route
from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import AIGatewayRoute

NOT_FOUND_MESSAGE = (
    "No matching route found. It is likely because the model specified in your request is not configured "
    "in the Gateway."
)
CATCH_ALL = "route-not-found"
"""The name of the 404 route ending every virtual host (reserved: no rule may take it)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    rank: tuple[int, int, int]
    """Gateway API precedence before the route's age: path type, path length, header count."""
    position: tuple[int, int]
    """Rule and match index in the route: the last tie-breaks."""
    identity: tuple[object, ...]
    route: ir.Route
    owner: AIGatewayRoute
    field_path: str
    model: ir.ListedModel | None


Ranked = tuple[tuple[int, ...], Candidate]
"""A candidate and where it sorts: its rank, the route's place among all routes by age (set per translation:
a route added before it moves it), its position."""


def route_age(route: AIGatewayRoute) -> tuple[str, str, str]:
    """Gateway API tie-break: the oldest route wins, then namespace/name."""
    created = route.metadata.creation_timestamp
    return (str(created) if created is not None else "", route.namespace, route.name)


Placed = tuple[tuple[tuple[str, str], Candidate], ...]
"""A route's candidates, each with the (Envoy listener, domain) it goes to."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Every route's candidates by where they go (built again only when a route's candidates or the
    routes' order changed)."""

    by_host: dict[tuple[str, str], list[Ranked]]
    owners: dict[str, tuple[AIGatewayRoute, ...]]
    """Each Envoy listener's routes, oldest first: the routes whose costs it counts."""


def placement(placed: Iterable[Placed]) -> Placement:
    """``placed``: each route's candidates, oldest route first."""
    by_host: dict[tuple[str, str], list[Ranked]] = defaultdict(list)
    # Each route once per listener, in the order routes come: oldest first, without sorting them again.
    owners: dict[str, dict[int, AIGatewayRoute]] = defaultdict(dict)
    for route_order, candidates in enumerate(placed):
        for place, candidate in candidates:
            by_host[place].append(((*candidate.rank, route_order, *candidate.position), candidate))
            owners[place[0]][route_order] = candidate.owner
    return Placement(dict(by_host), {listener: tuple(found.values()) for listener, found in owners.items()})


def listeners(
    binder: ListenerBinder,
    placed: Placement,
    report: Report,
    listen_address: str,
    *,
    memo: TranslationMemo,
) -> tuple[ir.HttpListener, ...]:
    """The listeners of ``binder``'s slots, each with its virtual hosts (see the module docstring)."""
    by_host = placed.by_host
    by_listener: dict[str, list[ir.VirtualHost]] = defaultdict(list)
    wildcard_routes = {listener: by_host.get((listener, "*"), []) for listener, _ in by_host}
    for (listener, domain), candidates in sorted(by_host.items()):
        if domain != "*":
            # Routes without hostnames answer for every Host, including those other routes name.
            candidates = candidates + wildcard_routes[listener]
        by_listener[listener].append(
            memo.kept(
                ("virtual host", listener, domain),
                tuple(candidates),
                partial(_virtual_host, listener, domain, candidates, report),
            )
        )
    listeners: list[ir.HttpListener] = []
    for slot in sorted(
        {slot.envoy_listener: slot for slot in binder.slots}.values(), key=lambda s: s.envoy_listener
    ):
        hosts = tuple(
            by_listener.get(slot.envoy_listener) or [_virtual_host(slot.envoy_listener, "*", [], report)]
        )
        owners = placed.owners.get(slot.envoy_listener, ())
        token_costs = memo.kept(
            ("token costs", slot.envoy_listener), owners, partial(costs.listener_costs, owners, report)
        )
        build = partial(
            ir.HttpListener,
            name=slot.envoy_listener,
            address=listen_address,
            port=slot.port,
            route_config=slot.envoy_listener,
            virtual_hosts=hosts,
            token_costs=token_costs,
        )
        inputs = (listen_address, slot.port, hosts, token_costs)
        listeners.append(memo.kept(("listener", slot.envoy_listener), inputs, build))
    return tuple(listeners)


def _virtual_host(listener: str, domain: str, candidates: list[Ranked], report: Report) -> ir.VirtualHost:
    return ir.VirtualHost(name=f"{listener}/{domain}", domains=(domain,), routes=_ordered(candidates, report))


def _order(ranked: Ranked) -> tuple[int, ...]:
    return ranked[0]


def _ordered(candidates: list[Ranked], report: Report) -> tuple[ir.Route, ...]:
    winners: dict[tuple[object, ...], Ranked] = {}
    for ranked in sorted(candidates, key=_order):
        candidate = ranked[1]
        first = winners.setdefault(candidate.identity, ranked)[1]
        if first is not candidate and first.route.name != candidate.route.name:
            report.reject(
                candidate.owner,
                candidate.field_path,
                f"matches exactly what {first.route.name} matches, which takes precedence",
                reason="Conflicted",
            )
    ordered = sorted(winners.values(), key=_order)
    # Listed in declaration order (route age, rule, match), as upstream lists them.
    declared = sorted((r for r in ordered if r[1].model is not None), key=lambda r: r[0][3:])
    routes = [models_route([c.model for _, c in declared if c.model is not None])]
    routes.extend(winner.route for _, winner in ordered)
    routes.append(
        ir.Route(
            name=CATCH_ALL, path=ir.PathMatch(), headers=(), action=ir.DirectResponse(404, NOT_FOUND_MESSAGE)
        )
    )
    return tuple(routes)
