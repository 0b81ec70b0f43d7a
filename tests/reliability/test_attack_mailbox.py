"""Attack: reaching into another person's mailbox, or speaking in their name.

Through the WebSocket handlers with their exact environments (moto in-process,
a loopback @connections endpoint). Mallory is a signed-in user with a connection
of her own; the identity on every frame is the authorizer's, never the frame's.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from parley_server.models.frames import Position, encode_cursor
from tests.conftest import FakeAws
from tests.integration.ws_harness import Device, Harness, harness


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


@pytest.fixture
def people(ws: Harness) -> tuple[Device, Device, Device]:
    """Alice, Bob and Mallory, each connected; Alice has sent Bob one message."""
    alice = ws.connect(ws.user()[0])
    bob = ws.connect(ws.user()[0])
    mallory = ws.connect(ws.user()[0])
    assert ws.send(alice, bob.user_id, {bob.device_id: b"for bob only"}, "m1")["event"] == "sent"
    return alice, bob, mallory


def _bobs_envelope(ws: Harness, bob: Device) -> dict[str, Any]:
    (message,) = ws.events(bob, "message")
    return message


def test_acking_someone_elses_envelope_deletes_nothing_and_tells_the_sender_nothing(
    ws: Harness, people: tuple[Device, Device, Device]
) -> None:
    alice, bob, mallory = people
    envelope = _bobs_envelope(ws, bob)
    before = ws.snapshot()

    ws.frame(mallory, {"action": "ack", "ids": [envelope["id"]]})

    assert ws.snapshot() == before
    assert len(ws.mailbox_items(bob)) == 1
    assert ws.events(alice, "receipt") == []
    (error,) = ws.events(mallory, "error")
    assert (error["code"], error["ids"]) == ("unknown_ids", [envelope["id"]])


def test_another_device_of_the_same_person_cannot_ack_for_this_one(
    ws: Harness, people: tuple[Device, Device, Device]
) -> None:
    alice, bob, _ = people
    bobs_laptop = ws.connect(ws.add_device(bob.user_id))
    envelope = _bobs_envelope(ws, bob)

    ws.frame(bobs_laptop, {"action": "ack", "ids": [envelope["id"]]})

    assert len(ws.mailbox_items(bob)) == 1
    assert ws.events(alice, "receipt") == []


def test_a_made_up_ack_cannot_forge_a_delivered_receipt(
    ws: Harness, people: tuple[Device, Device, Device]
) -> None:
    # Mallory names, in her own mailbox, an id shaped like one of Alice's messages
    alice, _, mallory = people
    forged = f"m#{alice.user_id}#{alice.device_id}#m1"

    ws.frame(mallory, {"action": "ack", "ids": [forged]})

    assert ws.events(alice, "receipt") == []
    assert ws.mailbox_items(alice) == []
    assert ws.events(mallory, "error")[0]["code"] == "unknown_ids"


def test_sync_shows_only_the_callers_own_mailbox_even_with_a_cursor_into_another(
    ws: Harness, people: tuple[Device, Device, Device]
) -> None:
    _, bob, mallory = people
    item = ws.mailbox_items(bob)[0]
    # a cursor that names a position in Bob's mailbox (cursors are not secret)
    just_before = Position("0" * 17 + "#00000000", item["sk"]["S"])

    ws.frame(mallory, {"action": "sync"})
    ws.frame(mallory, {"action": "sync", "after": encode_cursor(just_before)})

    seen = ws.events(mallory)
    assert [e["event"] for e in seen] == ["synced", "synced"]
    assert "for bob only" not in repr(seen)
    assert base64.b64encode(b"for bob only").decode() not in repr(seen)


def test_a_forged_sender_in_the_frame_is_ignored_in_favour_of_the_authorizers(
    ws: Harness, people: tuple[Device, Device, Device]
) -> None:
    alice, bob, mallory = people
    frame = {
        "action": "send",
        "id": "as-alice",
        "to": bob.user_id,
        "payloads": {bob.device_id: base64.b64encode(b"trust me").decode()},
        # every way a frame could try to name its sender
        "from": alice.user_id,
        "from_device": alice.device_id,
        "sender": alice.user_id,
        "user_id": alice.user_id,
        "device_id": alice.device_id,
        "requestContext": {"authorizer": {"user_id": alice.user_id}},
    }

    answer = ws.frame(mallory, frame)

    assert '"sent"' in answer["body"]
    delivered = [e for e in ws.events(bob, "message") if e["client_id"] == "as-alice"]
    assert [(e["from"], e["from_device"]) for e in delivered] == [
        (mallory.user_id, mallory.device_id)
    ]
    stored = [i["sk"]["S"] for i in ws.mailbox_items(bob) if i["sk"]["S"].endswith("#as-alice")]
    assert stored == [f"m#{mallory.user_id}#{mallory.device_id}#as-alice"]


def test_a_retried_client_id_cannot_overwrite_another_senders_pending_message(
    ws: Harness, people: tuple[Device, Device, Device]
) -> None:
    # Mallory reuses Alice's client id for Bob: a different envelope, not Alice's replaced
    alice, bob, mallory = people
    ws.send(mallory, bob.user_id, {bob.device_id: b"overwritten?"}, "m1")

    bodies = {(e["from"], base64.b64decode(e["body"])) for e in ws.events(bob, "message")}
    assert (alice.user_id, b"for bob only") in bodies
    assert (mallory.user_id, b"overwritten?") in bodies
    assert len(ws.mailbox_items(bob)) == 2


def test_a_read_receipt_always_names_who_sent_it(
    ws: Harness, people: tuple[Device, Device, Device]
) -> None:
    # Mallory may claim to have read Alice's message to Bob; Alice sees it is Mallory
    alice, _, mallory = people

    ws.frame(mallory, {"action": "receipt", "to": alice.user_id, "status": "read", "ids": ["m1"]})

    (receipt,) = ws.events(alice, "receipt")
    assert (receipt["from"], receipt["from_device"]) == (mallory.user_id, mallory.device_id)


def test_typing_cannot_be_sent_in_someone_elses_name(
    ws: Harness, people: tuple[Device, Device, Device]
) -> None:
    alice, bob, mallory = people

    ws.frame(mallory, {"action": "typing", "to": bob.user_id, "state": "on", "from": alice.user_id})

    (typing,) = ws.events(bob, "typing")
    assert typing["from"] == mallory.user_id
