"""Which CEL costs the translator takes, and what it says about the others (CEL's own typing, as upstream's
cel-go applies it). What Envoy computes for the accepted ones is held to ``evaluate`` by
``test_e2e_costs``."""

from __future__ import annotations

import pytest

from controlplane.gatewayapi.cel_costs import CelCostError, evaluate, parse_cost
from controlplane.ir import cost_expression as ce

COUNTS = dict.fromkeys(ce.TOKEN_COUNTS, 0)
UPSTREAM_TEST = (
    "model == 'cool_model' ?  (input_tokens - cached_input_tokens - cache_creation_input_tokens)"
    " * output_tokens  : total_tokens"
)
"""From upstream's ``internal/llmcostcel`` tests."""


@pytest.mark.parametrize(
    "cel",
    [
        # Upstream's examples and tests that cel-go compiles.
        "input_tokens == uint(3) ? 100000000 : 0",
        UPSTREAM_TEST,
        "input_tokens + output_tokens + total_tokens",
        "input_tokens * output_tokens",
        "output_tokens + reasoning_tokens",
        "route_name == 'default/route' ? 2u : 1u",
        "backend == 'foo.default' ?  input_tokens + output_tokens : total_tokens",
        "uint(1) + uint(1)",
        "1 + 1",
        'model == "a" || model != "b" && !(input_tokens >= 2u) ? 0x1Fu : 3u % 2u',
        "uint(double(input_tokens) * 1.25 + 0.5e1) - 1u + uint(int(output_tokens) * -1 + 1)",
    ],
)
def test_the_subset_upstream_writes_is_taken(cel: str) -> None:
    parse_cost(cel)


def test_upstreams_cost_example_evaluates_as_upstream_tests_it() -> None:
    expression = parse_cost(UPSTREAM_TEST)
    counts = {
        "input_tokens": 200,
        "cached_input_tokens": 100,
        "cache_creation_input_tokens": 1,
        "output_tokens": 2,
        "total_tokens": 3,
        "reasoning_tokens": 0,
    }
    assert evaluate(expression, {"model": "cool_model", **counts}) == 198
    assert evaluate(expression, {"model": "not_cool_model", **counts}) == 3


@pytest.mark.parametrize(
    ("cel", "message"),
    [
        ("input_tokens * 0.5", "no '*' between uint and double: CEL does not convert implicitly"),
        ("input_tokens + output_tokens * 2", "no '*' between uint and int"),
        ("input_tokens == 3", "no '==' between uint and int"),
        ("1.5", "must evaluate to an int or a uint, not double"),
        ("model", "must evaluate to an int or a uint, not string"),
        ("uint(1)-uint(1200)", "fails with a dummy model and zero counts: unsigned integer overflow"),
        (
            "int(input_tokens) - int(output_tokens) - 1",
            "fails with a dummy model and zero counts: the result is",
        ),
        ("input_tokens / 0u", "division by zero"),
        ("prompt_tokens", "undeclared reference to 'prompt_tokens'"),
        ("size(model)", "the function size() is not supported"),
        ("request.headers['x'] == 'a' ? 1 : 0", "unsupported syntax at column 8: '.'"),
        ("input_tokens +", "ends too early"),
        ("(input_tokens", "ends too early"),
        ("input_tokens)", "unexpected ')' at column 13"),
        ("input_tokens ? 1 : 2", "the condition of '?:' is a uint, not a bool"),
        ("model == 'a' ? 1 : 2u", "the branches of '?:' differ in type: int and uint"),
        ("-input_tokens", "'-' applies to an int or a double, not a uint"),
        ("1.5 % 2.0 == 0.0 ? 1 : 0", "no '%' for double"),
        ("uint(model)", "uint() of a string is not supported"),
        ("9007199254740992u", "too large"),
        ("model == '\\q' ? 1 : 0", "the escape \\q is not supported"),
        ("", "is empty"),
        ("1" * 1025, "is longer than 1024 characters"),
    ],
)
def test_anything_else_is_refused_with_what_is_wrong(cel: str, message: str) -> None:
    with pytest.raises(CelCostError) as refused:
        parse_cost(cel)
    assert message in str(refused.value)


def test_conversions_of_constants_are_folded_so_envoy_does_not_repeat_them() -> None:
    assert parse_cost("input_tokens == uint(3) ? uint(2.9) : 0u") == ce.Conditional(
        ce.Binary("==", ce.Variable("input_tokens", "uint"), ce.Constant(3, "uint"), "bool"),
        ce.Constant(2, "uint"),
        ce.Constant(0, "uint"),
        "uint",
    )


@pytest.mark.parametrize(
    ("cel", "value"),
    [
        ("7 / -2 + 10", 7),  # integer division truncates toward zero
        ("19 % -5", 4),  # the remainder takes the dividend's sign
        ("uint(double(input_tokens) * 1.5)", 28),
        ("model + '-v1' == 'm-v1' ? 1 : 0", 1),
        ("'\\x41\\u00e9' == 'A\u00e9' ? 1 : 0", 1),
    ],
)
def test_evaluation_follows_cel(cel: str, value: int) -> None:
    assert evaluate(parse_cost(cel), {**COUNTS, "model": "m", "input_tokens": 19}) == value


@pytest.mark.parametrize(
    "cel", ["input_tokens - 20u", "int(input_tokens) - 20", "input_tokens * 1000000000000u * 1000u"]
)
def test_an_evaluation_that_fails_for_these_counts_raises(cel: str) -> None:
    with pytest.raises(CelCostError):
        evaluate(parse_cost(cel), {**COUNTS, "model": "m", "input_tokens": 19})
