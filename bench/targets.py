"""The performance targets, checked against one run's figures: a line each, met or not.

Each target names the figures it reads (by group and name, as the modules print
them); ratios are taken within the run, so a slow machine moves both sides.
A target whose figures the run did not produce (a module failed, or `--only`
left it out) says "not measured".
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.report import Figure

__all__ = ["TARGETS", "Target", "Verdict", "check", "format_verdicts"]

Compare = Literal["at most", "at least"]


@dataclass(frozen=True)
class Target:
    """`what` holds when every figure matched (a `group` prefix and a `name` prefix),
    divided by the `per` figure if one is named, compares to `limit`."""

    what: str
    group: str
    name: str
    compare: Compare
    limit: float
    unit: str
    per: tuple[str, str] | None = None  # (group prefix, name prefix) of the baseline
    exclude: tuple[str, ...] = ()  # name prefixes left out (the baseline itself)


@dataclass(frozen=True)
class Verdict:
    target: Target
    worst: float | None  # None: not measured
    which: str = ""

    @property
    def met(self) -> bool:
        if self.worst is None:
            return False
        holds = operator.le if self.target.compare == "at most" else operator.ge
        return bool(holds(self.worst, self.target.limit))


_COST = "cost ("
# The cold starts are judged as Lambda runs the asset `make synth` builds: compiled
# with Python 3.13 (stacks/asset.py has uv fetch one where the machine has none).
# The bench also times the asset without bytecode (what a build with no network, or
# PARLEY_BYTECODE_PYTHON=none, ships): figures in its table, not targets.
_BASE_NAME = "bare `import boto3`"
_COMPILED = ("compiled cold start", _BASE_NAME)
# Lambda's own Python, where the machine has one (bench/coldstart.py)
_313 = "Python 3.13 "

TARGETS: tuple[Target, ...] = (
    Target("AWS requests per 1:1 message", "(a) one message", "AWS requests", "at most", 8, ""),
    Target(
        "AWS requests per message, bursts of 10",
        "(b) burst of 10",
        "AWS requests",
        "at most",
        4,
        "",
    ),
    Target(
        "billed WebSocket messages per 1:1 message",
        _COST,
        "1:1 message: billed WebSocket messages",
        "at most",
        4,
        "",
    ),
    Target("cost per 1:1 message", _COST, "1:1 message: messaging core", "at most", 6.5, " $/M"),
    Target(
        "cost per message, bursts of 10", _COST, "1:1 burst of 10: messaging", "at most", 4, " $/M"
    ),
    Target(
        "cold start, every WebSocket handler",
        "compiled cold start",
        "ws_",
        "at most",
        1.3,
        "x boto3",
        per=_COMPILED,
    ),
    Target(
        "cold start, HTTP API",
        "compiled cold start",
        "http_api",
        "at most",
        1.8,
        "x boto3",
        per=_COMPILED,
    ),
    Target(
        "cold start on 3.13, every WebSocket handler",
        f"{_313}compiled cold start",
        "ws_",
        "at most",
        1.3,
        "x boto3",
        per=(f"{_313}compiled cold start", _BASE_NAME),
    ),
    Target(
        "cold start on 3.13, HTTP API",
        f"{_313}compiled cold start",
        "http_api",
        "at most",
        1.8,
        "x boto3",
        per=(f"{_313}compiled cold start", _BASE_NAME),
    ),
    Target(
        "local stack throughput, 50 clients",
        "throughput",
        "messages delivered end to end / s (50",
        "at least",
        100,
        " msg/s",
    ),
    Target(
        "local stack p50 latency under that load",
        "throughput",
        "send-to-receive latency p50 (50",
        "at most",
        250,
        " ms",
    ),
    Target("ratchet, one-way", "ratchet", "one-way: speed-up", "at least", 3, "x doubleratchet"),
    Target(
        "ratchet, ping-pong", "ratchet", "ping-pong: speed-up", "at least", 2, "x doubleratchet"
    ),
)


def _matching(figures: Sequence[Figure], group: str, name: str) -> list[Figure]:
    return [f for f in figures if f.group.startswith(group) and f.name.startswith(name)]


def _verdict(target: Target, figures: Sequence[Figure]) -> Verdict:
    found = [
        f
        for f in _matching(figures, target.group, target.name)
        if not f.name.startswith(target.exclude)
    ]
    if not found:
        return Verdict(target, None)
    divisor = 1.0
    if target.per is not None:
        base = _matching(figures, *target.per)
        if not base or base[0].value <= 0:
            return Verdict(target, None)
        divisor = base[0].value
    worst = (max if target.compare == "at most" else min)(found, key=lambda f: f.value)
    return Verdict(target, worst.value / divisor, worst.name if len(found) > 1 else "")


def check(figures: Iterable[Figure], targets: Sequence[Target] = TARGETS) -> list[Verdict]:
    """Each target against the run's figures."""
    measured = list(figures)
    return [_verdict(target, measured) for target in targets]


def format_verdicts(verdicts: Sequence[Verdict]) -> str:
    """One line per target: what, the limit, what was measured, met / not met."""
    lines = []
    width = max(len(v.target.what) for v in verdicts)
    for verdict in verdicts:
        target = verdict.target
        sign = "<=" if target.compare == "at most" else ">="
        wanted = f"{sign} {target.limit:g}{target.unit}"
        if verdict.worst is None:
            lines.append(f"target  {target.what:<{width}}  {wanted:<22} not measured")
            continue
        got = f"{verdict.worst:.2f}{target.unit}"
        where = f" ({verdict.which})" if verdict.which else ""
        state = "met" if verdict.met else "NOT MET"
        lines.append(f"target  {target.what:<{width}}  {wanted:<22} {got}{where}: {state}")
    return "\n".join(lines)
