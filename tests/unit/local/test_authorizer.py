"""How the local gateway reads a REQUEST authorizer's policy (API Gateway's rules)."""

from __future__ import annotations

from typing import Any

import pytest

from local.authorizer import AuthorizerDenied, BadAuthorizerResponse, authorizer_context

ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/local/$connect"


def answer(*statements: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "principalId": "u1",
        "policyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
        **extra,
    }


def allow(resource: Any = ARN, action: Any = "execute-api:Invoke") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deny(resource: Any = ARN) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": resource}


def test_allow_gives_context_plus_principal() -> None:
    context = authorizer_context(
        answer(allow(), context={"user_id": "u1", "device_id": "d1", "n": 3, "ok": True}), ARN
    )
    assert context == {"user_id": "u1", "device_id": "d1", "n": 3, "ok": True, "principalId": "u1"}


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/*",
        "arn:aws:execute-api:*:*:*/local/$connect",
        ["arn:aws:s3:::other", "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/?ocal/*"],
        "*",
    ],
)
def test_wildcard_resources_match(resource: Any) -> None:
    assert authorizer_context(answer(allow(resource)), ARN)["principalId"] == "u1"


def test_action_wildcards_match_case_insensitively() -> None:
    assert authorizer_context(answer(allow(action="Execute-API:*")), ARN)
    assert authorizer_context(answer(allow(action=["s3:GetObject", "*"])), ARN)


@pytest.mark.parametrize(
    "statements",
    [
        [deny()],
        [allow(), deny("arn:aws:execute-api:*")],  # an explicit deny wins over an allow
        [allow("arn:aws:execute-api:us-east-1:123456789012:other/local/$connect")],
        [allow(action="execute-api:ManageConnections")],
        [],
    ],
)
def test_deny_or_no_matching_allow_is_denied(statements: list[dict[str, Any]]) -> None:
    with pytest.raises(AuthorizerDenied):
        authorizer_context(answer(*statements), ARN)


@pytest.mark.parametrize(
    "result",
    [
        None,
        "Allow",
        {"policyDocument": {"Statement": [allow()]}},  # no principalId
        {"principalId": "", "policyDocument": {"Statement": [allow()]}},
        {"principalId": "u1"},
        {"principalId": "u1", "policyDocument": {"Statement": "Allow"}},
        answer({"Effect": "Maybe", "Action": "execute-api:Invoke", "Resource": ARN}),
        answer(allow(resource=3)),
        answer(allow(), context={"nested": {"a": 1}}),
        answer(allow(), context={"list": [1]}),
        answer(allow(), context={"null": None}),
        answer(allow(), context={"big": "x" * 9000}),
    ],
)
def test_malformed_answers_are_configuration_errors(result: Any) -> None:
    with pytest.raises(BadAuthorizerResponse):
        authorizer_context(result, ARN)


def test_a_single_statement_object_is_accepted() -> None:
    result = {"principalId": "u1", "policyDocument": {"Statement": allow()}}
    assert authorizer_context(result, ARN) == {"principalId": "u1"}
