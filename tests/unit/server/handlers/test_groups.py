"""Group messages through the real handlers, each with its function's exact
environment: WsSend's group branch (inline for small groups, queued for large
ones), GroupFanout consuming the queue, and an offline member syncing later."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import group_fanout, groups
from parley_server.logic.ports import Caller
from parley_server.models.errors import DependencyUnavailable
from parley_server.models.frames import MessageEnvelope
from parley_server.models.groups import FanoutJob
from parley_server.models.http import MAX_IDS_PER_REQUEST
from parley_server.store.groups import GroupsStore
from parley_server.store.mailbox import EnvelopeWriter
from parley_server.store.users import UsersStore
from tests.conftest import REGION, FakeAws
from tests.device_lists import device_key
from tests.group_changes import Signer
from tests.integration.ws_harness import Device, Harness, b64, harness


class Everyone:
    def existing(self, user_ids: Any) -> set[str]:
        return set(user_ids)


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


def _group(ws: Harness, admin: Device, *members: Device) -> str:
    ddb = ws.aws.client("dynamodb")
    store = GroupsStore(ddb, ws.aws.settings[Setting.GROUPS_TABLE])
    ids = sorted({m.user_id for m in members} - {admin.user_id})
    signer = Signer(admin.user_id, admin.device_id, device_key(admin.user_id, admin.device_id))
    group = groups.create_group(
        Caller(admin.user_id, admin.device_id),
        signer.create(secrets.token_hex(16), "Climbing", ids[:MAX_IDS_PER_REQUEST]),
        now=time.time(),
        limits=Limits(),
        groups=store,
        users=Everyone(),
        device_lists=UsersStore(ddb, ws.aws.settings[Setting.USERS_TABLE]),
    )
    return group.group_id


def _send(ws: Harness, sender: Device, group_id: str, **extra: Any) -> dict[str, Any]:
    frame = {"action": "send", "id": "g-1", "to": f"g:{group_id}", "body": b64(b"sk"), **extra}
    answer = ws.frame(sender, frame)
    parsed: dict[str, Any] = json.loads(answer["body"])
    return parsed


def _jobs(ws: Harness) -> list[dict[str, Any]]:
    sqs = ws.aws.client("sqs")
    url = ws.aws.settings[Setting.GROUP_FANOUT_QUEUE]
    found: list[dict[str, Any]] = []
    while got := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", []):
        found.extend(got)
    return found


def _sqs_event(*bodies: tuple[str, str]) -> dict[str, Any]:
    """An SQS event as Lambda's event source delivers it: (message group, body) each."""
    return {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"h-{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "0",
                    "SenderId": "test",
                    "ApproximateFirstReceiveTimestamp": "0",
                    "MessageGroupId": group,
                    "MessageDeduplicationId": f"d-{i}",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:parley-test-fanout.fifo",
                "awsRegion": REGION,
            }
            for i, (group, body) in enumerate(bodies)
        ]
    }


def test_a_small_group_message_reaches_every_member_device_and_an_offline_one_syncs(
    ws: Harness,
) -> None:
    phone, laptop = ws.user(devices=2)
    (bob,) = ws.user()
    (carol,) = ws.user()
    gid = _group(ws, phone, bob, carol)
    phone, laptop, bob = ws.connect(phone), ws.connect(laptop), ws.connect(bob)

    answer = _send(ws, phone, gid)

    assert (answer["event"], answer["id"]) == ("sent", "g-1")
    for device in (laptop, bob):
        (message,) = ws.events(device, "message")
        assert message["group"] == gid
        assert message["from"] == phone.user_id
        assert base64.b64decode(message["body"]) == b"sk"
    assert ws.events(phone) == []
    # carol was offline: it waits in her mailbox and comes with her sync
    carol = ws.connect(carol)
    ws.frame(carol, {"action": "sync"})
    (synced,) = ws.events(carol, "message")
    assert (synced["group"], synced["client_id"]) == (gid, "g-1")


def test_a_non_member_is_refused_and_nothing_is_stored(ws: Harness) -> None:
    (alice,), (bob,), (mallory,) = ws.user(), ws.user(), ws.user()
    gid = _group(ws, alice, bob)
    mallory = ws.connect(mallory)
    before = ws.snapshot()

    answer = _send(ws, mallory, gid)

    assert (answer["event"], answer["code"], answer["ref"]) == ("error", "not_found", "g-1")
    assert ws.snapshot() == before
    # the same answer as for a group that does not exist: nothing says this one does
    missing = _send(ws, mallory, "e" * 32)
    assert (missing["code"], missing["message"]) == (answer["code"], answer["message"])


def test_a_send_for_an_old_version_is_told_the_current_one(ws: Harness) -> None:
    (alice,), (bob,) = ws.user(), ws.user()
    gid = _group(ws, alice, bob)

    stale = _send(ws, ws.connect(alice), gid, version=7)
    bad = _send(ws, ws.connect(alice), gid, version="7")

    assert (stale["code"], stale["version"]) == ("stale_group", 1)
    assert bad["code"] == "invalid_request"


def test_a_large_group_is_fanned_out_by_group_fanout_from_the_queue(ws: Harness) -> None:
    members = [device for _ in range(group_fanout.INLINE_MEMBERS + 8) for device in ws.user()]
    sender, others = members[0], members[1:]
    gid = _group(ws, sender, *others)
    online = [ws.connect(device) for device in others[:10]]

    answer = _send(ws, ws.connect(sender), gid)

    assert answer["event"] == "sent"
    assert all(ws.mailbox_items(device) == [] for device in others)  # not inline
    jobs = _jobs(ws)
    assert len(jobs) == 1  # 40 members: one slice of 50
    result = ws.invoke(
        "GroupFanout", _sqs_event(*((j["Attributes"]["MessageGroupId"], j["Body"]) for j in jobs))
    )
    assert result == {"batchItemFailures": []}
    for device in others:
        (item,) = ws.mailbox_items(device)
        assert item["group"]["S"] == gid
    for device in online:
        (message,) = ws.events(device, "message")
        assert message["ts"] == answer["ts"]


def _job(group_id: str, member: str, client_id: str) -> str:
    return FanoutJob(
        group_id=group_id,
        sender="a" * 32,
        sender_device="d" * 16,
        client_id=client_id,
        body=b"sk",
        ord=f"{round(time.time() * 1e6):017d}#0000abcd",
        expires_at=int(time.time()) + 3600,
        members=(member,),
    ).to_json()


def test_group_fanout_drops_a_malformed_job_and_reports_a_failing_one(
    ws: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    (bob,) = ws.user()
    good = _job("1" * 32, bob.user_id, "ok")

    dropped = ws.invoke("GroupFanout", _sqs_event(("g-0", "not a job"), ("g-1", good)))

    assert dropped == {"batchItemFailures": []}
    assert len(ws.mailbox_items(bob)) == 1
    # writing job "a" fails: it is handed back to SQS and the next job of its message
    # group waits behind it (order); another group's job goes on
    real = EnvelopeWriter.write

    def flaky(self: EnvelopeWriter, envelopes: Sequence[MessageEnvelope]) -> int:
        if any(e.client_id == "a" for e in envelopes):
            raise DependencyUnavailable("mailbox unavailable")
        return real(self, envelopes)

    monkeypatch.setattr(EnvelopeWriter, "write", flaky)
    failed = ws.invoke(
        "GroupFanout",
        _sqs_event(
            ("g-2", _job("2" * 32, bob.user_id, "a")),
            ("g-2", _job("2" * 32, bob.user_id, "b")),
            ("g-3", _job("3" * 32, bob.user_id, "c")),
        ),
    )
    assert failed == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}
    assert sorted(item["sk"]["S"].rsplit("#", 1)[1] for item in ws.mailbox_items(bob)) == [
        "c",
        "ok",
    ]


# -- typing in a group --------------------------------------------------------------------


def test_typing_in_a_group_reaches_the_other_members_live_devices_and_is_never_stored(
    ws: Harness,
) -> None:
    alice_phone, alice_laptop = ws.user(devices=2)
    bob_phone, bob_laptop = ws.user(devices=2)
    (carol,) = ws.user()
    (outsider,) = ws.user()
    group_id = _group(ws, alice_phone, bob_phone, carol)
    alice_phone, alice_laptop = ws.connect(alice_phone), ws.connect(alice_laptop)
    bob_phone, bob_laptop = ws.connect(bob_phone), ws.connect(bob_laptop)
    outsider = ws.connect(outsider)  # carol is offline
    before = ws.snapshot()

    ws.frame(alice_phone, {"action": "typing", "to": f"g:{group_id}", "state": "on"})

    expected = {
        "event": "typing",
        "from": alice_phone.user_id,
        "from_device": alice_phone.device_id,
        "state": "on",
        "group": group_id,
    }
    assert ws.events(bob_phone) == [expected]
    assert ws.events(bob_laptop) == [expected]
    assert ws.events(alice_laptop) == []  # not to the typist's own devices
    assert ws.events(alice_phone) == []
    assert ws.events(outsider) == []
    assert ws.mailbox_items(carol) == []
    assert ws.snapshot() == before


@pytest.mark.parametrize("who", ["outsider", "unknown group"])
def test_typing_to_a_group_one_is_not_in_is_refused_and_relays_nothing(
    ws: Harness, who: str
) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    (outsider,) = ws.user()
    group_id = _group(ws, alice, bob)
    bob, outsider = ws.connect(bob), ws.connect(outsider)
    to = f"g:{group_id}" if who == "outsider" else f"g:{'e' * 32}"

    ws.frame(outsider, {"action": "typing", "to": to, "state": "on"})

    (error,) = ws.events(outsider)
    assert error["event"] == "error"
    # the same answer whether the group exists or not: an outsider learns nothing
    assert (error["code"], error["message"]) == (
        "not_found",
        "no such group, or you are not a member of it",
    )
    assert ws.events(bob) == []


def test_typing_is_not_relayed_in_a_group_over_the_typing_size(ws: Harness) -> None:
    people = [ws.user()[0] for _ in range(group_fanout.TYPING_MEMBERS + 1)]
    group_id = _group(ws, people[0], *people[1:])
    typist, listener = ws.connect(people[0]), ws.connect(people[1])

    ws.frame(typist, {"action": "typing", "to": f"g:{group_id}", "state": "on"})

    (error,) = ws.events(typist)
    assert (error["code"], error["limit"]) == ("group_too_large", group_fanout.TYPING_MEMBERS)
    assert ws.events(listener) == []
