"""Route configurations: the public listeners' RDS resources and the internal hops' inline routes."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import previous_priorities_config_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from controlplane import ir
from controlplane.xds.resource import CLUSTER, References, ResourceKey
from controlplane.xds.translator.filters.body_check import invalid_body_route
from controlplane.xds.translator.filters.credential import no_credential_route
from controlplane.xds.translator.filters.endpoint_picker import SERVED_ENDPOINT_KEY
from controlplane.xds.translator.filters.model_header import MODEL_FROM_BODY, model_metadata_match
from controlplane.xds.translator.filters.model_override import set_route_model
from controlplane.xds.translator.filters.stream_usage import STREAM_HEADER
from controlplane.xds.translator.filters.transcoder import transcoded_routes
from controlplane.xds.translator.messages import overwritten_header, pack, seconds
from controlplane.xds.translator.provider_paths import provider_routes

PICKED_ENDPOINT_RETRIES = 2
_UNREACHABLE = "connect-failure,refused-stream,reset"
_DIRECT_BODY_LIMIT = 4096
"""Envoy's default limit on a direct response body; a long model list raises it."""


def route_configuration(listener: ir.HttpListener) -> Any:
    """A public listener's RDS resource as one message (``route_bytes`` serves it assembled from pieces)."""
    longest = max(
        (direct_body_size(route) for vhost in listener.virtual_hosts for route in vhost.routes), default=0
    )
    config = route_configuration_shell(listener, longest_direct_body=longest)
    for vhost in listener.virtual_hosts:
        _fill_virtual_host(config.virtual_hosts.add(), vhost, checks_body=listener.reads_body)
    return config


def route_configuration_shell(listener: ir.HttpListener, *, longest_direct_body: int) -> Any:
    """``route_configuration(listener)`` without its virtual hosts. ``longest_direct_body``: the largest
    ``direct_body_size`` of its routes, which the caller finds where it visits them anyway."""
    config = route_pb2.RouteConfiguration(
        name=listener.route_config,
        # Gateways answer for any Host; an unknown Host gets the catch-all of the "*" virtual host.
        validate_clusters={"value": False},
    )
    if longest_direct_body > _DIRECT_BODY_LIMIT:
        config.max_direct_response_body_size_bytes.value = longest_direct_body
    return config


def direct_body_size(route: ir.Route) -> int:
    """The bytes of the body ``route`` answers with itself; 0 for a route that forwards."""
    return len(route.action.message.encode()) if isinstance(route.action, ir.DirectResponse) else 0


def route_configuration_references(listener: ir.HttpListener) -> References:
    """What ``route_configuration(listener)`` refers to: the cluster of each forwarding route (one message
    naming thousands of clusters, the costliest of all to walk)."""
    return References(
        dependencies=frozenset(
            ResourceKey(CLUSTER, route.action.cluster)
            for vhost in listener.virtual_hosts
            for route in vhost.routes
            if isinstance(route.action, ir.Forward) and route.action.cluster
        )
    )


def hop_route_configuration(hop: ir.BackendHop) -> Any:
    """Inside a backend hop: fix the path for the backend's schema prefix, the Host, extra headers."""
    route = rc.Route(
        name=hop.name,
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(
            cluster=hop.upstream_cluster,
            # The public route's timeout and retries govern the request; a hop must not cut it shorter.
            timeout=seconds(0),
        ),
        request_headers_to_add=_header_options(hop.request_headers.set),
        request_headers_to_remove=list(hop.request_headers.remove),
    )
    if hop.provider_api is None and hop.transcoding is None and hop.path_prefix != ir.OPENAI_PATH_PREFIX:
        route.route.regex_rewrite.CopyFrom(
            regex_pb2.RegexMatchAndSubstitute(
                pattern=regex_pb2.RegexMatcher(regex=f"^{re.escape(ir.OPENAI_PATH_PREFIX)}/"),
                substitution=hop.path_prefix.rstrip("/") + "/",
            )
        )
    if hop.host_rewrite is not None:
        route.route.host_rewrite_literal = hop.host_rewrite
    if hop.picker is not None:
        # The picker's fallback endpoints: a picked endpoint that cannot be reached is retried on the next
        # one it named (then on any pool endpoint), inside the hop, before the rule fails over.
        route.route.retry_policy.CopyFrom(
            rc.RetryPolicy(retry_on=_UNREACHABLE, num_retries={"value": PICKED_ENDPOINT_RETRIES})
        )
        # The endpoint that served (a fallback, after a retry), for the picker (filters.endpoint_picker).
        route.response_headers_to_add.append(overwritten_header(SERVED_ENDPOINT_KEY, "%UPSTREAM_HOST%"))
    if hop.provider_api is not None:
        routes = provider_routes(hop.provider_api, forward=route, model_override=hop.model_override)
    elif hop.transcoding is not None:
        routes = transcoded_routes(route, hop.transcoding, model_override=hop.model_override)
    else:
        routes = [route]
    credential = hop.credential
    if isinstance(credential, ir.Credential) and credential.override and not credential.override.fallback:
        routes.insert(0, no_credential_route(name=hop.name, override=credential.override))
    return route_pb2.RouteConfiguration(
        name=hop.name, virtual_hosts=[rc.VirtualHost(name=hop.name, domains=["*"], routes=routes)]
    )


def _fill_virtual_host(host: Any, vhost: ir.VirtualHost, *, checks_body: bool) -> None:
    """Fills ``host``, a virtual host inside its route configuration, in place: handing over a list of
    thousands of finished routes copies them all in one C call, which holds the GIL for tens of
    milliseconds at 5,000 routes (the event loop waits meanwhile). ``checks_body``: see ``leading_routes``."""
    fill_virtual_host_shell(host, vhost)
    host.routes.extend(leading_routes(checks_body=checks_body))
    for route in vhost.routes:
        fill_route(host.routes.add(), route, reads_model=checks_body)


def fill_virtual_host_shell(host: Any, vhost: ir.VirtualHost) -> None:
    """Fills the empty virtual host ``host`` with all of ``vhost`` but its routes."""
    host.name = vhost.name
    host.domains.extend(vhost.domains)


def leading_routes(*, checks_body: bool) -> list[Any]:
    """The routes a virtual host has before its own: with ``checks_body`` (the listener runs the body
    check), the one that answers the check's verdict (and which records the body's model)."""
    return [invalid_body_route()] if checks_body else []


def fill_route(message: Any, route: ir.Route, *, reads_model: bool) -> None:
    """Fills the empty route ``message``. ``reads_model``: the listener records the body's model, which the
    backend gets as the model header."""
    message.name = route.name
    message.match.CopyFrom(_match(route.path, route.headers))
    action = route.action
    if isinstance(action, ir.DirectResponse):
        message.direct_response.status = action.status
        message.direct_response.body.inline_string = action.message
        return
    message.route.CopyFrom(_forward(action))
    if reads_model and action.model_override is None:
        # (With an override, the model header is the override's, set below.)
        message.request_headers_to_add.append(overwritten_header(ir.MODEL_HEADER, MODEL_FROM_BODY))
    message.request_headers_to_add.extend(_header_options(action.request_headers.set))
    # The stream header is the public listener's own (filters.stream_usage): it reaches no hop or backend.
    message.request_headers_to_remove.extend([*action.request_headers.remove, STREAM_HEADER])
    if action.model_override is not None:
        # After the rule's own header edits: the model header says what the backend is asked for.
        message.request_headers_to_add.extend(_header_options(((ir.MODEL_HEADER, action.model_override),)))
        set_route_model(message, model=action.model_override, matches_body_model=route.matches_model)


def _match(path: ir.PathMatch, headers: tuple[ir.HeaderMatch, ...]) -> Any:
    match = rc.RouteMatch(
        # The model is matched where the body check recorded it (``filters.model_header``).
        headers=[_header_matcher(header) for header in headers if header.name != ir.MODEL_HEADER],
        dynamic_metadata=[
            model_metadata_match(_string_matcher(header))
            for header in headers
            if header.name == ir.MODEL_HEADER
        ],
    )
    if path.type is ir.PathMatchType.EXACT:
        match.path = path.value
    elif path.type is ir.PathMatchType.REGEX:
        match.safe_regex.regex = path.value
    elif path.value.rstrip("/") == "":
        match.prefix = "/"
    else:
        # Gateway API prefixes match whole path segments: /model matches /model and /model/x, not /models.
        match.path_separated_prefix = path.value.rstrip("/")
    return match


def _header_matcher(header: ir.HeaderMatch) -> Any:
    return rc.HeaderMatcher(name=header.name, string_match=_string_matcher(header))


def _string_matcher(header: ir.HeaderMatch) -> Any:
    if header.regex:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=header.value))
    return string_pb2.StringMatcher(exact=header.value)


def _forward(action: ir.Forward) -> Any:
    route = rc.RouteAction(cluster=action.cluster, timeout=seconds(action.timeout_seconds))
    if action.idle_timeout_seconds is not None:
        route.idle_timeout.CopyFrom(seconds(action.idle_timeout_seconds))
    rewrite = action.path_rewrite
    if rewrite is not None and rewrite.full_path is not None:
        route.regex_rewrite.CopyFrom(
            regex_pb2.RegexMatchAndSubstitute(
                pattern=regex_pb2.RegexMatcher(regex="^/[^?]*"), substitution=rewrite.full_path
            )
        )
    elif rewrite is not None and rewrite.prefix is not None:
        route.prefix_rewrite = rewrite.prefix
    if action.hostname_rewrite is not None:
        route.host_rewrite_literal = action.hostname_rewrite
    if action.retry is not None:
        route.retry_policy.CopyFrom(_retry_policy(action.retry))
    return route


@lru_cache(maxsize=256)
def _retry_policy(retry: ir.RetryPolicy) -> Any:
    """Built once per distinct policy (most routes share one); shared, so callers only copy it."""
    policy = rc.RetryPolicy(
        retry_on=",".join(retry.retry_on),
        num_retries={"value": retry.num_retries},
        retriable_status_codes=list(retry.retriable_status_codes),
    )
    if retry.num_retries and retry.back_off_base_seconds is not None:
        policy.retry_back_off.base_interval.CopyFrom(seconds(retry.back_off_base_seconds))
    if retry.num_retries and retry.back_off_max_seconds is not None:
        policy.retry_back_off.max_interval.CopyFrom(seconds(retry.back_off_max_seconds))
    if retry.per_try_timeout_seconds is not None:
        policy.per_try_timeout.CopyFrom(seconds(retry.per_try_timeout_seconds))
    if retry.per_try_idle_timeout_seconds is not None:
        policy.per_try_idle_timeout.CopyFrom(seconds(retry.per_try_idle_timeout_seconds))
    if retry.attempts_per_priority is not None:
        policy.retry_priority.name = "envoy.retry_priorities.previous_priorities"
        policy.retry_priority.typed_config.CopyFrom(
            pack(
                previous_priorities_config_pb2.PreviousPrioritiesConfig(
                    update_frequency=retry.attempts_per_priority
                )
            )
        )
    if retry.avoid_previous_hosts:
        policy.retry_host_predicate.add(
            name="envoy.retry_host_predicates.previous_hosts",
            typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()),
        )
        policy.host_selection_retry_max_attempts = retry.host_selection_attempts
    return policy


def _header_options(headers: tuple[tuple[str, str], ...]) -> list[Any]:
    # Envoy reads header values as format strings; a literal "%" from a manifest must be escaped.
    return [overwritten_header(name, value.replace("%", "%%")) for name, value in headers]
