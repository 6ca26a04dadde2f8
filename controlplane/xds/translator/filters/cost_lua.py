"""``CEL`` costs computed in Envoy: each expression compiled to Lua, evaluated once at the end of a response.

Why Lua: Envoy 1.40 evaluates CEL only where something reads a value (``%CEL()%`` in format strings,
matchers, RBAC), and per its API docs nothing native writes a computed value into dynamic metadata at the
end of a response: ``set_metadata`` writes static values, ``header_to_metadata`` reads headers, which leave
before the body carries the usage. A ``%CEL()%`` in an access log or a rate limit's hits addend would serve
that one consumer, not the metadata a user's Envoy Gateway rate limit reads under the cost's key. Lua is the
one native filter that can read the counts the usage filters published and write a number back.

The filter goes before the usage filters in the listener's list, so on the way back it runs after them: it
walks the body's chunks as they pass (``bodyChunks``, which forwards each one: a stream is not held up;
``body()`` would buffer it whole), and when the body has ended, or a stream's chunk has brought OpenAI's
closing ``data: [DONE]`` event, by which time the usage filters have set their metadata (both checked on the
1.40 binary by ``tests/test_e2e_costs.py``), reads the counts (published for it under
``token_usage.USAGE_NAMESPACE`` with the variable names), the request's model and the route's name, and sets
each cost under ``io.envoy.ai_gateway``. Why not wait for the end of a stream: a client may close its
connection as soon as it has ``[DONE]`` (the OpenAI SDK does), and if the backend's end of stream arrives
after that, Envoy resets the stream and the Lua never sees it end: the cost would be lost though the usage
was counted. The event is looked for in the last bytes seen (carried across chunks, so a split one is found).

Lua cannot see the upstream host, so when a cost reads ``backend`` the rule clusters' endpoints carry their
backendRef's name (``BACKEND_METADATA``) and a header mutation after the Lua copies it into a response header
(``%UPSTREAM_METADATA%``), which the Lua reads and removes before the headers go on. A response that reported
no usage gets no cost, as with the count types. Numbers are Lua doubles: the integer checks (``uint`` below
zero, overflow at 2^53, division by zero, a negative result) raise, and a cost that raised is not published,
the semantics ``gatewayapi.cel_costs.evaluate`` states and the tests hold it to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm

from controlplane import ir
from controlplane.ir import cost_expression as ce
from controlplane.xds.translator.messages import overwritten_header, pack

FILTER_NAME = "ai_xds.llm_request_costs"
BACKEND_METADATA = ("ai_xds.llm_request_costs", "backend")
"""Where a rule cluster's endpoint carries its backendRef's name (``ir.WeightedEndpoint.backend``)."""
_BACKEND_HEADER = "x-ai-xds-cost-backend"
"""Carries that name from the upstream host to the Lua, which removes it before the client sees it."""
_PRELUDE = f"""
local SAFE = {ce.SAFE_INTEGER}
local floor, ceil, fmod = math.floor, math.ceil, math.fmod
local function int(x)
  if x ~= x or x >= SAFE or x <= -SAFE then error("integer overflow") end
  return x
end
local function uint(x)
  if x < 0 then error("unsigned integer overflow") end
  return int(x)
end
local function trunc(x)
  if x >= 0 then return floor(x) end
  return ceil(x)
end
local function quotient(a, b)
  if b == 0 then error("division by zero") end
  return trunc(a / b)
end
local function remainder(a, b)
  if b == 0 then error("division by zero") end
  return fmod(a, b)
end
"""
_HANDLER = """
local DONE, TAIL = "data: [DONE]", 32
local function publish(handle, v)
  -- Fetched afresh: a wrapper kept across the chunks' yields is out of its scope.
  local metadata = handle:streamInfo():dynamicMetadata()
  local usage = metadata:get(USAGE)
  if usage == nil then return end
  for _, name in ipairs(COUNTS) do v[name] = usage[name] or 0 end
  for _, cost in ipairs(COMPUTED) do
    local ok, value = pcall(cost[2], v)
    if ok and value >= 0 then metadata:set(COSTS, cost[1], value) end
  end
end
function envoy_on_response(handle)
  local headers = handle:headers()
  local backend = ""
  if READS_BACKEND then
    backend = headers:get(BACKEND_HEADER) or ""
    headers:remove(BACKEND_HEADER)
  end
  local streamed = string.find(headers:get("content-type") or "", "^text/event%-stream") ~= nil
  local info = handle:streamInfo()
  local published = info:dynamicMetadata():get(COSTS) or {}
  local route = info:routeName() or ""
  local v = {model = published[MODEL] or "", route_name = string.match(route, ROUTE_PATTERN) or "",
             backend = backend}
  local tail = ""
  for chunk in handle:bodyChunks() do
    local size = chunk:length()
    if streamed and size > 0 then
      local last = math.min(size, TAIL)
      tail = string.sub(tail .. chunk:getBytes(size - last, last), -TAIL)
      if string.find(tail, DONE, 1, true) then
        publish(handle, v)
        return
      end
    end
  end
  publish(handle, v)
end
"""
_OPERATORS = {"!=": "~=", "&&": "and", "||": "or"}


def computed(costs: Iterable[ir.TokenCost]) -> tuple[ir.TokenCost, ...]:
    """The costs Lua computes: those that are not a count read as it is."""
    return tuple(cost for cost in costs if not isinstance(cost.expression, ce.Variable))


def cost_filters(costs: tuple[ir.TokenCost, ...], *, usage_namespace: str, costs_namespace: str) -> list[Any]:
    """The Lua filter computing ``costs`` (all of them ``computed``), and after it, when a cost reads
    ``backend``, the header mutation that hands it the serving endpoint's backend (filters run in reverse on
    the way back)."""
    lua = lua_pb2.Lua(
        default_source_code=base_pb2.DataSource(
            inline_string=lua_source(costs, usage_namespace=usage_namespace, costs_namespace=costs_namespace)
        )
    )
    filters = [hcm.HttpFilter(name=FILTER_NAME, typed_config=pack(lua))]
    if _reads_backend(costs):
        namespace, key = BACKEND_METADATA
        # Overwritten whatever the backend sent, and kept empty when the host has no name: the Lua trusts it.
        header = overwritten_header(
            _BACKEND_HEADER, f"%UPSTREAM_METADATA({namespace}:{key})%", keep_empty=True
        )
        mutation = header_mutation_pb2.HeaderMutation(
            mutations=header_mutation_pb2.Mutations(
                response_mutations=[mutation_rules_pb2.HeaderMutation(append=header)]
            )
        )
        filters.append(hcm.HttpFilter(name=f"{FILTER_NAME}.backend", typed_config=pack(mutation)))
    return filters


def _reads_backend(costs: tuple[ir.TokenCost, ...]) -> bool:
    return any(ce.BACKEND in ce.variables_of(cost.expression) for cost in costs)


def lua_source(costs: tuple[ir.TokenCost, ...], *, usage_namespace: str, costs_namespace: str) -> str:
    counts = sorted(set().union(*(ce.variables_of(cost.expression) for cost in costs)) & set(ce.TOKEN_COUNTS))
    entries = "".join(
        f"  {{{_string(cost.metadata_key)}, function(v) return {lua_expression(cost.expression)} end}},\n"
        for cost in costs
    )
    constants = (
        f"local USAGE, COSTS, MODEL = {_string(usage_namespace)}, {_string(costs_namespace)}, "
        f"{_string(ce.MODEL)}\n"
        # Envoy route names start route/<namespace>/<name>/ (gatewayapi.routes); Kubernetes names hold no "/".
        'local ROUTE_PATTERN = "^route/([^/]+/[^/]+)/"\n'
        f"local READS_BACKEND, BACKEND_HEADER = {'true' if _reads_backend(costs) else 'false'}, "
        f"{_string(_BACKEND_HEADER)}\n"
        f"local COUNTS = {{{', '.join(_string(name) for name in counts)}}}\n"
        f"local COMPUTED = {{\n{entries}}}\n"
    )
    return _PRELUDE + constants + _HANDLER


def lua_expression(expression: ce.Expression) -> str:
    """``expression`` as one Lua expression over the table ``v`` of variables."""
    match expression:
        case ce.Constant(value=bool(value)):
            return "true" if value else "false"
        case ce.Constant(value=str(value)):
            return _string(value)
        case ce.Constant(value=int(value) | float(value)):
            return _number(value)
        case ce.Variable(name=name):
            return f"v.{name}"
        case ce.Unary(operator="!", operand=operand):
            return f"(not {lua_expression(operand)})"
        case ce.Unary(operand=operand, type=kind):
            # The space keeps a negative operand from making "--", a Lua comment.
            return _integer(f"(- {lua_expression(operand)})", kind)
        case ce.Conversion(operand=operand, type="double"):
            return lua_expression(operand)
        case ce.Conversion(operand=operand, type=kind):
            return _integer(f"trunc({lua_expression(operand)})", kind)
        case ce.Conditional(condition=condition, then=then, otherwise=otherwise, type=kind):
            test, yes, no = (lua_expression(part) for part in (condition, then, otherwise))
            if kind == "bool":
                # "c and x or y" would take y when x is false.
                return f"(({test} and {yes}) or (not {test} and {no}))"
            return f"({test} and {yes} or {no})"
        case ce.Binary(operator=operator, left=left, right=right, type=kind):
            return _binary(operator, lua_expression(left), lua_expression(right), left.type, kind)
    raise AssertionError(expression)  # every node kind is matched above


def _binary(operator: str, left: str, right: str, operand_type: ce.CelType, kind: ce.CelType) -> str:
    if operand_type == "string" and operator == "+":
        return f"({left} .. {right})"
    if kind in ("int", "uint") and operator == "/":
        return f"quotient({left}, {right})"
    if kind in ("int", "uint") and operator == "%":
        return f"remainder({left}, {right})"
    text = f"({left} {_OPERATORS.get(operator, operator)} {right})"
    return _integer(text, kind) if kind in ("int", "uint") else text


def _integer(text: str, kind: ce.CelType) -> str:
    return f"{kind}({text})" if kind in ("int", "uint") else text


def _number(value: float) -> str:
    if math.isinf(value):
        return "(1/0)" if value > 0 else "(-1/0)"
    return f"({value!r})" if value < 0 else repr(value)


def _string(text: str) -> str:
    """A Lua string literal: printable ASCII as is, every other byte as a decimal escape."""
    body = "".join(
        chr(byte) if 0x20 <= byte < 0x7F and chr(byte) not in '"\\' else f"\\{byte:03d}"
        for byte in text.encode("utf-8")
    )
    return f'"{body}"'
