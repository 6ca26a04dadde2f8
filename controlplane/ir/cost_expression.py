"""The typed expression a ``llmRequestCosts`` entry computes per response, and the counts it reads.

Upstream evaluates each cost in its external processor with CEL over the variables below
(envoyproxy/ai-gateway ``internal/llmcostcel``, v1.0.0: ``model``, ``backend`` and ``route_name`` strings, six
token counts as ``uint``; ``internal/controller/gateway.go`` names the route ``namespace/name``). Here every
cost is one of these expressions: a count type (``InputToken`` ...) is the bare variable, which Envoy
publishes straight from the response's ``usage``; a ``CEL`` cost is parsed and type-checked by
``gatewayapi.cel_costs`` into this tree, which the translator turns into the Lua that Envoy evaluates at the
end of each response (``xds.translator.filters.cost_lua``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CelType = Literal["int", "uint", "double", "string", "bool"]

TOKEN_COUNTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "input_tokens": (("prompt_tokens",),),
    "cached_input_tokens": (("prompt_tokens_details", "cached_tokens"),),
    # Upstream's OpenAI form first; Envoy's transcoder writes Anthropic's cache_creation_input_tokens as
    # cache_write_tokens (checked on the 1.40 binary). A response carries one or the other.
    "cache_creation_input_tokens": (
        ("prompt_tokens_details", "cache_creation_input_tokens"),
        ("prompt_tokens_details", "cache_write_tokens"),
    ),
    "output_tokens": (("completion_tokens",),),
    "total_tokens": (("total_tokens",),),
    "reasoning_tokens": (("completion_tokens_details", "reasoning_tokens"),),
}
"""Each token count variable and where an OpenAI response's ``usage`` has it (alternatives, first wins).
Envoy's transcoder counts Anthropic's cache reads and writes into ``prompt_tokens`` as upstream does."""
MODEL = "model"
"""The request body's model, the one the client asked for."""
ROUTE_NAME = "route_name"
"""The AIGatewayRoute that served, ``namespace/name`` as upstream names it."""
BACKEND = "backend"
"""The backendRef that served, ``name.namespace`` as upstream's API documents it (``ir.WeightedEndpoint``);
upstream's v1.0.0 code passes its internal per-rule backend name instead, which no user can know."""
VARIABLES: dict[str, CelType] = {
    MODEL: "string",
    ROUTE_NAME: "string",
    BACKEND: "string",
    **dict.fromkeys(TOKEN_COUNTS, "uint"),
}
SAFE_INTEGER = 2**53
"""Integers at or beyond it lose precision in Lua numbers (doubles), so a value reaching it is an overflow."""


@dataclass(frozen=True, slots=True)
class Constant:
    value: int | float | str | bool
    type: CelType


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    type: CelType


@dataclass(frozen=True, slots=True)
class Unary:
    operator: Literal["-", "!"]
    operand: Expression
    type: CelType


@dataclass(frozen=True, slots=True)
class Binary:
    operator: str
    """CEL's: ``+ - * / % == != < <= > >= && ||``."""
    left: Expression
    right: Expression
    type: CelType


@dataclass(frozen=True, slots=True)
class Conditional:
    condition: Expression
    then: Expression
    otherwise: Expression
    type: CelType


@dataclass(frozen=True, slots=True)
class Conversion:
    """``int(x)``, ``uint(x)`` or ``double(x)`` of a number; ``type`` is the target."""

    operand: Expression
    type: CelType


Expression = Constant | Variable | Unary | Binary | Conditional | Conversion


def variables_of(expression: Expression) -> frozenset[str]:
    """The variables ``expression`` reads."""
    match expression:
        case Variable(name=name):
            return frozenset((name,))
        case Constant():
            return frozenset()
        case Unary(operand=operand) | Conversion(operand=operand):
            return variables_of(operand)
        case Binary(left=left, right=right):
            return variables_of(left) | variables_of(right)
        case Conditional(condition=condition, then=then, otherwise=otherwise):
            return variables_of(condition) | variables_of(then) | variables_of(otherwise)
