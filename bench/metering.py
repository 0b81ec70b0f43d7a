"""Counting what the real handlers ask of AWS: the machinery bench.message_cost and
bench.group_cost share.

The handlers run in-process against moto, each with exactly its function's
environment from the catalogue (`invoke`). botocore event hooks on the handlers'
clients (`Meter.watch`) count every AWS request (`before-call.*.*`), sum the
capacity DynamoDB reports (ReturnConsumedCapacity=TOTAL), and answer @connections
posts in place of API Gateway, recording what each connection got so a scenario
can ack it.

moto reports a flat 1 unit per write or query whatever the item size, so the
meter also sizes capacity by DynamoDB's own rules from the items each call wrote,
deleted or read (`capacity`): 1 WCU per started KB written (x2 in a transaction,
plus the mailbox's LSI entry), 1 RCU per started 4 KB read strongly, half that
eventually consistent. BatchWriteItem and BatchGetItem are sized per item. Reads
and writes are kept apart, as DynamoDB bills them apart.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import os
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from parley_server.catalogue import Setting, function
from parley_server.config import reset_config
from parley_server.store.aws import client, reset_clients
from parley_server.store.schema import TABLES, create_table_kwargs

__all__ = [
    "REGION",
    "WS_ENDPOINT",
    "Counts",
    "Device",
    "Meter",
    "Service",
    "capacity",
    "invoke",
    "item_size",
    "service",
    "sqs_event",
    "ws_event",
]

REGION = "us-east-1"
WS_ENDPOINT = "https://bench.invalid/local"  # never contacted: the meter answers posts
_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_SERVICE_NAME": "parley",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
_TABLE_NAMES = {spec.setting: f"parley-bench-{spec.id.lower()}" for spec in TABLES}
_LSI_TABLES = {
    _TABLE_NAMES[spec.setting] for spec in TABLES if any(i.kind == "lsi" for i in spec.indexes)
}
_KB, _4KB = 1024, 4096
_INDEX_OVERHEAD = 100  # bytes DynamoDB counts per index entry on top of its attributes


# -- sizing -------------------------------------------------------------------------------


def _size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value, by DynamoDB's item size rules."""
    (kind, raw), *_ = value.items()
    if kind == "S":
        return len(str(raw).encode())
    if kind == "B":
        return len(raw)
    if kind == "N":
        digits = len(str(raw).lstrip("-").replace(".", "").strip("0")) or 1
        return 1 + math.ceil(digits / 2)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _size(v) for v in raw)
    if kind == "M":
        return 3 + item_size(raw)
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(v).encode()) for v in raw)
    return 0


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes of one item (attribute names and values), by DynamoDB's item size rules."""
    return sum(len(name.encode()) + _size(value) for name, value in item.items())


def _write(item: Mapping[str, Any], table: str) -> float:
    size = item_size(item)
    units = max(1, math.ceil(size / _KB))
    if table in _LSI_TABLES and "ord" in item:
        units += max(1, math.ceil((size + _INDEX_OVERHEAD) / _KB))
    return float(units)


def _read(items: list[Mapping[str, Any]], consistent: bool) -> float:
    units = max(1, math.ceil(sum(item_size(i) for i in items) / _4KB))
    return float(units if consistent else units / 2)


def capacity(
    operation: str,
    params: Mapping[str, Any],
    parsed: Mapping[str, Any],
    deleted: Mapping[str, list[Mapping[str, Any]]] | None = None,
) -> tuple[float, float]:
    """(read units, write units) of one DynamoDB call, from what it sent and got back;
    `deleted`: for a BatchWriteItem, by table, each item its DeleteRequests removed as
    it was before the call (DynamoDB sizes a delete by the item; its answer does not
    say what that was). An item that was not there costs what its key does."""
    table = str(params.get("TableName", ""))
    if operation == "PutItem":
        return 0.0, _write(params["Item"], table)
    if operation in ("DeleteItem", "UpdateItem"):
        return 0.0, _write(parsed.get("Attributes") or params.get("Key", {}), table)
    if operation in ("Query", "GetItem"):
        items = parsed.get("Items") or ([parsed["Item"]] if "Item" in parsed else [])
        return _read(items, bool(params.get("ConsistentRead"))), 0.0
    if operation == "BatchWriteItem":
        units = 0.0
        for name, requests in params["RequestItems"].items():
            removed = list((deleted or {}).get(name, []))
            for r in requests:
                if "PutRequest" in r:
                    units += _write(r["PutRequest"]["Item"], name)
                else:
                    units += _write(removed.pop(0) if removed else r["DeleteRequest"]["Key"], name)
        return 0.0, units
    if operation == "BatchGetItem":
        return sum(
            _read([item], bool(params["RequestItems"][name].get("ConsistentRead")))
            for name, items in (parsed.get("Responses") or {}).items()
            for item in items
        ), 0.0
    if operation == "TransactWriteItems":
        # transactions cost twice; updates and deletes sized by their key (a floor)
        total = 0.0
        for entry in params["TransactItems"]:
            body = next(iter(entry.values()))
            item = body.get("Item") or body.get("Key") or {}
            total += 2 * _write(item, str(body.get("TableName", "")))
        return 0.0, total
    return 0.0, 0.0  # the handlers make no other DynamoDB calls


# -- counting -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """What some handler invocations asked of AWS (a snapshot of a Meter)."""

    requests: Counter[str]  # by "service.Operation"
    invocations: Counter[str]  # by function id
    read_units: float  # sized
    write_units: float  # sized
    reported_units: float  # what DynamoDB (here moto) reported
    posted: Mapping[str, list[dict[str, Any]]]  # posts (an event or a batch), by connection
    frames_in: tuple[int, ...] = ()  # bytes of each WebSocket frame a client sent
    answers_out: tuple[int, ...] = ()  # bytes of each route response (two-way routes)

    @property
    def sized_units(self) -> float:
        return self.read_units + self.write_units


@dataclass
class Meter:
    """What the watched clients asked of AWS, per service and operation."""

    # reads an item (table, key) without being counted: what a BatchWriteItem deletes
    peek: Callable[[str, Mapping[str, Any]], Mapping[str, Any] | None] | None = None
    requests: Counter[str] = field(default_factory=Counter)
    invocations: Counter[str] = field(default_factory=Counter)
    read_units: float = 0.0
    write_units: float = 0.0
    reported_units: float = 0.0
    posted: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    frames_in: list[int] = field(default_factory=list)
    answers_out: list[int] = field(default_factory=list)

    @property
    def sized_units(self) -> float:
        return self.read_units + self.write_units

    def events(self, connection_id: str) -> list[dict[str, Any]]:
        """The events posted to a connection, as its client reads them (a batch's one
        by one)."""
        return [
            event
            for post in self.posted.get(connection_id, [])
            for event in (post["events"] if post["event"] == "batch" else [post])
        ]

    def reset(self) -> None:
        self.requests.clear()
        self.invocations.clear()
        self.posted.clear()
        self.frames_in.clear()
        self.answers_out.clear()
        self.read_units = self.write_units = self.reported_units = 0.0

    def counts(self) -> Counts:
        return Counts(
            Counter(self.requests),
            Counter(self.invocations),
            self.read_units,
            self.write_units,
            self.reported_units,
            {connection: list(events) for connection, events in self.posted.items()},
            tuple(self.frames_in),
            tuple(self.answers_out),
        )

    @contextmanager
    def uncounted(self) -> Iterator[None]:
        """Calls made inside are not counted (posts still reach `posted`)."""
        before = self.counts()
        try:
            yield
        finally:
            self.requests = before.requests
            self.invocations = before.invocations
            self.read_units, self.write_units = before.read_units, before.write_units
            self.reported_units = before.reported_units
            self.frames_in, self.answers_out = list(before.frames_in), list(before.answers_out)

    def watch(self, boto_client: Any) -> None:
        events = boto_client.meta.events
        events.register("before-parameter-build.*.*", self._keep_params)
        events.register("before-call.*.*", self._before_call)
        events.register("after-call.dynamodb.*", self._after_dynamodb)

    def _keep_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = dict(params)

    def _before_call(
        self, event_name: str, model: Any, context: dict[str, Any], **_: Any
    ) -> tuple[Any, dict[str, Any]] | None:
        service = event_name.split(".")[1]
        self.requests[f"{service}.{model.name}"] += 1
        if model.name == "BatchWriteItem" and self.peek is not None:
            peek = self.peek
            context["bench_deleted"] = {
                name: [
                    peek(name, r["DeleteRequest"]["Key"]) or r["DeleteRequest"]["Key"]
                    for r in requests
                    if "DeleteRequest" in r
                ]
                for name, requests in context["bench_params"]["RequestItems"].items()
            }
        if model.name == "PostToConnection":
            params = context["bench_params"]
            self.posted[params["ConnectionId"]].append(json.loads(params["Data"]))
            return _Answered(), {"ResponseMetadata": {"HTTPStatusCode": 200}}
        return None

    def _after_dynamodb(
        self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        consumed = parsed.get("ConsumedCapacity")
        if isinstance(consumed, dict):
            self.reported_units += float(consumed.get("CapacityUnits", 0))
        reads, writes = capacity(
            model.name, context.get("bench_params", {}), parsed, context.get("bench_deleted")
        )
        self.read_units += reads
        self.write_units += writes


class _Answered:
    status_code = 200
    headers: dict[str, str] = {}  # noqa: RUF012 (read-only stand-in for an HTTP response)


# -- the service, in-process --------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A person's one device and its WebSocket connection."""

    user_id: str
    device_id: str
    connection_id: str

    @classmethod
    def new(cls) -> Device:
        return cls(secrets.token_hex(16), secrets.token_hex(8), secrets.token_hex(7) + "=")


@dataclass
class Service:
    """moto with every table and the fan-out queue, and each setting's value."""

    meter: Meter
    settings: dict[Setting, str]


@contextmanager
def service(limits: Mapping[str, Any] | None = None) -> Iterator[Service]:
    """moto with every table and the group fan-out queue, the handlers' clients watched
    by a Meter; `limits` is PARLEY_LIMITS. The environment is restored after."""
    from moto import mock_aws

    saved = dict(os.environ)
    os.environ.update(_ENV)
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(var, None)
    try:
        with mock_aws():
            reset_clients()
            ddb = client("dynamodb")
            for spec in TABLES:
                ddb.create_table(**create_table_kwargs(spec, _TABLE_NAMES[spec.setting]))
            sqs = client("sqs")
            queue = sqs.create_queue(
                QueueName="parley-bench-fanout.fifo", Attributes={"FifoQueue": "true"}
            )["QueueUrl"]
            unwatched = boto3.client("dynamodb", region_name=REGION)

            def peek(table: str, key: Mapping[str, Any]) -> Mapping[str, Any] | None:
                answer = unwatched.get_item(TableName=table, Key=dict(key), ConsistentRead=True)
                item: Mapping[str, Any] | None = answer.get("Item")
                return item

            meter = Meter(peek=peek)
            for watched in (
                ddb,
                sqs,
                client("sns"),
                client("apigatewaymanagementapi", endpoint_url=WS_ENDPOINT),
            ):
                meter.watch(watched)
            settings: dict[Setting, str] = dict(_TABLE_NAMES)
            settings[Setting.WS_ENDPOINT] = WS_ENDPOINT
            settings[Setting.PUSH_APPS] = "{}"
            settings[Setting.LIMITS] = json.dumps(dict(limits or {}))
            settings[Setting.TEST_NUMBERS] = "[]"
            settings[Setting.SMS_ORIGINATION] = "{}"
            settings[Setting.MEDIA_BUCKET] = "parley-bench-media"
            settings[Setting.SIGNING_SECRET_ARN] = f"arn:aws:secretsmanager:{REGION}:1:secret:bench"
            settings[Setting.GROUP_FANOUT_QUEUE] = queue
            settings[Setting.CALL_RELAYS] = "loopback"
            settings[Setting.CALL_CHANNELS] = "[]"
            yield Service(meter, settings)
    finally:
        reset_clients()
        os.environ.clear()
        os.environ.update(saved)
        reset_config()


@dataclass(frozen=True)
class _Context:
    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id: str = "bench"


def invoke(service: Service, function_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run one function as Lambda would: its own environment, one invocation, counted."""
    spec = function(function_id)
    for setting in Setting:
        os.environ.pop(setting.value, None)
    for setting in spec.settings:
        os.environ[setting.value] = service.settings[setting]
    reset_config()
    module, name = spec.handler.rsplit(".", 1)
    handler = getattr(importlib.import_module(module), name)
    service.meter.invocations[function_id] += 1
    context = event.get("requestContext") or {}
    body = event.get("body")
    if context.get("eventType") == "MESSAGE" and isinstance(body, str):
        service.meter.frames_in.append(len(body.encode()))
    # the handlers print their metrics (EMF) to stdout; the table is what matters here
    with contextlib.redirect_stdout(io.StringIO()):
        answer: dict[str, Any] = handler(event, _Context(function_id))
    if context.get("eventType") == "MESSAGE" and isinstance(answer.get("body"), str):
        service.meter.answers_out.append(len(answer["body"].encode()))
    return answer


def ws_event(route: str, device: Device, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A WebSocket route's event as API Gateway sends it, from `device`'s connection."""
    event: dict[str, Any] = {
        "requestContext": {
            "routeKey": route,
            "eventType": {"$connect": "CONNECT"}.get(route, "MESSAGE"),
            "stage": "local",
            "connectionId": device.connection_id,
            "requestTimeEpoch": 0,
            "authorizer": {
                "principalId": device.user_id,
                "user_id": device.user_id,
                "device_id": device.device_id,
            },
        },
        "isBase64Encoded": False,
    }
    if route == "$connect":  # dialled as the SDK dials
        event["queryStringParameters"] = {"token": "<access token>", "batch": "1"}
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def sqs_event(messages: list[dict[str, Any]], queue_url: str) -> dict[str, Any]:
    """Lambda's SQS event source's event for `messages` (as ReceiveMessage gave them)."""
    arn = f"arn:aws:sqs:{REGION}:123456789012:{queue_url.rsplit('/', 1)[-1]}"
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "MessageGroupId": m["Attributes"]["MessageGroupId"],
                    "MessageDeduplicationId": m["Attributes"].get("MessageDeduplicationId", ""),
                    "SentTimestamp": "0",
                    "SenderId": "bench",
                    "ApproximateFirstReceiveTimestamp": "0",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }
