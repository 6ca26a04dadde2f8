"""Token usage of every response, read by Envoy on the public listener: dynamic metadata and metrics.

Each response is OpenAI's by the time it reaches the public listener (a hop's transcoder converted any other
API), so one set of rules reads ``usage`` whatever the backend: ``json_to_metadata`` for a JSON body,
``sse_to_metadata`` with the JSON content parser for a stream (every event with ``usage`` overwrites, so
the last one counts). They publish:

- the user's ``llmRequestCosts`` under ``io.envoy.ai_gateway`` (``gatewayapi.costs``), as upstream does: a
  count as read, a ``CEL`` cost computed from the counts by Lua (``cost_lua``);
- counts under our own namespace: ``input`` and ``output`` always, which a stats access logger turns into
  the OpenTelemetry GenAI histogram ``gen_ai.client.token.usage`` tagged with ``gen_ai.token.type``,
  ``gen_ai.request.model``, the route and the backend (the hop that served), scraped from Envoy's
  ``/stats/prometheus`` (as ``envoy_ai_gateway_gen_ai_client_token_usage``). Envoy reports a histogram at
  its stats flush, which our bootstrap does on each read of that page (``stats_flush_on_admin``). Each
  count a ``CEL`` cost reads is published there too, under its variable's name (``input_tokens`` ...), for
  the Lua. Each cost also counts what the responses cost, per route (``envoy_ai_gateway_request_cost``).

``sse_to_metadata`` is not in ``xds-protos``: it travels as ``xds.type.v3.TypedStruct``.
"""

from __future__ import annotations

import re
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.filters.http.json_to_metadata.v3 import json_to_metadata_pb2 as j2m
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.type.matcher.v3 import regex_pb2
from google.protobuf import json_format

from controlplane import ir
from controlplane.ir import cost_expression as ce
from controlplane.xds.translator.filters.cost_lua import computed, cost_filters
from controlplane.xds.translator.filters.transcoder import typed_struct
from controlplane.xds.translator.messages import pack

COSTS_NAMESPACE = "io.envoy.ai_gateway"
"""Where upstream publishes ``llmRequestCosts`` (what Envoy Gateway rate limits read)."""
USAGE_NAMESPACE = "ai_xds.token_usage"
"""Our own copy of the counts, for the metrics, whatever costs the routes name."""
_METRIC_COUNTS = (("input", "input_tokens"), ("output", "output_tokens"))
"""The histogram's ``gen_ai.token.type`` tags (its metadata keys) and the counts they read."""
_SSE_TO_METADATA = "type.googleapis.com/envoy.extensions.filters.http.sse_to_metadata.v3.SseToMetadata"
_JSON_PARSER = "type.googleapis.com/envoy.extensions.content_parsers.json.v3.JsonContentParser"
TOKEN_METRIC = "gen_ai.client.token.usage"  # noqa: S105 (a metric name)
STATS_PREFIX = "ai_gateway"
"""Envoy requires one; Prometheus names start ``envoy_ai_gateway_``."""
COST_METRIC = "request_cost"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]+")


def _rules(costs: tuple[ir.TokenCost, ...]) -> list[Any]:
    published = [(USAGE_NAMESPACE, kind, variable) for kind, variable in _METRIC_COUNTS]
    read = set().union(*(ce.variables_of(cost.expression) for cost in computed(costs)))
    published += [(USAGE_NAMESPACE, variable, variable) for variable in sorted(read & set(ce.TOKEN_COUNTS))]
    published += [
        (COSTS_NAMESPACE, cost.metadata_key, cost.expression.name)
        for cost in costs
        if isinstance(cost.expression, ce.Variable)
    ]
    return [
        j2m.JsonToMetadata.Rule(
            selectors=[j2m.JsonToMetadata.Selector(key=key) for key in ("usage", *field)],
            on_present=j2m.JsonToMetadata.KeyValuePair(
                metadata_namespace=namespace, key=key, type=j2m.JsonToMetadata.NUMBER
            ),
        )
        for namespace, key, variable in published
        for field in ce.TOKEN_COUNTS[variable]
    ]


def usage_filters(costs: tuple[ir.TokenCost, ...]) -> list[Any]:
    """Before the router: on the way back they see the response the client gets. The costs' Lua, if any,
    comes first, so that it runs after them on the way back."""
    rules = _rules(costs)
    json_body = j2m.JsonToMetadata(
        response_rules=j2m.JsonToMetadata.MatchRules(
            rules=rules,
            # OpenAI-compatible servers add "; charset=utf-8" or not.
            allow_content_types_regex=regex_pb2.RegexMatcher(regex="^application/json.*"),
        )
    )
    parser = {
        "@type": _JSON_PARSER,
        "rules": [
            {"rule": json_format.MessageToDict(rule, preserving_proto_field_name=True)} for rule in rules
        ],
    }
    stream = {
        "response_rules": {"content_parser": {"name": "envoy.content_parsers.json", "typed_config": parser}}
    }
    lua = computed(costs)
    computing = (
        cost_filters(lua, usage_namespace=USAGE_NAMESPACE, costs_namespace=COSTS_NAMESPACE) if lua else []
    )
    return [
        *computing,
        hcm.HttpFilter(name="envoy.filters.http.json_to_metadata", typed_config=pack(json_body)),
        hcm.HttpFilter(
            name="envoy.filters.http.sse_to_metadata", typed_config=typed_struct(_SSE_TO_METADATA, stream)
        ),
    ]


def token_usage_log(costs: tuple[ir.TokenCost, ...]) -> Any:
    """The histogram, one sample per response that reported its usage; and per cost a counter of what the
    responses cost (``request_cost``, tagged with the metadata key and the route)."""

    def tag(name: str, value: str) -> Any:
        return stats_pb2.Config.Tag(name=name, value_format=value)

    histograms = [
        stats_pb2.Config.Histogram(
            stat=stats_pb2.Config.Stat(
                name=TOKEN_METRIC,
                tags=[
                    tag("gen_ai.token.type", kind),
                    tag("gen_ai.request.model", f"%REQ({ir.MODEL_HEADER})%"),
                    tag("route", "%ROUTE_NAME%"),
                    tag("backend", "%UPSTREAM_HOST%"),
                ],
            ),
            value_format=f"%DYNAMIC_METADATA({USAGE_NAMESPACE}:{kind})%",
        )
        for kind, _ in _METRIC_COUNTS
    ]
    counters = [
        stats_pb2.Config.Counter(
            stat=stats_pb2.Config.Stat(
                name=COST_METRIC, tags=[tag("cost", cost.metadata_key), tag("route", "%ROUTE_NAME%")]
            ),
            value_format=f"%DYNAMIC_METADATA({COSTS_NAMESPACE}:{cost.metadata_key})%",
        )
        for cost in costs
        # A key is spliced into a format string: one with other characters (":" is its path separator) is
        # published all the same, but not counted.
        if _PLAIN_KEY.fullmatch(cost.metadata_key)
    ]
    config = stats_pb2.Config(stat_prefix=STATS_PREFIX, histograms=histograms, counters=counters)
    return accesslog_pb2.AccessLog(name="envoy.access_loggers.stats", typed_config=pack(config))
