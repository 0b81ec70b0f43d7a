"""Each function is held to its synthesized IAM policy (local/iam): which calls
need what, how a refused call fails, and that taking away a grant a handler
needs makes it fail as it would on AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.iam import enforce
from local.iam.requests import UnknownCall, Where, needed
from local.iam.template import LOCAL_API_ID, FunctionPolicies, load_snapshot, resolve
from parley_server.catalogue import FUNCTIONS, Setting
from parley_server.store.aws import client, s3_client
from tests.conftest import REGION, FakeAws
from tests.integration.ws_harness import harness

ACCOUNT = "123456789012"
WHERE = Where(REGION, ACCOUNT, f"arn:aws:execute-api:{REGION}:{ACCOUNT}:api1/dev")
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        ("dynamodb", "GetItem", {"TableName": "T", "Key": {}}, [("dynamodb:GetItem", TABLE + "T")]),
        (
            "dynamodb",
            "Query",
            {"TableName": "T", "IndexName": "by-x"},
            [("dynamodb:Query", TABLE + "T/index/by-x")],
        ),
        (
            "dynamodb",
            "BatchGetItem",
            {"RequestItems": {"A": {}, "B": {}}},
            [("dynamodb:BatchGetItem", TABLE + "A"), ("dynamodb:BatchGetItem", TABLE + "B")],
        ),
        (
            "dynamodb",
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Put": {"TableName": "A"}},
                    {"Delete": {"TableName": "B"}},
                    {"ConditionCheck": {"TableName": "C"}},
                    {"Update": {"TableName": "A"}},
                ]
            },
            [
                ("dynamodb:PutItem", TABLE + "A"),
                ("dynamodb:DeleteItem", TABLE + "B"),
                ("dynamodb:ConditionCheckItem", TABLE + "C"),
                ("dynamodb:UpdateItem", TABLE + "A"),
            ],
        ),
        (
            "s3",
            "HeadObject",
            {"Bucket": "b", "Key": "m/1"},
            [("s3:GetObject", "arn:aws:s3:::b/m/1")],
        ),
        ("s3", "ListObjectsV2", {"Bucket": "b"}, [("s3:ListBucket", "arn:aws:s3:::b")]),
        (
            "s3",
            "DeleteObjects",
            {"Bucket": "b", "Delete": {"Objects": [{"Key": "m/1"}, {"Key": "m/2"}]}},
            [("s3:DeleteObject", "arn:aws:s3:::b/m/1"), ("s3:DeleteObject", "arn:aws:s3:::b/m/2")],
        ),
        ("sns", "Publish", {"PhoneNumber": "+14155552671", "Message": "x"}, [("sns:Publish", "*")]),
        (
            "sns",
            "Publish",
            {"TargetArn": "arn:aws:sns:us-east-1:1:endpoint/GCM/a/1", "Message": "x"},
            [("sns:Publish", "arn:aws:sns:us-east-1:1:endpoint/GCM/a/1")],
        ),
        (
            "sqs",
            "SendMessage",
            {"QueueUrl": "http://127.0.0.1:5000/123456789012/jobs.fifo"},
            [("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs.fifo")],
        ),
        (
            "execute-api",
            "DeleteConnection",
            {"ConnectionId": "abc="},
            [
                (
                    "execute-api:ManageConnections",
                    f"{WHERE.connections_api_arn}/DELETE/@connections/abc=",
                )
            ],
        ),
    ],
)
def test_what_each_call_needs(
    service: str, operation: str, params: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert needed(service, operation, params, WHERE) == expected


def test_a_call_with_no_rule_is_refused_rather_than_waved_through() -> None:
    with pytest.raises(UnknownCall, match="dynamodb:ExecuteStatement"):
        needed("dynamodb", "ExecuteStatement", {"Statement": "SELECT"}, WHERE)


def _policies(aws: FakeAws) -> FunctionPolicies:
    return resolve(load_snapshot(), aws.settings, region=REGION)


def test_the_snapshot_resolves_to_the_tests_resources(aws: FakeAws) -> None:
    policies = _policies(aws)
    assert set(policies.policies) == {spec.id for spec in FUNCTIONS}
    mailbox = TABLE + aws.settings[Setting.MAILBOX_TABLE]
    # the fix of the deployed stack's ack: WsAck reads the envelopes it is acked for
    assert policies.policy("WsAck").evaluate("dynamodb:BatchGetItem", mailbox).allowed
    assert policies.policy("WsSync").evaluate("dynamodb:Query", mailbox).allowed
    assert not policies.policy("WsSync").evaluate("dynamodb:DeleteItem", mailbox).allowed
    assert not policies.policy("WsConnect").evaluate("dynamodb:GetItem", mailbox).allowed
    secret = aws.settings[Setting.SIGNING_SECRET_ARN]
    assert policies.policy("WsAuthorizer").evaluate("secretsmanager:GetSecretValue", secret).allowed
    assert not policies.policy("WsSend").evaluate("secretsmanager:GetSecretValue", secret).allowed
    # @connections of the deployed stage, with the local API id
    assert (
        policies.connections_api_arn == f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{LOCAL_API_ID}/dev"
    )
    post = f"{policies.connections_api_arn}/POST/@connections/abc="
    assert policies.policy("WsSend").evaluate("execute-api:ManageConnections", post).allowed
    assert not policies.policy("WsConnect").evaluate("execute-api:ManageConnections", post).allowed


def test_a_refused_call_raises_what_aws_raises_and_is_recorded(aws: FakeAws) -> None:
    table = aws.settings[Setting.MAILBOX_TABLE]
    ddb = client("dynamodb")
    with enforce.expect_denials() as seen, enforce.acting_as("WsSync"):
        with pytest.raises(ClientError) as refused:
            ddb.delete_item(TableName=table, Key={"device": {"S": "a"}, "sk": {"S": "b"}})
        # what it may do goes through
        ddb.query(
            TableName=table,
            KeyConditionExpression="device = :d",
            ExpressionAttributeValues={":d": {"S": "a"}},
        )
    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/parley-local-WsSync-role/parley-local-WsSync "
        f"is not authorized to perform: dynamodb:DeleteItem on resource: {TABLE}{table} "
        "because no identity-based policy allows the dynamodb:DeleteItem action"
    )
    (denial,) = seen.denials
    assert (denial.function_id, denial.action) == ("WsSync", "dynamodb:DeleteItem")
    assert seen.used  # the allowed Query was counted as a use of its grant


def test_s3_refusals_have_s3s_shape_and_presigned_urls_are_judged_when_signed(
    aws: FakeAws,
) -> None:
    bucket = aws.settings[Setting.MEDIA_BUCKET]
    s3 = s3_client()
    with enforce.expect_denials() as seen, enforce.acting_as("WsSend"):
        with pytest.raises(ClientError) as head:
            s3.head_object(Bucket=bucket, Key="m/x")
        with pytest.raises(ClientError) as post:
            s3.generate_presigned_post(Bucket=bucket, Key="m/x")
        with pytest.raises(ClientError) as get:
            s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "m/x"})
    assert head.value.response["Error"]["Code"] == "403"  # HEAD answers have no body
    assert post.value.response["Error"]["Code"] == "AccessDenied"
    assert get.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert [d.action for d in seen.denials] == ["s3:GetObject", "s3:PutObject", "s3:GetObject"]
    # HttpApi holds exactly these grants, on the media prefix only
    with enforce.expect_denials() as seen, enforce.acting_as("HttpApi"):
        s3.generate_presigned_post(Bucket=bucket, Key="m/x")
        with pytest.raises(ClientError):
            s3.generate_presigned_post(Bucket=bucket, Key="elsewhere/x")
    assert [d.resource for d in seen.denials] == [f"arn:aws:s3:::{bucket}/elsewhere/x"]


def test_calls_outside_a_function_are_not_judged(aws: FakeAws) -> None:
    with enforce.expect_denials() as seen:
        client("dynamodb").delete_item(
            TableName=aws.settings[Setting.MAILBOX_TABLE],
            Key={"device": {"S": "a"}, "sk": {"S": "b"}},
        )
    assert seen.denials == []
    assert seen.calls == 0


def _without(function_id: str, action: str) -> dict[str, Any]:
    """The snapshot with every statement of `function_id` that grants `action` removed."""
    snapshot = load_snapshot()
    statements = snapshot["functions"][function_id]["statements"]
    snapshot["functions"][function_id]["statements"] = [
        s for s in statements if action not in json.dumps(s.get("Action"))
    ]
    assert snapshot["functions"][function_id]["statements"] != statements
    return snapshot


def test_without_its_mailbox_read_sync_fails_as_it_would_on_aws(
    aws: FakeAws, function_env: Any
) -> None:
    """Take away one grant a handler needs and watch it fail: the change to
    stacks/grants.py that would break the deployed stack breaks `make test`."""
    with harness(aws, function_env) as ws:
        alice, bob = ws.user()[0], ws.user()[0]
        ws.send(ws.connect(alice), bob.user_id, {bob.device_id: b"hello"})
        bob_online = ws.connect(bob)
        reduced = _without("WsSync", "dynamodb:Query")
        enforce.configure(resolve(reduced, aws.settings, region=REGION))
        with enforce.expect_denials() as seen:
            ws.frame(bob_online, {"action": "sync"})
        assert ws.events(bob_online, "message") == []
        (error,) = ws.events(bob_online, "error")
        assert error["code"] == "service_unavailable"
        assert {(d.function_id, d.action) for d in seen.denials} == {("WsSync", "dynamodb:Query")}
        # with the policy as synthesized, the same sync delivers
        enforce.configure(_policies(aws))
        ws.frame(bob_online, {"action": "sync"})
        assert len(ws.events(bob_online, "message")) == 1
