"""The IAM policy evaluator (local/iam/policy.py), on the cases AWS's policy
evaluation logic and policy element references describe."""

from __future__ import annotations

from typing import Any

import pytest

from local.iam.policy import (
    Decision,
    Policy,
    PolicyError,
    action_matches,
    resource_matches,
)

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/Books"
BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"


def policy(*statements: dict[str, Any]) -> Policy:
    return Policy.parse([{"Version": "2012-10-17", "Statement": list(statements)}])


def test_nothing_allows_means_an_implicit_deny() -> None:
    outcome = policy().evaluate("dynamodb:GetItem", TABLE)
    assert outcome.decision is Decision.IMPLICIT_DENY
    assert outcome.statement is None
    # a statement for another action or another resource allows nothing here either
    other = policy(
        {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE},
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE + "2"},
    )
    assert other.evaluate("dynamodb:GetItem", TABLE).decision is Decision.IMPLICIT_DENY


def test_an_explicit_deny_overrides_every_allow_whatever_the_order() -> None:
    allow = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
    deny = {"Sid": "NoDeletes", "Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"}
    for statements in ((allow, deny), (deny, allow)):
        outcome = policy(*statements).evaluate("dynamodb:DeleteItem", TABLE)
        assert outcome.decision is Decision.EXPLICIT_DENY
        assert outcome.statement is not None
        assert outcome.statement.sid == "NoDeletes"
        assert policy(*statements).evaluate("dynamodb:GetItem", TABLE).allowed


@pytest.mark.parametrize(
    ("pattern", "action", "matches"),
    [
        ("dynamodb:GetItem", "dynamodb:GetItem", True),
        ("dynamodb:getitem", "dynamodb:GetItem", True),  # actions are not case sensitive
        ("DynamoDB:*", "dynamodb:BatchGetItem", True),
        ("s3:Get*", "s3:GetObject", True),
        ("s3:Get*", "s3:PutObject", False),
        ("dynamodb:*Item", "dynamodb:BatchGetItem", True),
        ("dynamodb:*Item", "dynamodb:Query", False),
        ("sqs:?endMessage", "sqs:SendMessage", True),
        ("*", "execute-api:ManageConnections", True),
        ("dynamodb:GetItem", "dynamodb:GetItems", False),  # a whole match, not a prefix
    ],
)
def test_action_patterns(pattern: str, action: str, matches: bool) -> None:
    assert action_matches(pattern, action) is matches


@pytest.mark.parametrize(
    ("pattern", "arn", "matches"),
    [
        ("*", TABLE, True),
        (TABLE, TABLE, True),
        # a table's ARN does not cover its indexes: Query on an index needs index/*
        (TABLE, TABLE + "/index/ByAuthor", False),
        (TABLE + "/index/*", TABLE + "/index/ByAuthor", True),
        (TABLE + "/index/*", TABLE, False),
        # objects: bucket/* covers nested keys, but not the bucket itself
        (BUCKET + "/*", BUCKET + "/folder/photo.jpg", True),
        (BUCKET + "/*", BUCKET, False),
        (BUCKET + "/m/*", BUCKET + "/x/photo.jpg", False),
        # resources are case sensitive
        (TABLE.replace("Books", "books"), TABLE, False),
        ("arn:aws:dynamodb:us-east-?:123456789012:table/Books", TABLE, True),
        ("arn:aws:dynamodb:*:123456789012:table/*", TABLE, True),
        # a wildcard stays within its part of the ARN
        ("arn:aws:dynamodb:*:table/Books", TABLE, False),
        # a shorter pattern's last part takes the rest
        ("arn:aws:s3:::*", BUCKET + "/a/b", True),
        ("arn:*", TABLE, True),
        # an SMS to a phone number has no ARN: only "*" covers it
        ("arn:aws:sns:*:*:*", "*", False),
        ("arn:aws:sns:*:*:*", "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/1", True),
        (
            "arn:aws:execute-api:us-east-1:123456789012:api1/dev/*/@connections/*",
            "arn:aws:execute-api:us-east-1:123456789012:api1/dev/POST/@connections/abc=",
            True,
        ),
        (
            "arn:aws:execute-api:us-east-1:123456789012:api1/dev/*/@connections/*",
            "arn:aws:execute-api:us-east-1:123456789012:api1/prod/POST/@connections/abc=",
            False,
        ),
    ],
)
def test_resource_patterns(pattern: str, arn: str, matches: bool) -> None:
    assert resource_matches(pattern, arn) is matches


def test_not_action_allows_everything_but_what_it_names() -> None:
    # "Allow everything except IAM", as the NotAction reference shows it
    everything_but_iam = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert everything_but_iam.evaluate("s3:GetObject", BUCKET + "/a").allowed
    denied = everything_but_iam.evaluate("iam:CreateUser", "arn:aws:iam::123456789012:user/x")
    assert denied.decision is Decision.IMPLICIT_DENY  # not denied explicitly: just not allowed


def test_deny_with_not_resource_refuses_everything_outside_the_named_resources() -> None:
    # "Deny access to everything but one bucket", as the NotResource reference shows it
    only_one_bucket = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": [BUCKET, BUCKET + "/*"]},
    )
    assert only_one_bucket.evaluate("s3:GetObject", BUCKET + "/photo").allowed
    other = only_one_bucket.evaluate("s3:GetObject", "arn:aws:s3:::other-bucket/photo")
    assert other.decision is Decision.EXPLICIT_DENY


def test_allow_on_star_with_a_deny_on_every_sns_arn_leaves_sms_and_nothing_else() -> None:
    sms_only = policy(
        {"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"},
        {"Effect": "Deny", "Action": "sns:Publish", "Resource": "arn:aws:sns:*:*:*"},
    )
    assert sms_only.evaluate("sns:Publish", "*").allowed
    topic = sms_only.evaluate("sns:Publish", "arn:aws:sns:us-east-1:123456789012:other-team")
    assert topic.decision is Decision.EXPLICIT_DENY


def test_the_allowing_statement_and_its_place_are_reported() -> None:
    two = policy(
        {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": TABLE},
        {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": [TABLE]},
    )
    outcome = two.evaluate("dynamodb:GetItem", TABLE)
    assert outcome.allowed
    assert outcome.index == 1
    assert outcome.statement is not None
    assert outcome.statement.describe() == (
        f"Allow Action ['dynamodb:GetItem'] on Resource ['{TABLE}']"
    )


@pytest.mark.parametrize(
    ("statement", "complaint"),
    [
        (
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "true"}},
            },
            "Condition",
        ),
        ({"Effect": "Permit", "Action": "s3:GetObject", "Resource": "*"}, "Effect"),
        (
            {"Effect": "Allow", "Action": "s3:*", "NotAction": "s3:Get*", "Resource": "*"},
            "Action and NotAction",
        ),
        ({"Effect": "Allow", "Action": "s3:*"}, "Resource and NotResource"),
        ({"Effect": "Allow", "Action": [], "Resource": "*"}, "Action"),
        ({"Effect": "Allow", "Action": "s3:*", "Resource": {"Ref": "X"}}, "Resource"),
        (
            {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"},
            "Principal",
        ),
    ],
)
def test_a_statement_it_cannot_judge_faithfully_is_refused(
    statement: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(PolicyError, match=complaint):
        policy(statement)
