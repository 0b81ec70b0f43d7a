"""IAM identity-based policy evaluation, as AWS documents it for one account.

A request is an action ("dynamodb:GetItem") on a resource ARN. The decision:

1. an explicit Deny in any statement that matches wins;
2. otherwise an Allow in any statement that matches allows;
3. otherwise it is denied implicitly ("no identity-based policy allows").

A statement matches when its Action (or NotAction) and its Resource (or
NotResource) both match. Actions compare case-insensitively, resources
case-sensitively; `*` stands for any run of characters and `?` for one, and a
wildcard never crosses the first five colon-separated parts of an ARN (it may
span `/` and `:` inside the resource part, as `bucket/*` covers nested keys).

Conditions are not evaluated here: a statement that carries one is refused
when the policy is loaded, so a policy that depends on a condition can never be
allowed more (or less) locally than on AWS without anyone noticing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "Decision",
    "Outcome",
    "Policy",
    "PolicyError",
    "Statement",
    "action_matches",
    "resource_matches",
]


class PolicyError(ValueError):
    """A policy this evaluator cannot judge faithfully (or that is malformed)."""


class Decision(StrEnum):
    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@functools.lru_cache(maxsize=4096)
def _pattern(text: str, *, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """`pattern` (e.g. "dynamodb:*Item") covers `action` (e.g. "dynamodb:GetItem")."""
    return _pattern(pattern, ignore_case=True).fullmatch(action) is not None


def resource_matches(pattern: str, arn: str) -> bool:
    """`pattern` covers the resource `arn`; "*" covers everything."""
    if pattern == "*":
        return True
    # the last part of a shorter pattern ("arn:aws:s3:::*", "arn:*") takes the rest
    pattern_parts = pattern.split(":", 5)
    arn_parts = arn.split(":", len(pattern_parts) - 1)
    if len(pattern_parts) != len(arn_parts):
        return False
    return all(
        _pattern(p, ignore_case=False).fullmatch(a) is not None
        for p, a in zip(pattern_parts, arn_parts, strict=True)
    )


def _strings(value: Any, element: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{element} must be a string or a list of strings, got {value!r}")
    return tuple(values)


@dataclass(frozen=True)
class Statement:
    """One statement: its effect and what it covers (exactly one of each pair is set)."""

    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    sid: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Statement:
        if not isinstance(raw, Mapping):
            raise PolicyError(f"a statement must be an object, got {raw!r}")
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"Effect must be Allow or Deny, got {effect!r}")
        if "Condition" in raw:
            raise PolicyError(
                f"statement {raw.get('Sid') or raw!r} has a Condition, which the local "
                "evaluator does not judge: extend local/iam/policy.py before relying on it"
            )
        if "Principal" in raw or "NotPrincipal" in raw:
            raise PolicyError("identity-based policies name no Principal")
        if ("Action" in raw) == ("NotAction" in raw):
            raise PolicyError("a statement has exactly one of Action and NotAction")
        if ("Resource" in raw) == ("NotResource" in raw):
            raise PolicyError("a statement has exactly one of Resource and NotResource")
        sid = raw.get("Sid")
        return cls(
            effect=effect,
            actions=_strings(raw["Action"], "Action") if "Action" in raw else (),
            not_actions=_strings(raw["NotAction"], "NotAction") if "NotAction" in raw else (),
            resources=_strings(raw["Resource"], "Resource") if "Resource" in raw else (),
            not_resources=(
                _strings(raw["NotResource"], "NotResource") if "NotResource" in raw else ()
            ),
            sid=sid if isinstance(sid, str) else None,
        )

    def covers_action(self, action: str) -> bool:
        if self.actions:
            return any(action_matches(p, action) for p in self.actions)
        return not any(action_matches(p, action) for p in self.not_actions)

    def covers_resource(self, arn: str) -> bool:
        if self.resources:
            return any(resource_matches(p, arn) for p in self.resources)
        return not any(resource_matches(p, arn) for p in self.not_resources)

    def matches(self, action: str, arn: str) -> bool:
        return self.covers_action(action) and self.covers_resource(arn)

    def describe(self) -> str:
        what = (
            f"Action {list(self.actions)}"
            if self.actions
            else f"NotAction {list(self.not_actions)}"
        )
        where = (
            f"Resource {list(self.resources)}"
            if self.resources
            else f"NotResource {list(self.not_resources)}"
        )
        sid = f" ({self.sid})" if self.sid else ""
        return f"{self.effect}{sid} {what} on {where}"


@dataclass(frozen=True)
class Outcome:
    """The decision on one (action, resource), and the statement that made it."""

    action: str
    resource: str
    decision: Decision
    statement: Statement | None = None
    index: int | None = None  # the statement's place in the policy

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


@dataclass(frozen=True)
class Policy:
    """Every statement of every identity-based policy attached to one principal."""

    statements: tuple[Statement, ...]

    @classmethod
    def parse(cls, documents: Iterable[Mapping[str, Any]]) -> Policy:
        """From policy documents ({"Version": …, "Statement": [...]}) or bare statements."""
        statements: list[Statement] = []
        for document in documents:
            raw = document.get("Statement", document) if isinstance(document, Mapping) else None
            if raw is None:
                raise PolicyError(f"not a policy document: {document!r}")
            for item in raw if isinstance(raw, list) else [raw]:
                statements.append(Statement.parse(item))
        return cls(tuple(statements))

    def evaluate(self, action: str, resource: str) -> Outcome:
        allowed_by: int | None = None
        for index, statement in enumerate(self.statements):
            if not statement.matches(action, resource):
                continue
            if statement.effect == "Deny":
                return Outcome(action, resource, Decision.EXPLICIT_DENY, statement, index)
            if allowed_by is None:
                allowed_by = index
        if allowed_by is not None:
            statement = self.statements[allowed_by]
            return Outcome(action, resource, Decision.ALLOWED, statement, allowed_by)
        return Outcome(action, resource, Decision.IMPLICIT_DENY)

    def evaluate_all(self, requests: Sequence[tuple[str, str]]) -> list[Outcome]:
        """One outcome per (action, resource); a call is allowed only if every one is."""
        return [self.evaluate(action, resource) for action, resource in requests]
