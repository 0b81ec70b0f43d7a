"""Which IAM actions on which resources a boto3 call needs, as AWS authorizes it.

Most calls need the action named like the operation on the resource they name.
The exceptions that matter here: a DynamoDB transaction needs each item's own
action (PutItem, UpdateItem, DeleteItem, ConditionCheckItem, GetItem) on that
item's table; a batch needs its action on every table it names; a Query on an
index needs it on `table/<name>/index/<index>`; S3's HeadObject is
authorized as s3:GetObject and ListObjects as s3:ListBucket on the bucket; an
SMS published straight to a phone number has no resource ("*"); @connections
calls need execute-api:ManageConnections on
`<api>/<stage>/<METHOD>/@connections/<id>`; Kinesis Video's signalling calls
(the control plane's GetSignalingChannelEndpoint and kinesis-video-signaling's
GetIceServerConfig, both endpoint prefix "kinesisvideo") need their action on
the channel.

A call with no rule here is refused loudly (`UnknownCall`), so a new kind of
call cannot slip past the check unjudged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

__all__ = ["UnknownCall", "Where", "needed"]


class UnknownCall(LookupError):
    """A boto3 operation with no IAM rule in this module."""


@dataclass(frozen=True)
class Where:
    region: str
    account_id: str
    connections_api_arn: str  # arn:aws:execute-api:<region>:<account>:<api>/<stage>

    def table(self, name: str, index: str | None = None) -> str:
        arn = f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    def queue(self, url: str) -> str:
        name = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{name}"


_DYNAMO_SINGLE = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "DescribeTable",
        "DescribeTimeToLive",
    }
)
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _dynamodb(operation: str, params: Mapping[str, Any], where: Where) -> list[tuple[str, str]]:
    if operation in _DYNAMO_SINGLE:
        return [
            (f"dynamodb:{operation}", where.table(params["TableName"], params.get("IndexName")))
        ]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", where.table(t)) for t in params["RequestItems"]]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        found = []
        for item in params["TransactItems"]:
            ((kind, body),) = item.items()
            found.append((f"dynamodb:{_TRANSACT_ACTIONS[kind]}", where.table(body["TableName"])))
        return found
    raise UnknownCall(f"dynamodb:{operation}")


_S3_OBJECT = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "CopyObject": "s3:PutObject",
}


def _s3(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    bucket = params["Bucket"]
    if operation in _S3_OBJECT:
        return [(_S3_OBJECT[operation], f"arn:aws:s3:::{bucket}/{params['Key']}")]
    if operation == "DeleteObjects":
        return [
            ("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{item['Key']}")
            for item in params["Delete"]["Objects"]
        ]
    if operation in ("ListObjects", "ListObjectsV2"):
        return [("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
    raise UnknownCall(f"s3:{operation}")


def _sns(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    if operation == "Publish":
        target = params.get("TopicArn") or params.get("TargetArn")
        return [("sns:Publish", target or "*")]
    if operation == "CreatePlatformEndpoint":
        return [("sns:CreatePlatformEndpoint", params["PlatformApplicationArn"])]
    if operation in ("GetEndpointAttributes", "SetEndpointAttributes", "DeleteEndpoint"):
        return [(f"sns:{operation}", params["EndpointArn"])]
    raise UnknownCall(f"sns:{operation}")


def _secretsmanager(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    if operation in ("GetSecretValue", "DescribeSecret"):
        return [(f"secretsmanager:{operation}", params["SecretId"])]
    raise UnknownCall(f"secretsmanager:{operation}")


_SQS = {
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
}


def _sqs(operation: str, params: Mapping[str, Any], where: Where) -> list[tuple[str, str]]:
    if operation in _SQS:
        return [(_SQS[operation], where.queue(params["QueueUrl"]))]
    raise UnknownCall(f"sqs:{operation}")


_CONNECTIONS = {"PostToConnection": "POST", "DeleteConnection": "DELETE", "GetConnection": "GET"}


def _connections(operation: str, params: Mapping[str, Any], where: Where) -> list[tuple[str, str]]:
    if operation in _CONNECTIONS:
        arn = (
            f"{where.connections_api_arn}/{_CONNECTIONS[operation]}"
            f"/@connections/{params['ConnectionId']}"
        )
        return [("execute-api:ManageConnections", arn)]
    raise UnknownCall(f"execute-api:{operation}")


_KINESISVIDEO = frozenset({"GetSignalingChannelEndpoint", "GetIceServerConfig"})


def _kinesisvideo(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    if operation in _KINESISVIDEO:
        return [(f"kinesisvideo:{operation}", params["ChannelARN"])]
    raise UnknownCall(f"kinesisvideo:{operation}")


def needed(
    service: str, operation: str, params: Mapping[str, Any], where: Where
) -> list[tuple[str, str]]:
    """Every (action, resource ARN) that `service`.`operation`(**params) needs allowed.

    `service` is botocore's endpoint prefix ("dynamodb", "s3", "sns",
    "secretsmanager", "sqs", "execute-api", "kinesisvideo")."""
    if service == "dynamodb":
        return _dynamodb(operation, params, where)
    if service == "s3":
        return _s3(operation, params)
    if service == "sns":
        return _sns(operation, params)
    if service == "secretsmanager":
        return _secretsmanager(operation, params)
    if service == "sqs":
        return _sqs(operation, params, where)
    if service == "execute-api":
        return _connections(operation, params, where)
    if service == "kinesisvideo":
        return _kinesisvideo(operation, params)
    raise UnknownCall(f"{service}:{operation}")
