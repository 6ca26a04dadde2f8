"""Listeners: one public HTTP listener per port, and one internal listener per backend hop that does work.

A hop is an Envoy internal listener (no socket; reached through ``envoy_internal_address`` endpoints of a rule
cluster). Because the rule cluster picks the hop per attempt, everything a backend needs that differs from its
siblings — model rewrite, credential, headers, path prefix, Host — runs once per attempt, after the priority
and weight choice, using ordinary downstream filters (and the hop router's upstream filters for an AWS
signature, which must see the rewritten path: ``filters.aws_signing``). A hop that would do nothing is not
built (``data_path``). The alternatives were checked on Envoy 1.40 and rejected: it refuses the ``transform``
filter (the only native JSON body rewrite) as an upstream filter, as it
refuses ``json_to_metadata``, ``header_to_metadata`` and ``set_filter_state`` (it accepts ``header_mutation``,
``credential_injector``, ``aws_request_signing``, ``ext_proc``, ``lua``, ``buffer`` and ``composite``, whose
configuration is per cluster: per-backendRef values would have to come from endpoint metadata, not tried yet
for header-only work); Lua cannot see the chosen host; aggregate clusters skip their children's upstream
filters and retry-priority plugins.

The public listener reads the body when a route matches on the model or forwards to backends
(``ir.HttpListener.reads_body``: token usage is counted per model and a stream is asked for its usage): the
body check (which records the model and ``stream`` of a JSON body, ``filters.model_header``) buffers and
parses each request once, the first choice's model override runs where a route has one
(``filters.model_override``), then one Lua filter, run only for a multipart form or an OpenAI stream, reads a
form's model (re-picking the route) or asks a stream for its usage (``filters.multipart_model``); a listener
of direct responses only forwards nothing and reads nothing. Either way a model or stream header the client
sent is removed before anything else runs.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm

from controlplane import ir
from controlplane.xds.translator import local_reply
from controlplane.xds.translator.filters.anthropic_body import anthropic_body_filter
from controlplane.xds.translator.filters.aws_signing import aws_signing_upstream_filters
from controlplane.xds.translator.filters.bedrock_stream import bedrock_stream_filter
from controlplane.xds.translator.filters.body_check import body_check_filter
from controlplane.xds.translator.filters.credential import credential_filter, credential_override_filter
from controlplane.xds.translator.filters.endpoint_picker import (
    endpoint_picker_filter,
    served_endpoint_filter,
)
from controlplane.xds.translator.filters.model_header import (
    stream_header_filter,
    stream_metadata_filter,
    without_model_header,
)
from controlplane.xds.translator.filters.model_override import model_override_filter, route_model_filter
from controlplane.xds.translator.filters.multipart_model import form_model_and_usage_filter
from controlplane.xds.translator.filters.router import router_filter
from controlplane.xds.translator.filters.token_usage import token_usage_log, usage_filters
from controlplane.xds.translator.filters.transcoder import transcoder_filter
from controlplane.xds.translator.messages import ads_source, pack
from controlplane.xds.translator.provider_paths import query_filter
from controlplane.xds.translator.route import hop_route_configuration

_HCM_NAME = "envoy.filters.network.http_connection_manager"


def http_listener(listener: ir.HttpListener) -> Any:
    body_filters: list[Any] = []
    if listener.reads_body:
        body_filters = [body_check_filter(), stream_header_filter()]
        if listener.overrides_model:
            body_filters.append(route_model_filter())
        body_filters += [form_model_and_usage_filter(), *usage_filters(listener.token_costs)]
    manager = hcm.HttpConnectionManager(
        stat_prefix=listener.name,
        rds=hcm.Rds(route_config_name=listener.route_config, config_source=ads_source()),
        # Before any filter and the route choice: a client must not pick a route by naming a model.
        early_header_mutation_extensions=[without_model_header()],
        http_filters=[*body_filters, router_filter()],
        local_reply_config=local_reply.openai_error_replies(direct_success=True),
        access_log=[token_usage_log(listener.token_costs)],
    )
    return listener_pb2.Listener(
        name=listener.name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=listener.address, port_value=listener.port)
        ),
        filter_chains=[_chain(manager)],
    )


def hop_listener(hop: ir.BackendHop) -> Any:
    # First: nothing may pick the hop's route before the body's stream is known.
    filters = [stream_metadata_filter()] if hop.routes_on_stream else []
    if hop.model_override is not None:
        filters.append(model_override_filter(model=hop.model_override))
    if hop.transcoding is not None:
        # After the model override, which edits the OpenAI body the transcoder then converts.
        filters.append(transcoder_filter())
        if hop.transcoding.body_version is not None:
            # After the transcoder, whose Anthropic body it reshapes (no model, anthropic_version).
            path = hop.transcoding.model_path
            with_stream = path is None or path.stream_in_body
            filters.append(
                anthropic_body_filter(version=hop.transcoding.body_version, with_stream=with_stream)
            )
            if path is not None and path.event_stream:
                # After the transcoder: a response meets it first (filters run in reverse on the way back).
                filters.append(bedrock_stream_filter())
    if hop.picker is not None:
        # After the model override (the picker sees the model the pool is asked for), before the
        # credential (the picker never sees the API key); responses meet the served endpoint's filter
        # first (filters run in reverse on the way back).
        filters += [endpoint_picker_filter(hop.picker), served_endpoint_filter()]
    signing: list[Any] = []
    if isinstance(hop.credential, ir.AwsSigning):
        signing = aws_signing_upstream_filters(hop.credential)
    elif hop.credential is not None:
        filters.append(credential_filter(secret_name=hop.credential.secret, header=hop.credential.header))
        if hop.credential.override is not None:
            filters.append(
                credential_override_filter(header=hop.credential.header, override=hop.credential.override)
            )
    if hop.provider_api is not None and hop.provider_api.query:
        filters.append(query_filter(hop.provider_api))
    filters.append(router_filter(suppress_envoy_headers=True, upstream_filters=signing))
    manager = hcm.HttpConnectionManager(
        stat_prefix=hop.name,
        route_config=hop_route_configuration(hop),
        http_filters=filters,
        # A hop's own errors (backend refused, unresolvable) travel back through the public listener as
        # upstream responses, so they need the JSON envelope here.
        local_reply_config=local_reply.openai_error_replies(direct_success=False),
    )
    return listener_pb2.Listener(
        name=hop.name,
        internal_listener=listener_pb2.Listener.InternalListenerConfig(),
        filter_chains=[_chain(manager)],
    )


def _chain(manager: Any) -> Any:
    return listener_components_pb2.FilterChain(
        filters=[listener_components_pb2.Filter(name=_HCM_NAME, typed_config=pack(manager))]
    )
