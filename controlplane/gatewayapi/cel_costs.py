"""A ``CEL`` cost's expression: parsed and type-checked here, so Envoy computes it (``ir.cost_expression``).

The subset is what upstream's documentation and examples write (envoyproxy/ai-gateway v1.0.0,
``api/v1beta1/shared_types.go``, ``examples/token_ratelimit``): integer, unsigned (``3u``), double, string and
bool literals; the variables ``model``, ``route_name``, ``backend`` and the token counts; ``+ - * / %``,
comparisons, ``! && ||``, ``?:``, parentheses, and ``int()``, ``uint()``, ``double()``. The rules are CEL's,
as upstream's cel-go applies them: no implicit conversion between ``int``, ``uint`` and ``double``
(``input_tokens * 0.5`` does not compile, so upstream's own doc example with ``* 0.1`` is refused there too),
and the result must be an ``int`` or ``uint``. Like upstream, the expression is also evaluated once with a
``"dummy"`` model and zero counts, so one that always fails (``uint(1) - uint(2)``) is refused at translation.
Anything else (macros, members, other functions) is refused with what is wrong named.

At run time an evaluation error (a ``uint`` going below zero, a division by zero, an integer reaching 2^53,
a negative ``int`` result) publishes no value for that response, where upstream fails the cost the same
way; the other costs are unaffected. Integers are exact up to 2^53 here (Lua numbers), not 2^63 as in CEL.
One known difference: CEL's ``&&`` and ``||`` absorb an error on one side when the other decides, while
here they run left to right: ``1u / output_tokens > 0u || true`` fails with zero counts, so it is refused.
"""

from __future__ import annotations

import functools
import math
import re

from controlplane.ir import cost_expression as ce

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<double>\d*\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
    | (?P<integer>0[xX][0-9a-fA-F]+[uU]?|\d+[uU]?)
    | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<operator>\|\||&&|==|!=|<=|>=|[-+*/%<>!?:(),])
    )""",
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)")
_SIMPLE_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "`": "`", "?": "?"}
_NUMBERS: tuple[ce.CelType, ...] = ("int", "uint", "double")
_ARITHMETIC = {"+", "-", "*", "/", "%"}
_RELATIONS = {"==", "!=", "<", "<=", ">", ">="}
_MAX_LENGTH = 1024
"""Longer expressions are refused: the Lua source Envoy compiles grows with them."""


class CelCostError(ValueError):
    """The expression is not one Envoy can compute; the message says why (and where, by column)."""


@functools.lru_cache(maxsize=1024)
def parse_cost(text: str) -> ce.Expression:
    """``text`` checked and typed; raises ``CelCostError``. Cached: a route's costs are read on every
    translation that touches it."""
    if len(text) > _MAX_LENGTH:
        raise CelCostError(f"is longer than {_MAX_LENGTH} characters")
    expression = _Parser(text).parse()
    if expression.type not in ("int", "uint"):
        raise CelCostError(f"must evaluate to an int or a uint, not {expression.type}")
    try:
        dummies = dict.fromkeys((ce.MODEL, ce.ROUTE_NAME, ce.BACKEND), "dummy")
        evaluate(expression, {**dummies, **dict.fromkeys(ce.TOKEN_COUNTS, 0)})
    except CelCostError as error:
        raise CelCostError(f"fails with a dummy model and zero counts: {error}") from None
    return expression


def evaluate(expression: ce.Expression, values: dict[str, int | str]) -> int:
    """The cost for ``values`` (by variable name), with the semantics of the Lua Envoy runs."""
    result = _value(expression, values)
    assert isinstance(result, int | float)  # parse_cost accepts int and uint results only
    if result < 0:
        raise CelCostError(f"the result is negative ({result})")
    return int(result)


class _Parser:
    """Recursive descent over CEL's grammar, typing each node as it is built."""

    def __init__(self, text: str) -> None:
        self._tokens: list[tuple[str, str, int]] = []
        at = 0
        while text[at:].strip():
            found = _TOKEN.match(text, at)
            if found is None or found.lastgroup is None:
                column = at + len(text[at:]) - len(text[at:].lstrip()) + 1
                raise CelCostError(f"unsupported syntax at column {column}: {text[column - 1]!r}")
            self._tokens.append(
                (found.lastgroup, found.group(found.lastgroup), found.start(found.lastgroup) + 1)
            )
            at = found.end()
        self._at = 0

    def parse(self) -> ce.Expression:
        if not self._tokens:
            raise CelCostError("is empty")
        expression = self._conditional()
        if self._at < len(self._tokens):
            _, text, column = self._tokens[self._at]
            raise CelCostError(f"unexpected {text!r} at column {column}")
        return expression

    def _peek(self) -> str | None:
        return self._tokens[self._at][1] if self._at < len(self._tokens) else None

    def _take(self) -> tuple[str, str, int]:
        if self._at >= len(self._tokens):
            raise CelCostError("ends too early")
        self._at += 1
        return self._tokens[self._at - 1]

    def _expect(self, text: str) -> None:
        kind, found, column = self._take()
        if found != text or kind != "operator":
            raise CelCostError(f"expected {text!r} at column {column}, found {found!r}")

    def _conditional(self) -> ce.Expression:
        condition = self._binary(0)
        if self._peek() != "?":
            return condition
        self._take()
        then = self._binary(0)
        self._expect(":")
        otherwise = self._conditional()
        if condition.type != "bool":
            raise CelCostError(f"the condition of '?:' is a {condition.type}, not a bool")
        if then.type != otherwise.type:
            raise CelCostError(f"the branches of '?:' differ in type: {then.type} and {otherwise.type}")
        return ce.Conditional(condition, then, otherwise, then.type)

    _LEVELS = (("||",), ("&&",), tuple(_RELATIONS), ("+", "-"), ("*", "/", "%"))

    def _binary(self, level: int) -> ce.Expression:
        if level == len(self._LEVELS):
            return self._unary()
        left = self._binary(level + 1)
        while (operator := self._peek()) in self._LEVELS[level] and self._tokens[self._at][0] == "operator":
            self._take()
            right = self._binary(level + 1)
            left = ce.Binary(operator, left, right, _binary_type(operator, left.type, right.type))
        return left

    def _unary(self) -> ce.Expression:
        operator = self._peek()
        if operator not in ("-", "!") or self._tokens[self._at][0] != "operator":
            return self._primary()
        self._take()
        operand = self._unary()
        if operator == "!":
            if operand.type != "bool":
                raise CelCostError(f"'!' applies to a bool, not a {operand.type}")
            return ce.Unary("!", operand, "bool")
        if operand.type not in ("int", "double"):
            raise CelCostError(f"'-' applies to an int or a double, not a {operand.type}")
        if isinstance(operand, ce.Constant) and not isinstance(operand.value, str | bool):
            return ce.Constant(-operand.value, operand.type)
        return ce.Unary("-", operand, operand.type)

    def _primary(self) -> ce.Expression:
        kind, text, column = self._take()
        if kind == "double":
            return ce.Constant(float(text), "double")
        if kind == "integer":
            return _integer(text)
        if kind == "string":
            return ce.Constant(_unquote(text), "string")
        if kind == "operator":
            if text != "(":
                raise CelCostError(f"unexpected {text!r} at column {column}")
            inner = self._conditional()
            self._expect(")")
            return inner
        if text in ("true", "false"):
            return ce.Constant(text == "true", "bool")
        if self._peek() == "(":
            return self._conversion(text)
        if text not in ce.VARIABLES:
            known = ", ".join(ce.VARIABLES)
            raise CelCostError(f"undeclared reference to {text!r} (the variables are {known})")
        return ce.Variable(text, ce.VARIABLES[text])

    def _conversion(self, function: str) -> ce.Expression:
        if function not in _NUMBERS:
            raise CelCostError(
                f"the function {function}() is not supported (only int(), uint() and double())"
            )
        self._expect("(")
        operand = self._conditional()
        self._expect(")")
        if operand.type not in _NUMBERS:
            raise CelCostError(f"{function}() of a {operand.type} is not supported")
        target = next(kind for kind in _NUMBERS if kind == function)
        if operand.type == target:
            return operand
        conversion = ce.Conversion(operand, target)
        if isinstance(operand, ce.Constant):
            # uint(3) is a uint constant: Envoy need not convert it per response.
            folded = _value(conversion, {})
            assert isinstance(folded, int | float)  # a number converted
            return ce.Constant(folded, target)
        return conversion


def _binary_type(operator: str, left: ce.CelType, right: ce.CelType) -> ce.CelType:
    if operator in ("&&", "||"):
        if left != "bool" or right != "bool":
            raise CelCostError(f"{operator!r} joins bools, not {left} and {right}")
        return "bool"
    if left != right:
        raise CelCostError(
            f"no {operator!r} between {left} and {right}: CEL does not convert implicitly "
            "(use int(), uint() or double())"
        )
    if operator in _RELATIONS:
        if operator not in ("==", "!=") and left == "bool":
            raise CelCostError(f"no {operator!r} between bools")
        return "bool"
    if left == "string" and operator == "+":
        return "string"
    if left not in _NUMBERS or (operator == "%" and left == "double"):
        raise CelCostError(f"no {operator!r} for {left}")
    return left


def _integer(text: str) -> ce.Constant:
    unsigned = text[-1] in "uU"
    digits = text.rstrip("uU")
    value = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits)
    if value >= ce.SAFE_INTEGER:
        raise CelCostError(f"the integer {text} is too large (the limit is 2^53)")
    return ce.Constant(value, "uint" if unsigned else "int")


def _unquote(text: str) -> str:
    def replace(escape: re.Match[str]) -> str:
        code = escape.group(1)
        if code[0] in "xu" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code not in _SIMPLE_ESCAPES:
            raise CelCostError(f"the escape \\{code} is not supported")
        return _SIMPLE_ESCAPES[code]

    return _ESCAPE.sub(replace, text[1:-1])


def _value(expression: ce.Expression, values: dict[str, int | str]) -> int | float | str | bool:
    match expression:
        case ce.Constant(value=value):
            return value
        case ce.Variable(name=name):
            return values[name]
        case ce.Unary(operator="!", operand=operand):
            return not _value(operand, values)
        case ce.Unary(operand=operand, type=kind):
            return _checked(-_number(operand, values), kind)
        case ce.Conditional(condition=condition, then=then, otherwise=otherwise):
            return _value(then if _value(condition, values) else otherwise, values)
        case ce.Conversion(operand=operand, type=kind):
            number = _number(operand, values)
            if kind == "double":
                return float(number)
            if math.isnan(number) or math.isinf(number):
                raise CelCostError(f"{kind}() of {number}")
            return _checked(math.trunc(number), kind)
        case ce.Binary(operator="&&", left=left, right=right):
            return bool(_value(left, values)) and bool(_value(right, values))
        case ce.Binary(operator="||", left=left, right=right):
            return bool(_value(left, values)) or bool(_value(right, values))
        case ce.Binary(operator=operator, left=left, right=right, type=kind):
            return _binary_value(operator, _value(left, values), _value(right, values), kind)
    raise AssertionError(expression)  # every node kind is matched above


def _binary_value(
    operator: str, left: int | float | str | bool, right: int | float | str | bool, kind: ce.CelType
) -> int | float | str | bool:
    if operator in _RELATIONS:
        relations = {
            "==": left == right,
            "!=": left != right,
            "<": left < right,  # type: ignore[operator]
            "<=": left <= right,  # type: ignore[operator]
            ">": left > right,  # type: ignore[operator]
            ">=": left >= right,  # type: ignore[operator]
        }
        return relations[operator]
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    assert isinstance(left, int | float)  # the parser typed both operands as numbers
    assert isinstance(right, int | float)
    if operator in ("/", "%") and right == 0:
        if kind != "double":
            raise CelCostError("division by zero")
        return math.copysign(math.inf, left) if left else math.nan
    if operator == "/":
        return left / right if kind == "double" else _checked(math.trunc(left / right), kind)
    if operator == "%":
        return _checked(int(math.fmod(left, right)), kind)
    return _checked({"+": left + right, "-": left - right, "*": left * right}[operator], kind)


def _number(expression: ce.Expression, values: dict[str, int | str]) -> int | float:
    number = _value(expression, values)
    assert isinstance(number, int | float)  # the parser typed the operand as a number
    return number


def _checked(value: int | float, kind: ce.CelType) -> int | float:
    if kind == "double":
        return value
    if kind == "uint" and value < 0:
        raise CelCostError("unsigned integer overflow (below zero)")
    if abs(value) >= ce.SAFE_INTEGER:
        raise CelCostError("integer overflow (2^53)")
    return value
