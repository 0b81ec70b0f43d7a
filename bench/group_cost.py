"""What one group message costs at 10, 100 and 1024 members: AWS requests, DynamoDB
capacity and Lambda invocations.

The real handlers run in-process against moto and are counted as bench.metering
describes: WsSend accepts the message (fanning out inline for small groups,
queueing slices on SQS for larger ones), then every queued job is handed to
GroupFanout as SQS's event source would (one job per invocation). DynamoDB
capacity is sized by DynamoDB's rules from the items each call wrote or read
(moto reports a flat figure).

Scenario: every member has one device and is online; the sender's one device
sends a 256-byte sender-key ciphertext. "send + fan-out" is what the message
itself costs; "+ every member's ack" adds each member acking it (WsAck), which
sends a delivered receipt back to the sender: the double ticks.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.metering import Counts, Device, Service, invoke, service, sqs_event, ws_event
from bench.report import Figure, print_table
from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import groups
from parley_server.logic.ports import Caller
from parley_server.models.http import MAX_IDS_PER_REQUEST
from parley_server.store.aws import client
from parley_server.store.groups import GroupsStore
from parley_server.store.users import UsersStore
from tests.device_lists import device_key, list_devices
from tests.group_changes import Signer

__all__ = ["CIPHERTEXT_BYTES", "SIZES", "GroupMessageCounts", "count_group_message", "main", "run"]

CIPHERTEXT_BYTES = 256
SIZES = (10, 100, 1024)
# the same paths at small sizes: 40 members is past group_fanout.INLINE_MEMBERS, so queued
QUICK_SIZES = (10, 40)


def _people(service: Service, count: int) -> list[Device]:
    """`count` registered users, one active device each, all connected (setup, not counted)."""
    ddb = client("dynamodb")
    users = UsersStore(ddb, service.settings[Setting.USERS_TABLE])
    now = time.time()
    found = []
    for _ in range(count):
        device = Device.new()
        # a device record is all fan-out reads (profiles are only read on sign-in)
        users.add_device(device.user_id, device.device_id, now)
        users.activate_device(device.user_id, device.device_id)
        list_devices(users, device.user_id, [device.device_id])  # fan-out reaches listed ones
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


def _group(service: Service, people: list[Device]) -> str:
    """A group of `people` (setup: a signed create, then signed adds, in transactions
    of at most MAX_IDS_PER_REQUEST members each)."""
    ddb = client("dynamodb")
    store = GroupsStore(ddb, service.settings[Setting.GROUPS_TABLE])
    lists = UsersStore(ddb, service.settings[Setting.USERS_TABLE])
    limits = Limits()
    owner = Caller(people[0].user_id, people[0].device_id)
    signer = Signer(owner.user_id, owner.device_id, device_key(owner.user_id, owner.device_id))
    rest = [p.user_id for p in people[1:]]
    step = MAX_IDS_PER_REQUEST
    group = groups.create_group(
        owner, signer.create(uuid.uuid4().hex, "bench", rest[:step]), now=time.time(),
        limits=limits, groups=store, users=_Everyone(), device_lists=lists,
    )  # fmt: skip
    for start in range(step, len(rest), step):
        add = signer.change(
            "add", group.group_id, seq=group.rev + 1, prev=group.head_hash,
            members=sorted(rest[start : start + step]),
        )  # fmt: skip
        group = groups.add_members(
            owner, group.group_id, add, now=time.time(), limits=limits,
            groups=store, users=_Everyone(), device_lists=lists,
        )  # fmt: skip
    return group.group_id


def _drain(service: Service) -> list[dict[str, Any]]:
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
class GroupMessageCounts:
    """One group message: what sending it asked of AWS, and that plus every member's ack."""

    sent: Counts
    acked: Counts


def _message(service: Service, members: int) -> GroupMessageCounts:
    """One group message to `members` members: counted send + fan-out, then the acks."""
    people = _people(service, members)
    group_id = _group(service, people)
    sender = people[0]
    meter = service.meter
    meter.reset()
    body = base64.b64encode(secrets.token_bytes(CIPHERTEXT_BYTES)).decode()
    frame = {"action": "send", "id": "g-1", "to": f"g:{group_id}", "body": body}
    answer = json.loads(invoke(service, "WsSend", ws_event("send", sender, frame))["body"])
    assert answer["event"] == "sent", answer
    # SQS's event source: one job per GroupFanout invocation (receives and deletes are
    # the event source's own calls, not the function's: not counted)
    url = service.settings[Setting.GROUP_FANOUT_QUEUE]
    with meter.uncounted():
        jobs = _drain(service)
    for job in jobs:
        result = invoke(service, "GroupFanout", sqs_event([job], url))
        assert result == {"batchItemFailures": []}, result
    delivered = {
        connection: [e["id"] for e in meter.events(connection) if e["event"] == "message"]
        for connection in meter.posted
    }
    assert sum(len(ids) for ids in delivered.values()) == members - 1, "every member reached"
    sent = meter.counts()
    for person in people[1:]:
        ids = delivered[person.connection_id]
        ack = {"action": "ack", "ids": ids, "delivered": ids}  # members tick each other
        invoke(service, "WsAck", ws_event("ack", person, ack))
    receipts = [e for e in meter.events(sender.connection_id) if e["event"] == "receipt"]
    assert len(receipts) == members - 1, len(receipts)
    return GroupMessageCounts(sent, meter.counts())


def count_group_message(members: int) -> GroupMessageCounts:
    """What one message to a group of `members` asks of AWS, every member online;
    setup (people, the group) not counted."""
    with service() as running:
        return _message(running, members)


def _figures(members: int, label: str, counts: Counts) -> list[Figure]:
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
            counts.sized_units,
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
        with service() as running:
            started = time.perf_counter()
            counts = _message(running, members)
            figures.extend(_figures(members, "send + fan-out", counts.sent))
            figures.extend(_figures(members, "+ every member's ack", counts.acked))
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
