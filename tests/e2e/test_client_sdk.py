"""The SDK end to end: real clients, real crypto, the whole local stack.

Each person signs up through the SMS sink into a throwaway profile and talks
through `parley.Client` exactly as an app would.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from parley import (
    AuthenticationError,
    Client,
    Connected,
    DevicesChanged,
    Disconnected,
    Message,
    MessageReceived,
    MessageSent,
    MessageState,
    NotRegistered,
    ReceiptUpdate,
    Typing,
)
from parley.models import Account
from parley.protocol import Protocol
from parley.store import Tokens
from tests.e2e.conftest import LocalStack
from tests.e2e.support import (
    WAIT_S,
    acquainted,
    client,
    clients,
    expect,
    new_device,
    new_person,
    state_of,
    until_state,
)

# one event loop for the session: the clients' sockets and tasks live on it
pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def pair(local_stack: LocalStack, tmp_path: Path) -> tuple[Path, Account, Account]:
    alice = await new_person(local_stack, tmp_path, "alice")
    bob = await new_person(local_stack, tmp_path, "bob")
    await acquainted(local_stack, tmp_path, {"alice": alice, "bob": bob})
    return tmp_path, alice, bob


def _receipts_waiting(stack: LocalStack, device: Account) -> list[str]:
    """The receipts in `device`'s mailbox (it is offline: nothing acks them)."""
    items = stack.mailbox(device.user_id, device.device_id)
    return [i["sk"]["S"] for i in items if i["sk"]["S"].startswith("r#")]


def _messages_waiting(stack: LocalStack, device: Account) -> list[str]:
    items = stack.mailbox(device.user_id, device.device_id)
    return [i["sk"]["S"] for i in items if i["sk"]["S"].startswith("m#")]


async def _until_messages_acked(stack: LocalStack, device: Account) -> None:
    """Until `device` has acked every message waiting for it (the service tells a
    sender `delivered` before it deletes what was acked: after this, any receipt is
    stored). Receipts to `device` may stay: their acks wait for the next ack frame."""
    async with asyncio.timeout(WAIT_S):
        while _messages_waiting(stack, device):  # noqa: ASYNC110 (moto holds it)
            await asyncio.sleep(0.05)


async def test_a_strangers_message_is_a_request_that_tells_the_stranger_nothing_until_accepted(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    # the attack: write to someone, then watch for the delivered tick that says when
    # they came online (it used to arrive 20 ms after they connected)
    mallory = await new_person(local_stack, tmp_path, "mallory")
    bob_account = await new_person(local_stack, tmp_path, "bob")
    async with client(local_stack, tmp_path, "mallory") as app:
        await app.add_contact(bob_account.phone, "Bob")
        await app.send("Bob", "hi, we met at the conference")
        async with asyncio.timeout(WAIT_S):
            await app.wait_outbox_empty()
    # Mallory is offline from here: whatever the service tells her waits in her mailbox

    async with client(local_stack, tmp_path, "bob") as bob:
        await asyncio.wait_for(bob.wait_synced(), WAIT_S)
        await _until_messages_acked(local_stack, bob_account)
        assert _receipts_waiting(local_stack, mallory) == []
        (request,) = bob.message_requests()
        assert (request.user_id, request.accepted) == (mallory.user_id, False)
        assert [m.text for m in bob.history(request)] == ["hi, we met at the conference"]
        await bob.mark_read(request)  # read without telling her
        await bob.set_last_seen_visibility("contacts")

        await bob.accept(request)
        assert bob.message_requests() == []
        assert bob.contact(mallory.user_id).accepted
        read = await bob.send(mallory.user_id, "oh hi!")
        async with asyncio.timeout(WAIT_S):
            await bob.wait_outbox_empty()
    assert _receipts_waiting(local_stack, mallory) == []  # the read above stays unsaid

    async with client(local_stack, tmp_path, "mallory") as app:
        events = app.events()
        got = await expect(events, MessageReceived)
        assert got.message.client_id == read.client_id
        await app.send("Bob", "great to hear from you")
        async with asyncio.timeout(WAIT_S):
            await app.wait_outbox_empty()
        # accepted: her message now ticks, and Bob's last seen is hers to see
        async with client(local_stack, tmp_path, "bob") as bob:
            await _until_messages_acked(local_stack, bob_account)
        update = await expect(events, ReceiptUpdate, lambda e: e.state is MessageState.DELIVERED)
        assert [m.text for m in update.messages] == ["great to hear from you"]
        assert (await app.last_seen("Bob"))["last_seen"] is not None


async def test_first_contact_messages_both_ways_with_ticks_and_read_receipts(
    local_stack: LocalStack, pair: tuple[Path, Account, Account]
) -> None:
    home, alice_account, bob_account = pair
    async with clients(local_stack, home, "alice", "bob") as (alice, bob):
        alice_events, bob_events = alice.events(), bob.events()
        await asyncio.wait_for(bob.wait_synced(), WAIT_S)
        await alice.add_contact(bob_account.phone, "Bob")

        first = await alice.send("Bob", "Hi Bob, first contact")
        assert first.state is MessageState.PENDING
        sent = await expect(alice_events, MessageSent)
        assert sent.message.client_id == first.client_id

        got = await expect(bob_events, MessageReceived)
        assert got.message.text == "Hi Bob, first contact"
        assert got.contact.user_id == alice_account.user_id
        await until_state(alice, alice_events, first.client_id, MessageState.DELIVERED)

        bob.store.contacts.add(alice_account.user_id, "Alice", alice_account.phone)
        read = await bob.mark_read("Alice")
        assert [m.client_id for m in read] == [first.client_id]
        update = await expect(alice_events, ReceiptUpdate, lambda e: e.state is MessageState.READ)
        assert [m.client_id for m in update.messages] == [first.client_id]

        reply = await bob.send("Alice", "Hello Alice")
        answer = await expect(alice_events, MessageReceived)
        assert answer.message.text == "Hello Alice"
        await until_state(bob, bob_events, reply.client_id, MessageState.DELIVERED)

        assert [m.text for m in alice.history("Bob")] == ["Hi Bob, first contact", "Hello Alice"]
        assert await alice.safety_number("Bob") == await bob.safety_number("Alice")


def _record_frames(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[dict[str, object]]]:
    """Every frame each client writes from here on, by the id of its protocol."""
    written: dict[int, list[dict[str, object]]] = {}
    data_to_send = Protocol.data_to_send

    def recording(proto: Protocol) -> list[list[str]]:
        frames = data_to_send(proto)
        written.setdefault(id(proto), []).extend(json.loads("".join(f)) for f in frames)
        return frames

    monkeypatch.setattr(Protocol, "data_to_send", recording)
    return written


async def _until_no_receipts(stack: LocalStack, device: Account) -> None:
    async with asyncio.timeout(WAIT_S):
        while _receipts_waiting(stack, device):  # noqa: ASYNC110 (moto holds it)
            await asyncio.sleep(0.05)


async def test_a_receipts_ack_rides_with_the_replys_ack_and_goes_before_a_close(
    local_stack: LocalStack, pair: tuple[Path, Account, Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, alice_account, bob_account = pair
    written = _record_frames(monkeypatch)
    async with clients(local_stack, home, "alice", "bob") as (alice, bob):
        alice_events, bob_events = alice.events(), bob.events()
        await asyncio.wait_for(bob.wait_synced(), WAIT_S)
        await alice.add_contact(bob_account.phone, "Bob")
        first = await alice.send("Bob", "are you there?")
        await expect(bob_events, MessageReceived)
        await until_state(alice, alice_events, first.client_id, MessageState.DELIVERED)
        # applied, and its ack waits for an ack frame that goes anyway
        (receipt,) = _receipts_waiting(local_stack, alice_account)

        reply = await bob.send(alice_account.user_id, "yes")
        await expect(alice_events, MessageReceived)
        await _until_no_receipts(local_stack, alice_account)
        # one frame acked the reply (ticking it) and the receipt
        (ack,) = [f for f in written[id(alice.protocol)] if f.get("action") == "ack"]
        ids = ack["ids"]
        assert isinstance(ids, list)
        (message,) = [i for i in ids if i != receipt]
        assert message.startswith(f"m#{bob_account.user_id}#")
        assert message.endswith(f"#{reply.client_id}")
        assert ack["delivered"] == [message]
        await until_state(bob, bob_events, reply.client_id, MessageState.DELIVERED)
        (waiting,) = _receipts_waiting(local_stack, bob_account)
    # closing sent the ack Bob still held
    await _until_no_receipts(local_stack, bob_account)
    bobs = [f for f in written[id(bob.protocol)] if f.get("action") == "ack"]
    assert bobs[-1] == {"action": "ack", "ids": [waiting]}


async def _stored_for(sender: Client, recipient: Account, texts: list[str]) -> list[Message]:
    """`texts` sent to `recipient` (saved as "Bob") and stored by the service."""
    await asyncio.wait_for(sender.wait_synced(), WAIT_S)
    await sender.add_contact(recipient.phone, "Bob")
    sent = [await sender.send("Bob", text) for text in texts]
    async with asyncio.timeout(WAIT_S):
        await sender.wait_outbox_empty()
    return sent


async def test_an_offline_recipient_gets_all_in_order_and_the_server_held_only_ciphertext(
    local_stack: LocalStack, pair: tuple[Path, Account, Account]
) -> None:
    home, alice_account, bob_account = pair
    secret_texts = [f"secret number {i}: the eagle lands at noon" for i in range(5)]
    async with client(local_stack, home, "alice") as alice:
        alice_events = alice.events()
        sent = await _stored_for(alice, bob_account, secret_texts)
        assert {state_of(alice, alice_account.user_id, m.client_id) for m in sent} == {
            MessageState.SENT
        }

        stored = mailbox_bodies(local_stack, bob_account)
        assert len(stored) == len(secret_texts)
        for body in stored:
            for text in secret_texts:
                assert text.encode() not in body
                assert b"eagle" not in body

        async with client(local_stack, home, "bob") as bob:
            bob_events = bob.events()
            received = [await expect(bob_events, MessageReceived) for _ in secret_texts]
            assert [r.message.text for r in received] == secret_texts  # per-sender order
        for message in sent:
            await until_state(alice, alice_events, message.client_id, MessageState.DELIVERED)
    assert mailbox_bodies(local_stack, bob_account) == []  # acked: gone from the server


async def test_a_backlog_is_acked_in_one_frame_and_the_sender_still_gets_every_tick(
    local_stack: LocalStack, pair: tuple[Path, Account, Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _alice_account, bob_account = pair
    texts = [f"while you were out {i}" for i in range(30)]
    async with client(local_stack, home, "alice") as alice:
        alice_events = alice.events()
        sent = await _stored_for(alice, bob_account, texts)

        written = _record_frames(monkeypatch)  # every frame Bob's client writes
        # a delay far above the time the backlog takes (bench/catchup.py: 100 messages
        # shown in 0.17 s), so one frame is the only right answer
        async with client(local_stack, home, "bob", ack_delay=2.0) as bob:
            bob_events = bob.events()
            received = [await expect(bob_events, MessageReceived) for _ in texts]
            assert [r.message.text for r in received] == texts
            await _until_messages_acked(local_stack, bob_account)
            acks = [f for f in written[id(bob.protocol)] if f.get("action") == "ack"]
        assert len(acks) == 1
        assert len(acks[0]["ids"]) == len(texts)  # type: ignore[arg-type]
        for message in sent:
            await until_state(alice, alice_events, message.client_id, MessageState.DELIVERED)


def mailbox_bodies(stack: LocalStack, recipient: Account) -> list[bytes]:
    items = stack.mailbox(recipient.user_id, recipient.device_id)
    return [bytes(i["body"]["B"]) for i in items if i["sk"]["S"].startswith("m#")]


async def test_a_message_written_offline_survives_a_restart_and_goes_out_with_its_client_id(
    local_stack: LocalStack, pair: tuple[Path, Account, Account]
) -> None:
    home, _, bob_account = pair
    async with client(local_stack, home, "alice", connect=False) as alice:
        await alice.add_contact(bob_account.phone, "Bob")
        queued = await alice.send("Bob", "written on a plane")
        assert alice.store.outbox.items()[0].entry.client_id == queued.client_id

    # the app restarts, online this time
    async with clients(local_stack, home, "alice", "bob") as (alice, bob):
        alice_events, bob_events = alice.events(), bob.events()
        got = await expect(bob_events, MessageReceived)
        assert (got.message.client_id, got.message.text) == (queued.client_id, "written on a plane")
        await until_state(alice, alice_events, queued.client_id, MessageState.DELIVERED)
        assert alice.store.outbox.items() == []


async def test_a_new_device_of_the_recipient_is_picked_up_after_mismatched_devices(
    local_stack: LocalStack, pair: tuple[Path, Account, Account]
) -> None:
    home, alice_account, bob_account = pair
    async with client(local_stack, home, "alice") as alice:
        alice_events = alice.events()
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        await alice.add_contact(bob_account.phone, "Bob")
        await alice.send("Bob", "to your phone")  # session with Bob's first device only
        async with asyncio.timeout(WAIT_S):
            await alice.wait_outbox_empty()

        # Bob links a second device (a companion, new profile)
        laptop = await new_device(local_stack, home, bob_account, "bob-laptop")

        second = await alice.send("Bob", "to both your devices")
        async with asyncio.timeout(WAIT_S):
            await alice.wait_outbox_empty()
        assert state_of(alice, alice_account.user_id, second.client_id) is MessageState.SENT
        # a companion the account's signed list vouches for: a device change, no warning
        changed = await expect(alice_events, DevicesChanged)
        assert (changed.added, changed.removed) == ((laptop.device_id,), ())
        bob_contact = alice.store.contacts.get(bob_account.user_id)
        assert bob_contact is not None
        assert not bob_contact.identity_changed
        assert set(alice.store.sessions.for_user(bob_account.user_id)) == {
            bob_account.device_id,
            laptop.device_id,
        }

    for profile in ("bob", "bob-laptop"):
        async with client(local_stack, home, profile) as device:
            events = device.events()
            texts = set()
            while "to both your devices" not in texts:
                texts.add((await expect(events, MessageReceived)).message.text)


async def test_an_expired_access_token_is_refreshed_before_connecting(
    local_stack: LocalStack, pair: tuple[Path, Account, Account]
) -> None:
    home, _, _ = pair
    async with client(local_stack, home, "alice", connect=False) as offline:
        tokens = offline.store.accounts.tokens()
        assert tokens is not None
        offline.store.accounts.save_tokens(Tokens(tokens.access_token, tokens.refresh_token, 0.0))
    async with client(local_stack, home, "alice") as alice:
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        renewed = alice.store.accounts.tokens()
        assert renewed is not None
        assert renewed.refresh_token != tokens.refresh_token  # rotated
        assert renewed.access_expires_at > 0


async def test_typing_reaches_an_online_contact_and_is_never_stored(
    local_stack: LocalStack, pair: tuple[Path, Account, Account]
) -> None:
    home, alice_account, bob_account = pair
    async with clients(local_stack, home, "alice", "bob") as (alice, bob):
        bob_events = bob.events()
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        await asyncio.wait_for(bob.wait_synced(), WAIT_S)
        await alice.add_contact(bob_account.phone, "Bob")
        bob.store.contacts.add(alice_account.user_id, "Alice", alice_account.phone)
        await alice.typing("Bob", True)
        on = await expect(bob_events, Typing)
        assert (on.contact.name, on.typing) == ("Alice", True)
        await alice.typing("Bob", False)
        off = await expect(bob_events, Typing)
        assert off.typing is False
    assert mailbox_bodies(local_stack, bob_account) == []


async def test_a_lost_device_is_signed_out_from_another_and_stops_at_once(
    local_stack: LocalStack, pair: tuple[Path, Account, Account]
) -> None:
    home, alice_account, _ = pair
    laptop_account = await new_device(local_stack, home, alice_account, "alice-laptop")
    async with clients(local_stack, home, "alice", "alice-laptop", "bob") as (phone, laptop, bob):
        laptop_events = laptop.events()
        for device in (phone, laptop, bob):
            await asyncio.wait_for(device.wait_synced(), WAIT_S)
        listed = await phone.devices()
        assert {d.device_id: d.current for d in listed} == {
            alice_account.device_id: True,
            laptop_account.device_id: False,
        }

        await phone.sign_out_device(laptop_account.device_id)

        await expect(laptop_events, Disconnected)  # closed by the service, at once
        with pytest.raises(AuthenticationError):
            await laptop.devices()
        assert [d.device_id for d in await phone.devices()] == [alice_account.device_id]
        # people's apps stop encrypting for it: Bob's message goes to the phone only
        await bob.add_contact(alice_account.phone, "Alice")
        sent = await bob.send("Alice", "just your phone now")
        async with asyncio.timeout(WAIT_S):
            await bob.wait_outbox_empty()
        assert set(bob.store.sessions.for_user(alice_account.user_id)) == {alice_account.device_id}
        assert state_of(bob, bob.account.user_id, sent.client_id) in (
            MessageState.SENT,
            MessageState.DELIVERED,
        )
        # and the laptop does not dial again
        await asyncio.sleep(0.5)
        assert not any(isinstance(e, Connected) for e in laptop_events.drain())


async def test_a_device_signing_itself_out_forgets_its_tokens(
    local_stack: LocalStack, pair: tuple[Path, Account, Account]
) -> None:
    home, alice_account, _ = pair
    async with client(local_stack, home, "alice") as alice:
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        await alice.sign_out_device(alice_account.device_id)
        assert alice.store.accounts.tokens() is None
    async with client(local_stack, home, "alice", connect=False) as again:
        with pytest.raises(NotRegistered):  # the profile keeps its history, not its tokens
            await again.devices()
