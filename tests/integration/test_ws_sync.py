"""`sync` through its handler: a device that was offline gets everything, oldest first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from parley_server.catalogue import Setting
from parley_server.logic.messaging import SYNC_PAGE
from parley_server.models.frames import BATCH_BYTES
from tests.conftest import FakeAws
from tests.integration.ws_harness import Device, Harness, harness


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


def _sync_all(ws: Harness, device: Device, *, batch: bool = False) -> int:
    """Sync as the client does: repeat with the cursor while `more`; the number of frames."""
    frames = 0
    frame: dict[str, Any] = {"action": "sync", "batch": batch}
    while True:
        frames += 1
        assert ws.frame(device, frame) == {"statusCode": 200}
        synced = ws.events(device, "synced")[-1]
        if not synced["more"]:
            return frames
        frame = {"action": "sync", "after": synced["cursor"], "batch": batch}


def _offline_backlog(ws: Harness, count: int) -> Device:
    """Alice sends `count` messages (m0000, m0001, ...) to Bob while he is offline; Bob,
    connected now."""
    ws.aws.settings[Setting.LIMITS] = json.dumps({"send_rate_per_s": 10_000})
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice = ws.connect(alice)
    for i in range(count):
        answer = ws.send(alice, bob.user_id, {bob.device_id: b"%d" % i}, f"m{i:04d}")
        assert answer["event"] == "sent"
    return ws.connect(bob)


def test_offline_recipient_syncs_a_backlog_larger_than_a_page_in_order(ws: Harness) -> None:
    count = SYNC_PAGE + 5
    bob = _offline_backlog(ws, count)

    frames = _sync_all(ws, bob)

    assert frames == 2
    got = ws.events(bob)
    messages = [e for e in got if e["event"] == "message"]
    assert [m["client_id"] for m in messages] == [f"m{i:04d}" for i in range(count)]
    # each page is followed by its synced event; only the last says no more
    assert [e["more"] for e in got if e["event"] == "synced"] == [True, False]
    assert got[SYNC_PAGE]["event"] == "synced"
    assert len(ws.mailbox_items(bob)) == count  # nothing leaves without an ack


def test_a_client_that_reads_batches_gets_each_page_in_one_post(ws: Harness) -> None:
    count = SYNC_PAGE + 5
    bob = _offline_backlog(ws, count)

    assert _sync_all(ws, bob, batch=True) == 2

    posts = ws.posted(bob)
    assert [p["event"] for p in posts] == ["batch", "batch"]  # 2 posts, not 107
    assert all(len(json.dumps(p, separators=(",", ":"))) <= BATCH_BYTES for p in posts)
    got = ws.events(bob)
    assert [m["client_id"] for m in got if m["event"] == "message"] == [
        f"m{i:04d}" for i in range(count)
    ]
    assert [(e["event"], e.get("more")) for e in got if e["event"] == "synced"] == [
        ("synced", True),
        ("synced", False),
    ]
    assert got[SYNC_PAGE]["event"] == "synced"


def test_sync_after_ack_only_returns_what_is_still_pending(ws: Harness) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice = ws.connect(alice)
    for i in range(3):
        ws.send(alice, bob.user_id, {bob.device_id: b"x"}, f"m{i}")
    bob = ws.connect(bob)
    ws.frame(bob, {"action": "sync"})
    first = ws.events(bob, "message")[0]["id"]
    ws.frame(bob, {"action": "ack", "ids": [first]})
    ws.endpoint.clear()

    ws.frame(bob, {"action": "sync"})

    assert [e["client_id"] for e in ws.events(bob, "message")] == ["m1", "m2"]


def test_connection_dropped_before_ack_gets_the_message_again_on_sync(ws: Harness) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice, bob = ws.connect(alice), ws.connect(bob)
    ws.send(alice, bob.user_id, {bob.device_id: b"x"}, "m1")
    delivered = ws.events(bob, "message")
    ws.disconnect(bob)

    again = ws.connect(Device(bob.user_id, bob.device_id))
    ws.frame(again, {"action": "sync"})

    assert ws.events(again, "message") == delivered  # same id: the client drops the copy


def test_expired_envelopes_are_never_delivered(ws: Harness) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice = ws.connect(alice)
    ws.send(alice, bob.user_id, {bob.device_id: b"old"}, "old")
    ws.send(alice, bob.user_id, {bob.device_id: b"new"}, "new")
    # DynamoDB has not yet removed an item whose TTL passed (its deletion is lazy)
    ddb = ws.aws.client("dynamodb")
    (old,) = [i for i in ws.mailbox_items(bob) if i["sk"]["S"].endswith("#old")]
    ddb.update_item(
        TableName=ws.aws.settings[Setting.MAILBOX_TABLE],
        Key={"device": old["device"], "sk": old["sk"]},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1000"}},
    )
    bob = ws.connect(bob)

    ws.frame(bob, {"action": "sync"})

    assert [e["client_id"] for e in ws.events(bob, "message")] == ["new"]


@pytest.mark.parametrize(
    "after",
    ["not-a-cursor", 42, "W10", "eyJhIjoxfQ"],
)
def test_a_bad_cursor_is_refused_and_changes_nothing(ws: Harness, after: Any) -> None:
    bob = ws.connect(ws.user()[0])
    before = ws.snapshot()

    ws.frame(bob, {"action": "sync", "after": after})

    (error,) = ws.events(bob)
    assert (error["event"], error["code"], error["field"]) == ("error", "invalid_request", "after")
    assert ws.snapshot() == before
