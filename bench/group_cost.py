"""What one group message costs at 10, 100 and 1024 members: AWS requests, DynamoDB
capacity and Lambda invocations.

The real handlers run in-process against moto, each with exactly its function's
environment from the catalogue: WsSend accepts the message (fanning out inline
for small groups, queueing slices on SQS for larger ones), then every queued job
is handed to GroupFanout as SQS's event source would (one job per invocation).
botocore event hooks on the handlers' clients count every AWS request and answer
@connections posts in place of API Gateway.

DynamoDB capacity is computed by DynamoDB's sizing rules from the items each call
wrote or read (moto reports a flat figure): 1 WCU per started KB written (x2 in
a transaction, plus the mailbox's LSI entry), 1 RCU per started 4 KB read
strongly, half that eventually consistent. BatchWriteItem and BatchGetItem are
sized per item.

Scenario: every member has one device and is online; the sender's one device
sends a 256-byte sender-key ciphertext. "send + fan-out" is what the message
itself costs; "+ every member's ack" adds each member acking it (WsAck), which
sends a delivered receipt back to the sender: the double ticks.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import math
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.report import Figure, print_table
from parley_server.catalogue import Setting, function
from parley_server.config import Limits, reset_config
from parley_server.logic import groups
from parley_server.store.aws import client, reset_clients
from parley_server.store.groups import GroupsStore
from parley_server.store.schema import TABLES, create_table_kwargs
from parley_server.store.users import UsersStore

__all__ = ["GroupMeter", "main", "run"]

REGION = "us-east-1"
WS_ENDPOINT = "https://bench.invalid/local"  # never contacted: the hook answers posts
CIPHERTEXT_BYTES = 256
SIZES = (10, 100, 1024)
# the same paths at small sizes: 40 members is past groups.INLINE_MEMBERS, so queued
QUICK_SIZES = (10, 40)
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


# -- sizing -----------------------------------------------------------------------------


def _size(value: Mapping[str, Any]) -> int:
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
        return 3 + _item_size(raw)
    return sum(len(str(v).encode()) for v in raw)


def _item_size(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + _size(value) for name, value in item.items())


def _write(item: Mapping[str, Any], table: str) -> float:
    size = _item_size(item)
    units = max(1, math.ceil(size / _KB))
    if table in _LSI_TABLES and "ord" in item:
        units += max(1, math.ceil((size + _INDEX_OVERHEAD) / _KB))
    return float(units)


def _read(items: list[Mapping[str, Any]], consistent: bool) -> float:
    units = max(1, math.ceil(sum(_item_size(i) for i in items) / _4KB))
    return float(units if consistent else units / 2)


def _units(operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> float:
    table = str(params.get("TableName", ""))
    if operation == "PutItem":
        return _write(params["Item"], table)
    if operation in ("DeleteItem", "UpdateItem"):
        return _write(parsed.get("Attributes") or params.get("Key", {}), table)
    if operation in ("Query", "GetItem"):
        items = parsed.get("Items") or ([parsed["Item"]] if "Item" in parsed else [])
        return _read(items, bool(params.get("ConsistentRead")))
    if operation == "BatchWriteItem":
        return sum(
            _write(r["PutRequest"]["Item"], name)
            for name, requests in params["RequestItems"].items()
            for r in requests
            if "PutRequest" in r
        )
    if operation == "BatchGetItem":
        return sum(
            _read([item], bool(params["RequestItems"][name].get("ConsistentRead")))
            for name, items in (parsed.get("Responses") or {}).items()
            for item in items
        )
    if operation == "TransactWriteItems":
        # transactions cost twice; updates and deletes sized by their key (a floor)
        total = 0.0
        for entry in params["TransactItems"]:
            body = next(iter(entry.values()))
            item = body.get("Item") or body.get("Key") or {}
            total += 2 * _write(item, str(body.get("TableName", "")))
        return total
    return 0.0


# -- counting ---------------------------------------------------------------------------


@dataclass
class GroupMeter:
    """Requests per service and operation, sized capacity units, invocations per function."""

    requests: Counter[str] = field(default_factory=Counter)
    units: float = 0.0
    invocations: Counter[str] = field(default_factory=Counter)
    posted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def reset(self) -> None:
        self.requests.clear()
        self.invocations.clear()
        self.posted.clear()
        self.units = 0.0

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
        if model.name == "PostToConnection":
            params = context["bench_params"]
            self.posted.setdefault(params["ConnectionId"], []).append(json.loads(params["Data"]))
            return _Answered(), {"ResponseMetadata": {"HTTPStatusCode": 200}}
        return None

    def _after_dynamodb(
        self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        self.units += _units(model.name, context.get("bench_params", {}), parsed)


class _Answered:
    status_code = 200
    headers: dict[str, str] = {}  # noqa: RUF012 (read-only stand-in for an HTTP response)


# -- the service, in-process ------------------------------------------------------------


@dataclass(frozen=True)
class _Device:
    user_id: str
    device_id: str
    connection_id: str


@dataclass
class _Service:
    meter: GroupMeter
    settings: dict[Setting, str]


@contextmanager
def _service() -> Iterator[_Service]:
    """moto with every table and the fan-out queue; clients watched; environment restored."""
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
            meter = GroupMeter()
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
            settings[Setting.LIMITS] = "{}"
            settings[Setting.GROUP_FANOUT_QUEUE] = queue
            yield _Service(meter, settings)
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


def _invoke(service: _Service, function_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run one function as Lambda would: its own environment, one invocation."""
    spec = function(function_id)
    for setting in Setting:
        os.environ.pop(setting.value, None)
    for setting in spec.settings:
        os.environ[setting.value] = service.settings[setting]
    reset_config()
    module, name = spec.handler.rsplit(".", 1)
    handler = getattr(importlib.import_module(module), name)
    service.meter.invocations[function_id] += 1
    # the handlers print their metrics (EMF) to stdout; the table is what matters here
    with contextlib.redirect_stdout(io.StringIO()):
        answer: dict[str, Any] = handler(event, _Context(function_id))
    return answer


def _ws_event(route: str, device: _Device, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": "MESSAGE",
            "stage": "local",
            "connectionId": device.connection_id,
            "requestTimeEpoch": 0,
            "authorizer": {
                "principalId": device.user_id,
                "user_id": device.user_id,
                "device_id": device.device_id,
            },
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _sqs_event(messages: list[dict[str, Any]], queue_url: str) -> dict[str, Any]:
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


def _people(service: _Service, count: int) -> list[_Device]:
    """`count` registered users, one active device each, all connected (setup, not counted)."""
    ddb = client("dynamodb")
    users = UsersStore(ddb, service.settings[Setting.USERS_TABLE])
    now = time.time()
    found = []
    for _ in range(count):
        device = _Device(secrets.token_hex(16), secrets.token_hex(8), secrets.token_hex(7) + "=")
        # a device record is all fan-out reads (profiles are only read on sign-in)
        users.add_device(device.user_id, device.device_id, now)
        users.activate_device(device.user_id, device.device_id)
        ddb.put_item(
            TableName=service.settings[Setting.CONNECTIONS_TABLE],
            Item={
                "user_id": {"S": device.user_id},
                "connection_id": {"S": device.connection_id},
                "device_id": {"S": device.device_id},
                "connected_at": {"N": str(int(now))},
                "expires_at": {"N": str(int(now) + 7200)},
            },
        )
        found.append(device)
    return found


class _Everyone:
    def existing(self, user_ids: Any) -> set[str]:
        return set(user_ids)


def _group(service: _Service, people: list[_Device]) -> str:
    """A group of `people` (setup: created in transactions of at most 98 adds)."""
    store = GroupsStore(client("dynamodb"), service.settings[Setting.GROUPS_TABLE])
    limits = Limits()
    owner, rest = people[0], [p.user_id for p in people[1:]]
    step = groups.MAX_IDS_PER_REQUEST
    group = groups.create_group(
        owner.user_id, "bench", rest[:step], now=time.time(), limits=limits,
        groups=store, users=_Everyone(),
    )  # fmt: skip
    for start in range(step, len(rest), step):
        groups.add_members(
            owner.user_id, group.group_id, rest[start : start + step], now=time.time(),
            limits=limits, groups=store, users=_Everyone(),
        )  # fmt: skip
    return group.group_id


def _drain(service: _Service) -> list[dict[str, Any]]:
    sqs = client("sqs")
    url = service.settings[Setting.GROUP_FANOUT_QUEUE]
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["MessageGroupId", "MessageDeduplicationId"],
        ).get("Messages", [])
        if not got:
            return found
        found.extend(got)


@dataclass(frozen=True)
class _Counts:
    requests: Counter[str]
    units: float
    invocations: Counter[str]


def _snapshot(meter: GroupMeter) -> _Counts:
    return _Counts(Counter(meter.requests), meter.units, Counter(meter.invocations))


def _message(service: _Service, members: int, with_acks: bool) -> tuple[_Counts, _Counts | None]:
    """One group message to `members` members: counted send + fan-out, then the acks."""
    people = _people(service, members)
    group_id = _group(service, people)
    sender = people[0]
    meter = service.meter
    meter.reset()
    body = base64.b64encode(secrets.token_bytes(CIPHERTEXT_BYTES)).decode()
    frame = {"action": "send", "id": "g-1", "to": f"g:{group_id}", "body": body}
    answer = json.loads(_invoke(service, "WsSend", _ws_event("send", sender, frame))["body"])
    assert answer["event"] == "sent", answer
    # SQS's event source: one job per GroupFanout invocation (receives and deletes are
    # the event source's own calls, not the function's: not counted)
    url = service.settings[Setting.GROUP_FANOUT_QUEUE]
    with _uncounted(meter):
        jobs = _drain(service)
    for job in jobs:
        result = _invoke(service, "GroupFanout", _sqs_event([job], url))
        assert result == {"batchItemFailures": []}, result
    delivered = {
        connection: [e["id"] for e in events if e["event"] == "message"]
        for connection, events in meter.posted.items()
    }
    assert sum(len(ids) for ids in delivered.values()) == members - 1, "every member reached"
    sent = _snapshot(meter)
    if not with_acks:
        return sent, None
    for person in people[1:]:
        ids = delivered[person.connection_id]
        _invoke(service, "WsAck", _ws_event("ack", person, {"action": "ack", "ids": ids}))
    receipts = [e for e in meter.posted.get(sender.connection_id, []) if e["event"] == "receipt"]
    assert len(receipts) == members - 1, len(receipts)
    return sent, _snapshot(meter)


@contextmanager
def _uncounted(meter: GroupMeter) -> Iterator[None]:
    before = _snapshot(meter)
    try:
        yield
    finally:
        meter.requests = before.requests
        meter.units = before.units
        meter.invocations = before.invocations


def _figures(members: int, label: str, counts: _Counts) -> list[Figure]:
    group = f"{members} members: {label}"
    total = sum(counts.requests.values())
    breakdown = ", ".join(f"{op} {n}" for op, n in sorted(counts.requests.items()))
    invocations = ", ".join(f"{fn} {n}" for fn, n in sorted(counts.invocations.items()))
    return [
        Figure(group, "AWS requests / message", total, "requests", breakdown),
        Figure(
            group,
            "AWS requests / member",
            total / members,
            "requests",
            "the line above divided by the member count",
        ),
        Figure(
            group,
            "DynamoDB capacity / message (sized)",
            counts.units,
            "CU",
            f"WCU+RCU by DynamoDB's item size rules; {CIPHERTEXT_BYTES} B ciphertext",
        ),
        Figure(
            group,
            "Lambda invocations / message",
            sum(counts.invocations.values()),
            "invocations",
            invocations,
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    """Each group size; `quick`: 10 and 40 members (inline and queued), not worth quoting."""
    figures: list[Figure] = []
    for members in QUICK_SIZES if quick else SIZES:
        with _service() as service:
            started = time.perf_counter()
            sent, acked = _message(service, members, with_acks=True)
            figures.extend(_figures(members, "send + fan-out", sent))
            if acked is not None:
                figures.extend(_figures(members, "+ every member's ack", acked))
            figures.append(
                Figure(
                    f"{members} members",
                    "bench wall time (moto in-process)",
                    time.perf_counter() - started,
                    "s",
                    "setup included; not a latency figure",
                )
            )
    return figures


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
