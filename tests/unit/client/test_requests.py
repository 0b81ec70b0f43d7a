"""Message requests in the client: a stranger's message is read without a read
receipt and typing is not sent to them, until the user accepts them (or replies)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley import Client
from tests.unit.client import test_transfers as transfers
from tests.unit.client.test_transfers import BOB, hand_over

pytestmark = pytest.mark.asyncio(loop_scope="session")

# the two people of the transfer tests: Alice has Bob as a contact, Bob knows nobody
service, people = transfers.service, transfers.people


def control_frames(client: Client) -> list[dict[str, Any]]:
    """What the client would write now, acks aside."""
    sent = [json.loads("".join(frame)) for frame in client.protocol.data_to_send()]
    return [frame for frame in sent if frame["action"] != "ack"]


async def test_a_request_is_read_and_typed_to_without_telling_the_stranger(
    people: tuple[Client, Client],
) -> None:
    alice, bob = people
    await alice.send(BOB, "hello, stranger")  # Alice knows Bob (she wrote to him)
    hand_over(alice, bob)
    alice_id = alice.account.user_id
    bob.protocol.connection_made()
    bob.protocol.data_to_send()  # its sync

    assert [c.user_id for c in bob.message_requests()] == [alice_id]
    assert [m.text for m in await bob.mark_read(alice_id)] == ["hello, stranger"]
    await bob.typing(alice_id)
    assert control_frames(bob) == []

    await bob.accept(alice_id)
    assert bob.message_requests() == []
    await alice.send(BOB, "thanks for accepting")
    hand_over(alice, bob)
    await bob.mark_read(alice_id)
    await bob.typing(alice_id)
    frames = control_frames(bob)
    assert [(f["action"], f.get("status")) for f in frames] == [
        ("receipt", "read"),
        ("typing", None),
    ]
    assert frames[0]["to"] == alice_id
