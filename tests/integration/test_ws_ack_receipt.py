"""`ack` and `receipt` through their handlers: single, double and blue ticks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.integration.ws_harness import Device, Harness, harness


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


def _conversation(ws: Harness, sender_devices: int = 1) -> tuple[list[Device], Device]:
    alice = [ws.connect(d) for d in ws.user(devices=sender_devices)]
    (bob,) = ws.user()
    return alice, ws.connect(bob)


def test_ack_deletes_and_the_sender_gets_delivered_on_every_device(ws: Harness) -> None:
    (alice_phone, alice_laptop), bob = _conversation(ws, sender_devices=2)
    for client_id in ("m1", "m2"):
        assert (
            ws.send(alice_phone, bob.user_id, {bob.device_id: b"x"}, client_id)["event"] == "sent"
        )

    ids = [e["id"] for e in ws.events(bob, "message")]
    answer = ws.frame(bob, {"action": "ack", "ids": ids, "delivered": ids})

    assert answer == {"statusCode": 200}
    assert ws.mailbox_items(bob) == []
    for device in (alice_phone, alice_laptop):
        (receipt,) = ws.events(device, "receipt")
        assert receipt["status"] == "delivered"
        assert receipt["ids"] == ["m1", "m2"]
        assert (receipt["from"], receipt["from_device"]) == (bob.user_id, bob.device_id)
        assert len(ws.mailbox_items(device)) == 1  # until that device acks it
    assert ws.events(bob, "error") == []


def test_an_ack_without_delivered_deletes_and_tells_the_sender_nothing(ws: Harness) -> None:
    # the recipient acks a stranger's message without a tick: nothing reaches the
    # stranger, live or stored, that says the recipient is online
    (stranger,), bob = _conversation(ws)
    ws.send(stranger, bob.user_id, {bob.device_id: b"junk"}, "m1")

    ws.frame(bob, {"action": "ack", "ids": [ws.events(bob, "message")[0]["id"]]})

    assert ws.mailbox_items(bob) == []
    assert ws.events(stranger, "receipt") == []
    assert ws.mailbox_items(stranger) == []
    assert ws.events(bob, "error") == []


def test_acking_the_receipt_deletes_it_and_nothing_follows(ws: Harness) -> None:
    (alice,), bob = _conversation(ws)
    ws.send(alice, bob.user_id, {bob.device_id: b"x"}, "m1")
    first = ws.events(bob, "message")[0]["id"]
    ws.frame(bob, {"action": "ack", "ids": [first], "delivered": [first]})
    receipt = ws.events(alice, "receipt")[0]

    ws.frame(alice, {"action": "ack", "ids": [receipt["id"]]})

    assert ws.mailbox_items(alice) == []
    assert ws.events(bob, "receipt") == []
    assert ws.events(alice, "error") == []


def test_read_receipt_reaches_every_device_of_the_sender(ws: Harness) -> None:
    (alice_phone, alice_laptop), bob = _conversation(ws, sender_devices=2)
    ws.send(alice_phone, bob.user_id, {bob.device_id: b"x"}, "m1")

    answer = ws.frame(
        bob, {"action": "receipt", "to": alice_phone.user_id, "status": "read", "ids": ["m1"]}
    )

    assert answer == {"statusCode": 200}
    for device in (alice_phone, alice_laptop):
        (receipt,) = ws.events(device, "receipt")
        assert (receipt["status"], receipt["ids"], receipt["from"]) == ("read", ["m1"], bob.user_id)
        (item,) = ws.mailbox_items(device)
        assert item["sk"]["S"] == receipt["id"]


def test_a_read_receipt_for_an_offline_sender_waits_for_sync(ws: Harness) -> None:
    (alice,) = ws.user()
    bob = ws.connect(ws.user()[0])

    ws.frame(bob, {"action": "receipt", "to": alice.user_id, "status": "read", "ids": ["m1"]})
    alice = ws.connect(alice)
    ws.frame(alice, {"action": "sync"})

    (receipt,) = ws.events(alice, "receipt")
    assert receipt["ids"] == ["m1"]
    assert ws.events(alice)[-1] == {"event": "synced", "more": False, "cursor": None}


def test_ack_of_someone_elses_envelope_deletes_nothing_and_says_so(ws: Harness) -> None:
    (alice,), bob = _conversation(ws)
    mallory = ws.connect(ws.user()[0])
    ws.send(alice, bob.user_id, {bob.device_id: b"for bob only"}, "m1")
    bobs_id = ws.events(bob, "message")[0]["id"]
    before = ws.snapshot()

    ws.frame(mallory, {"action": "ack", "ids": [bobs_id]})

    assert ws.snapshot() == before
    (error,) = ws.events(mallory)
    assert (error["event"], error["code"], error["ids"]) == ("error", "unknown_ids", [bobs_id])
    assert ws.events(alice, "receipt") == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"action": "ack"}, "invalid_request"),
        ({"action": "ack", "ids": "m#1"}, "invalid_request"),
        ({"action": "ack", "ids": []}, "invalid_request"),
        ({"action": "ack", "ids": [1, 2]}, "invalid_request"),
        ({"action": "ack", "ids": ["USER#x"]}, "invalid_request"),
        (
            {
                "action": "ack",
                "ids": [f"m#{'a' * 32}#{'1' * 16}#c1"],
                "delivered": [f"m#{'a' * 32}#{'1' * 16}#c2"],
            },
            "invalid_request",
        ),
        (
            {"action": "ack", "ids": [f"m#{'a' * 32}#{'1' * 16}#c{i}" for i in range(101)]},
            "payload_too_large",
        ),
        ({"action": "receipt", "status": "read", "ids": ["m1"]}, "invalid_request"),
        (
            {"action": "receipt", "to": "{alice}", "status": "seen", "ids": ["m1"]},
            "invalid_request",
        ),
        ({"action": "receipt", "to": "{alice}", "status": "read", "ids": "m1"}, "invalid_request"),
        ({"action": "receipt", "to": "{alice}", "status": "read", "ids": ["#"]}, "invalid_request"),
        ({"action": "receipt", "to": "f" * 32, "status": "read", "ids": ["m1"]}, "unknown_user"),
    ],
)
def test_bad_ack_and_receipt_frames_are_refused_clearly_and_change_nothing(
    ws: Harness, frame: dict[str, Any], code: str
) -> None:
    (alice,), bob = _conversation(ws)
    ws.send(alice, bob.user_id, {bob.device_id: b"x"}, "m1")
    frame = {
        k: (v.replace("{alice}", alice.user_id) if isinstance(v, str) else v)
        for k, v in frame.items()
    }
    ws.endpoint.clear()
    before = ws.snapshot()

    assert ws.frame(bob, frame) == {"statusCode": 200}

    (error,) = ws.events(bob)
    assert (error["event"], error["code"]) == ("error", code)
    assert error["message"]
    assert ws.snapshot() == before
    assert ws.events(alice) == []
