"""What one message costs: AWS requests, DynamoDB capacity and Lambda invocations.

The real handlers run in-process against moto, each with exactly its function's
environment from the catalogue. botocore event hooks on the handlers' clients
count every AWS request (`before-call.*.*`), sum the capacity DynamoDB reports
(ReturnConsumedCapacity=TOTAL), and answer @connections posts in place of API
Gateway (recording what each connection got, so the scenario can ack it).

moto reports a flat 1 unit per write or query whatever the item size, so the
table also gives capacity by DynamoDB's own sizing rules, computed here from
the items each call wrote, deleted or read: writes 1 WCU per started KB (plus
the same again for the mailbox's LSI), eventually consistent reads 0.5 RCU per
started 4 KB of items read.

Scenarios (both people online and connected before counting starts):
  (a) one message: send, the recipient's ack (which sends `delivered` back to the
      online sender), the sender's ack of that receipt;
  (b) a burst of ten messages, acked in one frame, then the one batched receipt acked.
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import os
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.report import Figure, print_table
from parley_server.catalogue import Setting, function
from parley_server.config import reset_config
from parley_server.store.aws import client, reset_clients
from parley_server.store.schema import TABLES, create_table_kwargs
from parley_server.store.users import UsersStore

__all__ = ["Meter", "main", "run"]

REGION = "us-east-1"
WS_ENDPOINT = "https://bench.invalid/local"  # never contacted: the hook answers posts
CIPHERTEXT_BYTES = 256  # a short text message after Double Ratchet encryption
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
_LSI_TABLES = {_TABLE_NAMES[spec.setting] for spec in TABLES if spec.indexes}
_KB, _4KB = 1024, 4096
# DynamoDB counts about this much per index entry on top of its attributes
_INDEX_OVERHEAD = 100


# -- counting ---------------------------------------------------------------------------


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
        return 3 + _item_size(raw)
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(v).encode()) for v in raw)
    return 0


def _item_size(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + _size(value) for name, value in item.items())


@dataclass
class Meter:
    """What the handlers asked of AWS, per service and operation."""

    requests: Counter[str] = field(default_factory=Counter)
    reported_units: float = 0.0
    sized_units: float = 0.0
    invocations: Counter[str] = field(default_factory=Counter)
    posted: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def reset(self) -> None:
        self.requests.clear()
        self.invocations.clear()
        self.posted.clear()
        self.reported_units = self.sized_units = 0.0

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
            self.posted[params["ConnectionId"]].append(json.loads(params["Data"]))
            return _Answered(), {"ResponseMetadata": {"HTTPStatusCode": 200}}
        return None

    def _after_dynamodb(
        self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        consumed = parsed.get("ConsumedCapacity")
        if isinstance(consumed, dict):
            self.reported_units += float(consumed.get("CapacityUnits", 0))
        self.sized_units += _sized_units(model.name, context.get("bench_params", {}), parsed)


class _Answered:
    status_code = 200
    headers: dict[str, str] = {}  # noqa: RUF012 (read-only stand-in for an HTTP response)


def _write_units(size: int, table: str, indexed: bool) -> float:
    units = max(1, math.ceil(size / _KB))
    if indexed and table in _LSI_TABLES:
        units += max(1, math.ceil((size + _INDEX_OVERHEAD) / _KB))
    return float(units)


def _read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / _4KB))
    return float(units if consistent else units / 2)


def _sized_units(operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> float:
    table = str(params.get("TableName", ""))
    if operation == "PutItem":
        item = params["Item"]
        return _write_units(_item_size(item), table, "ord" in item)
    if operation == "DeleteItem":
        old = parsed.get("Attributes") or {}
        return _write_units(_item_size(old), table, "ord" in old)
    if operation == "UpdateItem":
        return _write_units(
            _item_size(parsed.get("Attributes") or params.get("Key", {})), "", False
        )
    if operation in ("Query", "GetItem"):
        items = parsed.get("Items") or ([parsed["Item"]] if "Item" in parsed else [])
        return _read_units(sum(_item_size(i) for i in items), bool(params.get("ConsistentRead")))
    return 1.0


# -- the service, in-process ------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    user_id: str
    device_id: str
    connection_id: str


@contextmanager
def _service() -> Iterator[Meter]:
    """moto with every table, clients watched by a Meter; the environment restored after."""
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
            meter = Meter()
            for watched in (
                ddb,
                client("sns"),
                client("apigatewaymanagementapi", endpoint_url=WS_ENDPOINT),
            ):
                meter.watch(watched)
            yield meter
    finally:
        reset_clients()
        os.environ.clear()
        os.environ.update(saved)
        reset_config()


def _settings() -> dict[Setting, str]:
    values = {setting: name for setting, name in _TABLE_NAMES.items()}
    values[Setting.WS_ENDPOINT] = WS_ENDPOINT
    values[Setting.PUSH_APPS] = "{}"
    # the bursts are the point here; the rate limiter still takes its write
    values[Setting.LIMITS] = json.dumps({"send_rate_per_s": 10_000})
    values[Setting.MEDIA_BUCKET] = "parley-bench-media"
    values[Setting.SIGNING_SECRET_ARN] = "arn:aws:secretsmanager:us-east-1:1:secret:bench"
    # read only for large groups, which these 1:1 scenarios never send to
    values[Setting.GROUP_FANOUT_QUEUE] = "https://sqs.us-east-1.amazonaws.com/1/bench.fifo"
    return values


def _invoke(meter: Meter, function_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run one function as Lambda would: its own environment, one invocation."""
    spec = function(function_id)
    values = _settings()
    for setting in Setting:
        os.environ.pop(setting.value, None)
    for setting in spec.settings:
        os.environ[setting.value] = values[setting]
    reset_config()
    module, name = spec.handler.rsplit(".", 1)
    handler = getattr(importlib.import_module(module), name)
    meter.invocations[function_id] += 1
    answer: dict[str, Any] = handler(event, _Context(function_id))
    return answer


@dataclass(frozen=True)
class _Context:
    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id: str = "bench"


def _event(route: str, person: Person, body: dict[str, Any] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "requestContext": {
            "routeKey": route,
            "eventType": {"$connect": "CONNECT"}.get(route, "MESSAGE"),
            "stage": "local",
            "connectionId": person.connection_id,
            "requestTimeEpoch": 0,
            "authorizer": {
                "principalId": person.user_id,
                "user_id": person.user_id,
                "device_id": person.device_id,
            },
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def _person(meter: Meter, phone: str) -> Person:
    users = UsersStore(client("dynamodb"), _TABLE_NAMES[Setting.USERS_TABLE])
    person = Person(secrets.token_hex(16), secrets.token_hex(8), secrets.token_hex(7) + "=")
    users.create_user(person.user_id, phone, 0)
    users.add_device(person.user_id, person.device_id, 0)
    users.activate_device(person.user_id, person.device_id)
    _invoke(meter, "WsConnect", _event("$connect", person))
    return person


def _conversation(meter: Meter, messages: int) -> None:
    """Alice sends `messages` to Bob; Bob acks them in one frame; Alice acks the receipt."""
    alice, bob = _person(meter, "+15550000001"), _person(meter, "+15550000002")
    meter.reset()
    body = base64.b64encode(secrets.token_bytes(CIPHERTEXT_BYTES)).decode()
    for i in range(messages):
        frame = {
            "action": "send",
            "id": f"m{i}",
            "to": bob.user_id,
            "payloads": {bob.device_id: body},
        }
        answer = json.loads(_invoke(meter, "WsSend", _event("send", alice, frame))["body"])
        assert answer["event"] == "sent", answer
    delivered = [e["id"] for e in meter.posted[bob.connection_id] if e["event"] == "message"]
    assert len(delivered) == messages
    _invoke(meter, "WsAck", _event("ack", bob, {"action": "ack", "ids": delivered}))
    receipts = [e["id"] for e in meter.posted[alice.connection_id] if e["event"] == "receipt"]
    assert len(receipts) == 1, receipts
    _invoke(meter, "WsAck", _event("ack", alice, {"action": "ack", "ids": receipts}))
    assert not any(e["event"] == "error" for events in meter.posted.values() for e in events)


def _figures(group: str, meter: Meter, messages: int) -> list[Figure]:
    total = sum(meter.requests.values())
    breakdown = ", ".join(f"{op} {n}" for op, n in sorted(meter.requests.items()))
    per = 1 / messages
    return [
        Figure(group, "AWS requests / message", total * per, "requests", breakdown),
        Figure(
            group,
            "DynamoDB capacity / message (reported)",
            meter.reported_units * per,
            "CU",
            "sum of ReturnConsumedCapacity=TOTAL (moto: flat 1 per write or query)",
        ),
        Figure(
            group,
            "DynamoDB capacity / message (sized)",
            meter.sized_units * per,
            "CU",
            f"WCU+RCU by DynamoDB's item size rules, incl. LSI; {CIPHERTEXT_BYTES} B ciphertext",
        ),
        Figure(
            group,
            "Lambda invocations / message",
            sum(meter.invocations.values()) * per,
            "invocations",
            ", ".join(f"{fn} {n}" for fn, n in sorted(meter.invocations.items())),
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    """Both scenarios; `quick` changes nothing (the counts are exact, not sampled)."""
    figures: list[Figure] = []
    for group, messages in (("(a) one message", 1), ("(b) burst of 10", 10)):
        with _service() as meter:
            _conversation(meter, messages)
            figures.extend(_figures(group, meter, messages))
    return figures


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
