"""How API Gateway reads a Lambda REQUEST authorizer's answer.

The answer is an IAM policy: the connection is allowed only if a statement
allows `execute-api:Invoke` on the route's ARN and none denies it; its
`context` (string, number or boolean values only) and `principalId` reach every
later event of the connection as requestContext.authorizer. A malformed answer
is API Gateway's AuthorizerConfigurationException, a 500.
"""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from typing import Any

__all__ = ["AuthorizerDenied", "BadAuthorizerResponse", "authorizer_context"]

log = logging.getLogger("local")

# API Gateway's quota on an authorizer's result.
MAX_RESULT_BYTES = 8 * 1024
_UNSUPPORTED = ("NotAction", "NotResource", "Condition")


class AuthorizerDenied(Exception):
    """The policy does not allow the call (403)."""


class BadAuthorizerResponse(ValueError):
    """The authorizer's answer is not a valid policy response (500)."""


@cache
def _glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    # IAM wildcards: * is any run of characters, ? is one character.
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(f"^{body}$", flags)


def _as_list(value: Any, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise BadAuthorizerResponse(f"{what} must be a string or a list of strings")
    return items


def _matches(patterns: list[str], value: str, *, ignore_case: bool) -> bool:
    return any(_glob(p, ignore_case=ignore_case).match(value) for p in patterns)


def authorizer_context(result: Any, method_arn: str) -> dict[str, Any]:
    """requestContext.authorizer for an allowed call; AuthorizerDenied or
    BadAuthorizerResponse otherwise."""
    if not isinstance(result, dict):
        raise BadAuthorizerResponse("the answer must be an object")
    if len(json.dumps(result).encode()) > MAX_RESULT_BYTES:
        raise BadAuthorizerResponse("the answer is larger than 8 KB")
    principal = result.get("principalId")
    if not isinstance(principal, str) or not principal:
        raise BadAuthorizerResponse("principalId must be a non-empty string")
    policy = result.get("policyDocument")
    if not isinstance(policy, dict):
        raise BadAuthorizerResponse("policyDocument must be an object")
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        raise BadAuthorizerResponse("policyDocument.Statement must be a list of objects")
    context = result.get("context") or {}
    if not isinstance(context, dict):
        raise BadAuthorizerResponse("context must be an object")
    for key, value in context.items():
        # API Gateway refuses objects, arrays and null as context values.
        if not isinstance(value, str | int | float | bool):
            raise BadAuthorizerResponse(f"context[{key!r}] must be a string, number or boolean")

    allowed = False
    for statement in statements:
        if any(key in statement for key in _UNSUPPORTED):
            log.warning("authorizer statement with %s is ignored locally", _UNSUPPORTED)
            continue
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise BadAuthorizerResponse(f"Effect must be Allow or Deny, got {effect!r}")
        actions = _as_list(statement.get("Action"), "Action")
        resources = _as_list(statement.get("Resource"), "Resource")
        if not _matches(actions, "execute-api:Invoke", ignore_case=True):
            continue
        if not _matches(resources, method_arn, ignore_case=False):
            continue
        if effect == "Deny":
            raise AuthorizerDenied(method_arn)
        allowed = True
    if not allowed:
        raise AuthorizerDenied(method_arn)
    return {**context, "principalId": principal}
