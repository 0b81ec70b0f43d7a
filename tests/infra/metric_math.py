"""A checker for CloudWatch metric math: only the documented functions and forms.

CloudWatch validates an alarm's expression when CloudFormation creates the
alarm, so an expression it does not accept fails the deploy and rolls the whole
stack back; nothing checks it at synth. This parser accepts the subset of the
language the CloudWatch User Guide documents ("Metric math syntax and
functions"): numbers, metric ids, the operators + - * / ^ (and unary -), the
comparisons == != <= >= < >, AND / && / OR / ||, parentheses, arrays of time
series, and the functions of its table, each with the argument kinds that table
gives it. It types every sub-expression as a scalar (S), a time series (TS) or
an array of time series (TS[]), as the guide does, and refuses anything else
with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ALARM_DISCOURAGED",
    "FUNCTIONS",
    "Kind",
    "MetricMathError",
    "check",
]


class MetricMathError(ValueError):
    """An expression CloudWatch does not document."""


class Kind(StrEnum):
    S = "S"
    TS = "TS"
    TS_ARRAY = "TS[]"


S, TS, TSA = Kind.S, Kind.TS, Kind.TS_ARRAY

# Function -> (argument kinds) -> result kind, from the guide's function table.
_Signature = Callable[[list[Kind]], Kind | None]


def _unary(mapping: dict[Kind, Kind]) -> _Signature:
    def sig(args: list[Kind]) -> Kind | None:
        return mapping.get(args[0]) if len(args) == 1 else None

    return sig


def _if(args: list[Kind]) -> Kind | None:
    # IF(TS cmp S, S|TS, S|TS), IF(TS, TS, TS), IF(TS, S, TS), IF(TS, TS, S),
    # IF(TS, S, S), IF(S, TS, TS); the false value may be omitted
    if len(args) not in (2, 3):
        return None
    condition, *values = args
    if condition is TS and all(v in (S, TS) for v in values):
        return TS
    if condition is S and all(v is TS for v in values):
        return TS
    return None


def _fill(args: list[Kind]) -> Kind | None:
    # FILL(TS, S | REPEAT | LINEAR), FILL(TS[], TS | S | REPEAT | LINEAR)
    if len(args) != 2:
        return None
    series, filler = args
    if series is TS and filler is S:
        return TS
    if series is TSA and filler in (S, TS):
        return TSA
    return None


def _metrics(args: list[Kind]) -> Kind | None:
    return TSA if len(args) <= 1 else None  # METRICS() or METRICS("id part")


_PER_POINT = _unary({TS: TS, TSA: TSA})
_AGGREGATE = _unary({TS: S, TSA: TS})

FUNCTIONS: dict[str, _Signature] = {
    "ABS": _PER_POINT,
    "AVG": _AGGREGATE,
    "CEIL": _PER_POINT,
    "DATAPOINT_COUNT": _AGGREGATE,
    "DIFF": _PER_POINT,
    "DIFF_TIME": _PER_POINT,
    "FILL": _fill,
    "FIRST": _unary({TSA: TS}),
    "LAST": _unary({TSA: TS}),
    "FLOOR": _PER_POINT,
    "IF": _if,
    "LOG": _PER_POINT,
    "LOG10": _PER_POINT,
    "MAX": _AGGREGATE,
    "METRIC_COUNT": _unary({TSA: S}),
    "METRICS": _metrics,
    "MIN": _AGGREGATE,
    **{name: _unary({TS: TS}) for name in ("MINUTE", "HOUR", "DAY", "DATE", "MONTH", "YEAR")},
    "EPOCH": _unary({TS: TS}),
    "PERIOD": _unary({TS: S}),
    "RATE": _PER_POINT,
    "REMOVE_EMPTY": _unary({TSA: TSA}),
    "RUNNING_SUM": _PER_POINT,
    "STDDEV": _AGGREGATE,
    "SUM": _AGGREGATE,
    "TIME_SERIES": _unary({S: TS}),
}
# "We recommend that you do not use this function in CloudWatch alarms": an alarm
# fetches more data points than it evaluates, and these answer differently then.
ALARM_DISCOURAGED = frozenset(
    {"AVG", "DATAPOINT_COUNT", "MAX", "MIN", "REMOVE_EMPTY", "RUNNING_SUM", "STDDEV", "SUM"}
)
# FILL's named fillers
_FILL_WORDS = frozenset({"REPEAT", "LINEAR"})

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<string>\"[^\"]*\")"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/^<>()\[\],]))"
)
_COMPARISONS = frozenset({"==", "!=", "<=", ">=", "<", ">"})
_IDENTIFIER = re.compile(r"^[a-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class _Token:
    kind: str  # number, name, string, op
    text: str


def _tokens(expression: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(expression):
        if not expression[position:].strip():
            break
        match = _TOKEN.match(expression, position)
        if match is None:
            raise MetricMathError(f"unexpected {expression[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append(_Token(kind, match.group(kind)))
        position = match.end()
    return found


class _Parser:
    def __init__(self, expression: str, ids: Iterable[str]) -> None:
        self.tokens = _tokens(expression)
        self.at = 0
        self.ids = set(ids)
        self.functions: set[str] = set()

    # -- tokens -----------------------------------------------------------------------

    def _peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _take(self, text: str | None = None) -> _Token:
        token = self._peek()
        if token is None:
            raise MetricMathError(f"expected {text!r}, found the end" if text else "unexpected end")
        if text is not None and token.text != text:
            raise MetricMathError(f"expected {text!r}, found {token.text!r}")
        self.at += 1
        return token

    def _at_op(self, *texts: str) -> bool:
        token = self._peek()
        return token is not None and token.text in texts

    # -- grammar (lowest precedence first) ---------------------------------------------

    def parse(self) -> Kind:
        kind = self._logical()
        if self._peek() is not None:
            raise MetricMathError(f"unexpected {self._peek().text!r}")  # type: ignore[union-attr]
        return kind

    def _logical(self) -> Kind:
        kind = self._comparison()
        while self._at_op("AND", "OR", "&&", "||"):
            self._take()
            kind = _combine(kind, self._comparison(), "logical operator", arrays=False)
        return kind

    def _comparison(self) -> Kind:
        kind = self._additive()
        if self._peek() is not None and self._peek().text in _COMPARISONS:  # type: ignore[union-attr]
            self._take()
            kind = _combine(kind, self._additive(), "comparison", arrays=False)
        return kind

    def _additive(self) -> Kind:
        kind = self._multiplicative()
        while self._at_op("+", "-"):
            self._take()
            kind = _combine(kind, self._multiplicative(), "arithmetic")
        return kind

    def _multiplicative(self) -> Kind:
        kind = self._unary()
        while self._at_op("*", "/"):
            self._take()
            kind = _combine(kind, self._unary(), "arithmetic")
        return kind

    def _unary(self) -> Kind:
        if self._at_op("-"):
            self._take()
            return self._unary()
        kind = self._primary()
        if self._at_op("^"):
            self._take()
            kind = _combine(kind, self._unary(), "arithmetic")
        return kind

    def _primary(self) -> Kind:
        token = self._take()
        if token.kind == "number":
            return S
        if token.text == "(":
            kind = self._logical()
            self._take(")")
            return kind
        if token.text == "[":
            return self._array()
        if token.kind == "name":
            if self._at_op("("):
                return self._call(token.text)
            if token.text in self.ids:
                return TS
            raise MetricMathError(f"{token.text!r} is not a metric id of this expression")
        raise MetricMathError(f"unexpected {token.text!r}")

    def _array(self) -> Kind:
        while True:
            kind = self._logical()
            if kind is S:
                raise MetricMathError("an array holds time series, not scalars")
            if self._at_op("]"):
                self._take()
                return TSA
            self._take(",")

    def _call(self, name: str) -> Kind:
        if name not in FUNCTIONS:
            raise MetricMathError(f"{name} is not a documented metric math function")
        self.functions.add(name)
        self._take("(")
        args: list[Kind] = []
        while not self._at_op(")"):
            token = self._peek()
            if name == "METRICS" and token is not None and token.kind == "string":
                self._take()
            elif name == "FILL" and token is not None and token.text in _FILL_WORDS:
                self._take()
                args.append(S)
            else:
                args.append(self._logical())
            if not self._at_op(")"):
                self._take(",")
        self._take(")")
        result = FUNCTIONS[name](args)
        if result is None:
            shown = ", ".join(a.value for a in args)
            raise MetricMathError(f"{name}({shown}) is not one of the documented forms")
        return result


def _combine(left: Kind, right: Kind, what: str, *, arrays: bool = True) -> Kind:
    kinds = {left, right}
    if TSA in kinds:
        if not arrays:
            raise MetricMathError(f"a {what} takes time series or scalars, not arrays")
        return TSA
    return TS if TS in kinds else S


def check(expression: str, ids: Iterable[str], *, alarm: bool) -> Kind:
    """The kind `expression` evaluates to, or MetricMathError naming what is wrong.

    `ids` are the metric and expression ids it may refer to; an alarm's expression
    must give one time series and avoid the functions the guide discourages there.
    """
    for id_ in ids:
        if not _IDENTIFIER.match(id_):
            raise MetricMathError(f"id {id_!r} must start with a lowercase letter")
    parser = _Parser(expression, ids)
    kind = parser.parse()
    if kind is S:
        raise MetricMathError("the result is a scalar; it must be a time series")
    if alarm:
        if kind is not TS:
            raise MetricMathError("an alarm watches exactly one time series")
        discouraged = sorted(parser.functions & ALARM_DISCOURAGED)
        if discouraged:
            raise MetricMathError(f"{', '.join(discouraged)} should not be used in alarms")
    return kind
