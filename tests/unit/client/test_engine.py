"""Messaging use cases between two real engines and stores, without a network.

Key bundles come from an in-memory key server that behaves like the
service's: each fetch claims one one-time prekey per device.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from parley.answers import b64, unb64
from parley.content import Text
from parley.conversations import payload
from parley.crypto import IdentityKeyPair, is_prekey_message
from parley.engine import Engine
from parley.keys import TARGET, publish_initial_keys
from parley.models import (
    Account,
    Contact,
    DevicesChanged,
    IdentityChanged,
    MessageReceived,
    MessageSent,
    MessageState,
    ReceiptUpdate,
)
from parley.protocol import IncomingMessage, IncomingReceipt, OutboxEntry
from parley.store import Store
from tests.unit.client.fakes import KeyServer

ALICE, BOB, CAROL = "a" * 32, "b" * 32, "c" * 32
ALICE_DEV, BOB_DEV, BOB_DEV2, CAROL_DEV = "a1" * 8, "b1" * 8, "b2" * 8, "c1" * 8


async def make_engine(tmp: Path, directory: KeyServer, uid: str, did: str) -> Engine:
    store = Store.open(tmp / f"{uid[:4]}-{did}", keyring=None, allow_plaintext=True)
    store.accounts.save(Account(uid, did, "+1555000" + uid[:4]), IdentityKeyPair.generate())
    await publish_initial_keys(directory.uploader(uid, did), store, 1000.0)
    return Engine(store, directory.fetch, clock=lambda: 2000.0)


def envelope(entry: OutboxEntry, sender: str, sender_device: str, device: str) -> IncomingMessage:
    assert entry.payloads is not None
    return IncomingMessage(
        server_id=f"m#{entry.client_id}",
        client_id=entry.client_id,
        sender=sender,
        sender_device=sender_device,
        body=entry.payloads[device],
        ts=1_700_000_000_000,
    )


def snapshot(engine: Engine, peer: str) -> tuple[object, ...]:
    store = engine.store
    return (
        [m.text for m in store.messages.history(peer)],
        {d: s.to_bytes() for d, s in store.sessions.for_user(peer).items()},
        store.prekeys.one_time_count(),
        store.contacts.identities(peer),
        store.contacts.get(peer),
    )


@pytest.fixture
def directory() -> KeyServer:
    return KeyServer()


@pytest.fixture
async def alice(tmp_path: Path, directory: KeyServer) -> Engine:
    engine = await make_engine(tmp_path, directory, ALICE, ALICE_DEV)
    engine.store.contacts.add(BOB, "Bob", "+15550000002")
    return engine


@pytest.fixture
async def bob(tmp_path: Path, directory: KeyServer) -> Engine:
    return await make_engine(tmp_path, directory, BOB, BOB_DEV)


def bob_contact(engine: Engine) -> Contact:
    contact = engine.store.contacts.get(BOB)
    assert contact is not None
    return contact


async def test_first_contact_runs_x3dh_and_both_sides_can_talk(
    alice: Engine, bob: Engine, directory: KeyServer
) -> None:
    message, entry, events = await alice.prepare(bob_contact(alice), "hi Bob")
    assert message.state is MessageState.PENDING
    assert set(entry.payloads or {}) == {BOB_DEV}
    assert events == []
    assert len(directory.devices[BOB][BOB_DEV].one_time) == TARGET - 1  # one claimed

    received = bob.receive(envelope(entry, ALICE, ALICE_DEV, BOB_DEV))
    assert received.stored
    assert received.consumed_prekey
    (event,) = received.events
    assert isinstance(event, MessageReceived)
    assert event.message.text == "hi Bob"
    assert event.contact.user_id == ALICE
    assert event.contact.name is None  # a stranger until Bob names them
    assert bob.store.prekeys.one_time_count() == TARGET - 1

    # Bob answers over the session he accepted (no new session), once he has verified
    # Alice's device list: the one fetch for it claims one of her prekeys
    alice_contact = bob.store.contacts.get(ALICE)
    assert alice_contact is not None
    session = bob.store.sessions.get(ALICE, ALICE_DEV)
    assert session is not None
    _, reply, _ = await bob.prepare(alice_contact, "hello Alice")
    assert len(directory.devices[ALICE][ALICE_DEV].one_time) == TARGET - 1
    assert bob.sealer.verified_list(ALICE) is not None
    assert not is_prekey_message(unb64((reply.payloads or {})[ALICE_DEV]))
    answer = alice.receive(envelope(reply, BOB, BOB_DEV, ALICE_DEV))
    assert answer.stored
    assert not answer.consumed_prekey
    assert [m.text for m in alice.store.messages.history(BOB)] == ["hi Bob", "hello Alice"]


async def test_sent_and_receipts_move_ticks_forward_only(alice: Engine, bob: Engine) -> None:
    _, entry, _ = await alice.prepare(bob_contact(alice), "hi")
    (sent,) = alice.sent(entry, ts=1_700_000_000_123)
    assert isinstance(sent, MessageSent)
    assert sent.message.state is MessageState.SENT
    assert sent.message.ts == 1_700_000_000_123
    assert alice.store.outbox.items() == []

    read = IncomingReceipt("r1", BOB, BOB_DEV, "read", (entry.client_id,), 5)
    (update,) = alice.receipt(read)
    assert isinstance(update, ReceiptUpdate)
    assert update.state is MessageState.READ
    late = IncomingReceipt("r2", BOB, BOB_DEV, "delivered", (entry.client_id,), 6)
    assert alice.receipt(late) == []
    assert alice.store.messages.history(BOB)[0].state is MessageState.READ


async def test_a_receipt_from_someone_else_cannot_tick_a_message(
    alice: Engine, bob: Engine
) -> None:
    _, entry, _ = await alice.prepare(bob_contact(alice), "hi")
    alice.store.contacts.add(CAROL, "Carol", None)
    forged = IncomingReceipt("r1", CAROL, CAROL_DEV, "read", (entry.client_id,), 5)
    assert alice.receipt(forged) == []
    stranger = IncomingReceipt("r2", "d" * 32, CAROL_DEV, "read", (entry.client_id,), 5)
    assert alice.receipt(stranger) == []
    assert alice.store.messages.history(BOB)[0].state is MessageState.PENDING


async def test_mark_read_moves_unread_incoming_messages_to_read(alice: Engine, bob: Engine) -> None:
    _, entry, _ = await alice.prepare(bob_contact(alice), "one")
    bob.receive(envelope(entry, ALICE, ALICE_DEV, BOB_DEV))
    alice_contact = bob.store.contacts.get(ALICE)
    assert alice_contact is not None
    (read,) = bob.mark_read(alice_contact)
    assert read.client_id == entry.client_id
    assert bob.mark_read(alice_contact) == []


# --- bad input from the server: logged, dropped, store untouched -----------------


def tamper(b64: str, index: int, xor: int = 0x01) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index] ^= xor
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("bad base64", lambda body: body[:-3] + "*!="),
        ("wrong version byte", lambda body: tamper(body, 0, 0x7F)),
        ("forged header", lambda body: tamper(body, 40)),
        ("forged ciphertext", lambda body: tamper(body, -5)),
        ("truncated", lambda body: base64.b64encode(base64.b64decode(body)[:20]).decode()),
    ],
)
async def test_a_malformed_first_message_is_dropped_and_changes_nothing(
    alice: Engine,
    bob: Engine,
    name: str,
    mutate: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, entry, _ = await alice.prepare(bob_contact(alice), "hi")
    good = envelope(entry, ALICE, ALICE_DEV, BOB_DEV)
    bad = IncomingMessage(**{**good.__dict__, "body": mutate(good.body)})  # type: ignore[operator]
    before = snapshot(bob, ALICE)

    with caplog.at_level(logging.WARNING, logger="parley"):
        result = bob.receive(bad)

    assert not result.stored
    assert result.events == []
    assert "dropped" in caplog.text, name
    assert snapshot(bob, ALICE) == before
    # the genuine message still opens afterwards: nothing was consumed
    assert bob.receive(good).stored


async def test_a_malformed_message_inside_a_session_changes_nothing(
    alice: Engine, bob: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    _, first, _ = await alice.prepare(bob_contact(alice), "first")
    assert bob.receive(envelope(first, ALICE, ALICE_DEV, BOB_DEV)).stored
    _, second, _ = await alice.prepare(bob_contact(alice), "second")
    good = envelope(second, ALICE, ALICE_DEV, BOB_DEV)
    before = snapshot(bob, ALICE)
    for body in (tamper(good.body, 0, 0x7F), tamper(good.body, 10), "%%%"):
        with caplog.at_level(logging.WARNING, logger="parley"):
            assert not bob.receive(IncomingMessage(**{**good.__dict__, "body": body})).stored
        assert snapshot(bob, ALICE) == before
    assert bob.receive(good).stored
    assert [m.text for m in bob.store.messages.history(ALICE)] == ["first", "second"]


async def test_a_message_from_an_unknown_sender_is_rejected(
    tmp_path: Path,
    alice: Engine,
    bob: Engine,
    directory: KeyServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # an ordinary (non-prekey) ratchet message of Alice's, delivered to Carol
    _, first, _ = await alice.prepare(bob_contact(alice), "first")
    bob.receive(envelope(first, ALICE, ALICE_DEV, BOB_DEV))
    alice_contact = bob.store.contacts.get(ALICE)
    assert alice_contact is not None
    _, reply, _ = await bob.prepare(alice_contact, "reply")
    alice.receive(envelope(reply, BOB, BOB_DEV, ALICE_DEV))
    _, ordinary, _ = await alice.prepare(bob_contact(alice), "no longer a prekey message")

    carol = await make_engine(tmp_path, directory, CAROL, CAROL_DEV)
    before = snapshot(carol, ALICE)
    with caplog.at_level(logging.WARNING, logger="parley"):
        result = carol.receive(envelope(ordinary, ALICE, ALICE_DEV, BOB_DEV))
    assert not result.stored
    assert "unknown sender" in caplog.text
    assert snapshot(carol, ALICE) == before


async def test_a_replayed_message_is_refused(
    alice: Engine, bob: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    _, first, _ = await alice.prepare(bob_contact(alice), "first")
    bob.receive(envelope(first, ALICE, ALICE_DEV, BOB_DEV))
    _, second, _ = await alice.prepare(bob_contact(alice), "second")
    message = envelope(second, ALICE, ALICE_DEV, BOB_DEV)
    assert bob.receive(message).stored
    before = snapshot(bob, ALICE)
    # the same ciphertext under a new client id: dedupe cannot catch it, the ratchet does
    replay = IncomingMessage(**{**message.__dict__, "client_id": "replayed"})
    with caplog.at_level(logging.WARNING, logger="parley"):
        assert not bob.receive(replay).stored
    assert snapshot(bob, ALICE) == before


async def test_a_first_message_replayed_after_its_session_was_replaced_is_refused(
    alice: Engine, bob: Engine, directory: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Bob's one-time prekeys are all taken: Alice's first messages carry none, so only
    # their base key tells a replay from a new session
    directory.devices[BOB][BOB_DEV].one_time.clear()
    _, first, _ = await alice.prepare(bob_contact(alice), "first")
    message = envelope(first, ALICE, ALICE_DEV, BOB_DEV)
    assert bob.receive(message).stored
    # Alice starts over six times: more than Bob keeps archived sessions of hers
    for turn in range(6):
        alice.store.sessions.delete(BOB, BOB_DEV)
        _, again, _ = await alice.prepare(bob_contact(alice), f"again {turn}")
        assert bob.receive(envelope(again, ALICE, ALICE_DEV, BOB_DEV)).stored
    # and Bob restarts
    path = bob.store.path.parent
    bob.store.close()
    bob = Engine(
        Store.open(path, keyring=None, allow_plaintext=True), directory.fetch, clock=lambda: 3000.0
    )
    assert all(
        not s.started_by(unb64(message.body)) for _, s in bob.store.sessions.old(ALICE, ALICE_DEV)
    )
    before = snapshot(bob, ALICE)
    replay = IncomingMessage(**{**message.__dict__, "client_id": "replayed-first"})
    with caplog.at_level(logging.WARNING, logger="parley"):
        assert not bob.receive(replay).stored
    assert "ReplayError" in caplog.text
    assert snapshot(bob, ALICE) == before
    assert [m.text for m in bob.store.messages.history(ALICE)].count("first") == 1


async def test_a_payload_kind_this_client_does_not_know_is_skipped_but_the_session_advances(
    alice: Engine, bob: Engine
) -> None:
    contact = bob_contact(alice)
    _, first, _ = await alice.prepare(contact, "first")
    bob.receive(envelope(first, ALICE, ALICE_DEV, BOB_DEV))
    session = alice.store.sessions.get(BOB, BOB_DEV)
    assert session is not None
    sticker = session.encrypt(json.dumps({"v": 1, "kind": "sticker", "id": 7}).encode())
    alice.store.sessions.save(BOB, BOB_DEV, session, 0.0)
    odd = IncomingMessage("s2", "sticker1", ALICE, ALICE_DEV, base64.b64encode(sticker).decode(), 1)
    result = bob.receive(odd)
    assert result.stored  # authentic: acked, never redelivered
    assert result.events == []
    _, after, _ = await alice.prepare(contact, "after")
    assert bob.receive(envelope(after, ALICE, ALICE_DEV, BOB_DEV)).stored
    assert [m.text for m in bob.store.messages.history(ALICE)] == ["first", "after"]


# --- devices and identities --------------------------------------------------------


async def test_a_mismatch_is_repaired_for_a_new_device_and_a_removed_one(
    tmp_path: Path, alice: Engine, bob: Engine, directory: KeyServer
) -> None:
    _, entry, _ = await alice.prepare(bob_contact(alice), "to both")
    bob2 = await make_engine(tmp_path, directory, BOB, BOB_DEV2)
    # Bob added a device; the server refuses the send naming it missing
    payloads, events = await alice.repair(entry, missing=(BOB_DEV2,), extra=())
    assert payloads is not None
    assert set(payloads) == {BOB_DEV, BOB_DEV2}
    assert payloads[BOB_DEV] == (entry.payloads or {})[BOB_DEV]  # unchanged ciphertext
    # a new device on Bob's signed list, under the same account identity: no warning
    assert [type(e) for e in events] == [DevicesChanged]
    assert isinstance(events[0], DevicesChanged)
    assert (events[0].contact.user_id, events[0].added, events[0].removed) == (BOB, (BOB_DEV2,), ())
    bob_now = alice.store.contacts.get(BOB)
    assert bob_now is not None
    assert not bob_now.identity_changed
    repaired = OutboxEntry(entry.client_id, BOB, payloads)
    assert alice.store.outbox.items()[0].entry == repaired
    got = bob2.receive(envelope(repaired, ALICE, ALICE_DEV, BOB_DEV2))
    assert [e.message.text for e in got.events if isinstance(e, MessageReceived)] == ["to both"]

    # then the first device goes away
    payloads, _ = await alice.repair(repaired, missing=(), extra=(BOB_DEV,))
    assert payloads is not None
    assert set(payloads) == {BOB_DEV2}
    assert set(alice.store.sessions.for_user(BOB)) == {BOB_DEV2}


async def test_repeated_mismatches_give_up(alice: Engine, bob: Engine) -> None:
    _, entry, _ = await alice.prepare(bob_contact(alice), "x")
    ghost = "f" * 16  # the directory never lists it
    results = [await alice.repair(entry, missing=(ghost,), extra=()) for _ in range(4)]
    assert results[-1][0] is None
    failed = alice.failed(entry, "mismatched_devices", "gave up")
    assert failed is not None
    assert failed.message.state is MessageState.FAILED
    assert alice.store.outbox.items() == []


async def test_a_reinstall_warns_that_the_identity_key_changed(
    tmp_path: Path, alice: Engine, bob: Engine, directory: KeyServer
) -> None:
    contact = bob_contact(alice)
    _, entry, _ = await alice.prepare(contact, "before")
    # Bob reinstalls: his number registered again, a new primary signs his lists (a
    # new account identity); the old device is gone
    del directory.devices[BOB][BOB_DEV]
    del directory.signers[BOB], directory.lists[BOB]
    new_bob = await make_engine(tmp_path / "again", directory, BOB, BOB_DEV2)
    _, events = await alice.repair(entry, missing=(BOB_DEV2,), extra=(BOB_DEV,))
    assert [type(e) for e in events] == [IdentityChanged]
    assert isinstance(events[0], IdentityChanged)
    assert events[0].device_id is None  # the account identity itself changed
    flagged = alice.store.contacts.get(BOB)
    assert flagged is not None
    assert flagged.identity_changed
    assert new_bob.store.accounts.get() is not None


async def test_safety_numbers_agree_on_both_sides_and_differ_per_pair(
    alice: Engine, bob: Engine
) -> None:
    _, entry, _ = await alice.prepare(bob_contact(alice), "hi")
    bob.receive(envelope(entry, ALICE, ALICE_DEV, BOB_DEV))
    alice_contact = bob.store.contacts.get(ALICE)
    assert alice_contact is not None
    ours = alice.safety_numbers(bob_contact(alice))[BOB_DEV]
    theirs = bob.safety_numbers(alice_contact)[ALICE_DEV]
    assert ours == theirs
    assert len(ours) == 60
    assert ours.isdigit()


async def test_a_message_to_a_user_without_devices_is_refused_before_storing(
    alice: Engine,
) -> None:
    from parley.errors import ContactNotFound

    nobody = alice.store.contacts.add("e" * 32, "Nobody", None)
    with pytest.raises(ContactNotFound):
        await alice.prepare(nobody, "hello?")
    assert alice.store.messages.history(nobody.user_id) == []
    assert alice.store.outbox.items() == []


async def test_both_sides_starting_a_session_at_once_still_converge(
    alice: Engine, bob: Engine
) -> None:
    bob.store.contacts.add(ALICE, "Alice", None)
    alice_contact = bob.store.contacts.get(ALICE)
    assert alice_contact is not None
    _, from_alice, _ = await alice.prepare(bob_contact(alice), "hi from Alice")
    _, from_bob, _ = await bob.prepare(alice_contact, "hi from Bob")
    assert bob.receive(envelope(from_alice, ALICE, ALICE_DEV, BOB_DEV)).stored
    assert alice.receive(envelope(from_bob, BOB, BOB_DEV, ALICE_DEV)).stored

    # whichever session each side now sends with, the other can open it
    for turn in range(3):
        _, a, _ = await alice.prepare(bob_contact(alice), f"alice {turn}")
        assert bob.receive(envelope(a, ALICE, ALICE_DEV, BOB_DEV)).stored
        _, b, _ = await bob.prepare(alice_contact, f"bob {turn}")
        assert alice.receive(envelope(b, BOB, BOB_DEV, ALICE_DEV)).stored
    assert len(bob.store.messages.history(ALICE)) == 8
    assert len(alice.store.messages.history(BOB)) == 8


# -- this account's other devices ---------------------------------------------------------

ALICE_DEV2 = "a2" * 8


async def test_a_sent_copy_shows_on_the_other_device_as_sent_and_ticks_there(
    tmp_path: Path,
) -> None:
    directory = KeyServer()
    phone = await make_engine(tmp_path, directory, ALICE, ALICE_DEV)
    laptop = await make_engine(tmp_path, directory, ALICE, ALICE_DEV2)
    bob = await make_engine(tmp_path, directory, BOB, BOB_DEV)
    phone.set_own_devices([ALICE_DEV, ALICE_DEV2])
    assert phone.own_devices == {ALICE_DEV2}  # never itself

    message, entry, _ = await phone.prepare(Contact(BOB, "Bob", None), "hello Bob")
    copy, _ = await phone.own_copy(message)

    assert copy is not None
    assert (copy.to, set(copy.payloads or {})) == (ALICE, {ALICE_DEV2})
    assert copy.client_id != entry.client_id
    await laptop.sealer.learn_device(ALICE, ALICE_DEV)  # as Inbound does first
    shown = laptop.receive(envelope(copy, ALICE, ALICE_DEV, ALICE_DEV2))
    (sent,) = shown.events
    assert isinstance(sent, MessageSent)
    assert (sent.message.peer, sent.message.client_id, sent.message.text) == (
        BOB,
        entry.client_id,
        "hello Bob",
    )
    assert sent.message.state is MessageState.SENT
    assert laptop.own_devices == {ALICE_DEV}  # learned from the copy
    bob.receive(envelope(entry, ALICE, ALICE_DEV, BOB_DEV))
    read = IncomingReceipt("r#1", BOB, BOB_DEV, "read", (entry.client_id,), 5)
    laptop.receipt(read)
    copied = laptop.store.messages.get(ALICE, entry.client_id)
    assert copied is not None
    assert copied.state is MessageState.READ


async def test_no_copy_without_other_devices(tmp_path: Path) -> None:
    directory = KeyServer()
    phone = await make_engine(tmp_path, directory, ALICE, ALICE_DEV)
    await make_engine(tmp_path, directory, BOB, BOB_DEV)
    message, _, _ = await phone.prepare(Contact(BOB, "Bob", None), "hello")
    assert await phone.own_copy(message) == (None, [])


def _sealed(engine: Engine, to: str, device: str, plaintext: bytes) -> bytes:
    """`plaintext` through `engine`'s session with `to`/`device` (any document at all)."""
    session = engine.store.sessions.get(to, device)
    assert session is not None
    body = session.encrypt(plaintext)
    engine.store.sessions.save(to, device, session, 2000.0)
    return body


async def test_copies_come_only_from_ones_own_devices_and_they_send_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = KeyServer()
    phone = await make_engine(tmp_path, directory, ALICE, ALICE_DEV)
    laptop = await make_engine(tmp_path, directory, ALICE, ALICE_DEV2)
    carol = await make_engine(tmp_path, directory, CAROL, CAROL_DEV)
    await make_engine(tmp_path, directory, BOB, BOB_DEV)
    # sessions: Carol with Alice's devices, the phone with the laptop
    _, hello, _ = await carol.prepare(Contact(ALICE, "Alice", None), "hi")
    await laptop.sealer.learn_device(ALICE, ALICE_DEV)
    laptop.receive(envelope(hello, CAROL, CAROL_DEV, ALICE_DEV2))
    phone.set_own_devices([ALICE_DEV2])
    first, _, _ = await phone.prepare(Contact(BOB, "Bob", None), "to Bob")
    copy, _ = await phone.own_copy(first)
    assert copy is not None
    laptop.receive(envelope(copy, ALICE, ALICE_DEV, ALICE_DEV2))
    before = snapshot(laptop, BOB)

    forged = payload.encode_sent_copy(payload.SentCopy(BOB, "forged-1", Text("I never said it")))
    plain = payload.encode(Text("a plain message from my own phone"))
    with caplog.at_level(logging.WARNING, logger="parley"):
        # Carol claims to be a copy of what Alice sent Bob
        body = _sealed(carol, ALICE, ALICE_DEV2, forged)
        laptop.receive(IncomingMessage("m#f1", "f1", CAROL, CAROL_DEV, b64(body), 1))
        # the phone sends the laptop something that is not a copy
        body = _sealed(phone, ALICE, ALICE_DEV2, plain)
        laptop.receive(IncomingMessage("m#p1", "p1", ALICE, ALICE_DEV, b64(body), 2))

    assert snapshot(laptop, BOB) == before
    assert laptop.store.messages.get(ALICE, "forged-1") is None
    assert [m.text for m in laptop.store.messages.history(CAROL)] == ["hi"]
    assert laptop.store.messages.history(ALICE) == []
    assert "a copy from another" in caplog.text
    assert "not a copy" in caplog.text


async def test_a_stale_list_of_our_devices_is_dropped_not_retried_on_every_message(
    tmp_path: Path,
) -> None:
    directory = KeyServer()
    phone = await make_engine(tmp_path, directory, ALICE, ALICE_DEV)
    await make_engine(tmp_path, directory, BOB, BOB_DEV)
    phone.set_own_devices([ALICE_DEV2])  # listed, but signed out since: no keys to be had
    message, _, _ = await phone.prepare(Contact(BOB, "Bob", None), "hello")

    assert await phone.own_copy(message) == (None, [])
    assert phone.own_devices == frozenset()


async def test_mismatched_devices_on_a_copy_updates_the_list_of_our_devices(
    tmp_path: Path,
) -> None:
    directory = KeyServer()
    phone = await make_engine(tmp_path, directory, ALICE, ALICE_DEV)
    await make_engine(tmp_path, directory, ALICE, ALICE_DEV2)
    await make_engine(tmp_path, directory, BOB, BOB_DEV)
    phone.set_own_devices([ALICE_DEV2])
    message, _, _ = await phone.prepare(Contact(BOB, "Bob", None), "hello")
    copy, _ = await phone.own_copy(message)
    assert copy is not None
    tablet = await make_engine(tmp_path, directory, ALICE, "a3" * 8)
    del directory.devices[ALICE][ALICE_DEV2]  # the laptop signed out, a tablet signed in

    payloads, _ = await phone.repair(copy, ("a3" * 8,), (ALICE_DEV2,))

    assert payloads is not None
    assert set(payloads) == {"a3" * 8}
    assert phone.own_devices == {"a3" * 8}
    await tablet.sealer.learn_device(ALICE, ALICE_DEV)
    shown = tablet.receive(envelope(replace(copy, payloads=payloads), ALICE, ALICE_DEV, "a3" * 8))
    assert [type(e) for e in shown.events] == [MessageSent]
