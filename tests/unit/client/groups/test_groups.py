"""Group messaging between real engines and stores, without a network.

A small in-memory server stands in for the service: it hands out key bundles
(each fetch claims one one-time prekey per device) and turns an outbox entry
into the envelopes its recipients would get, one per device for a 1:1 send and
one per member device (but the sending one) for a group send.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from parley.answers import parse_group
from parley.conversations import payload
from parley.crypto import IdentityKeyPair
from parley.crypto.sender_keys import SenderKey
from parley.engine import Engine
from parley.errors import ApiError, MessageTooLarge
from parley.groups import NotAGroupMember
from parley.groups.sender_keys import HELD_MAX_AGE_S, HELD_PER_SENDER
from parley.keys import publish_initial_keys
from parley.models import (
    Account,
    Contact,
    Event,
    Group,
    Message,
    MessageReceived,
    MessageState,
    ReceiptUpdate,
)
from parley.protocol import (
    GroupStale,
    IncomingMessage,
    IncomingReceipt,
    OutboxEntry,
    Protocol,
    SendRejected,
)
from parley.store import SCHEMA_VERSION, OwnSenderKey, Store
from tests.unit.client.fakes import KeyServer

ALICE, BOB, CAROL, DAN = "a" * 32, "b" * 32, "c" * 32, "d" * 32
DEVICES = {ALICE: "a1" * 8, BOB: "b1" * 8, CAROL: "c1" * 8, DAN: "d1" * 8}
BOB_DEV2 = "b2" * 8
GID = "0f" * 16
TS = 1_700_000_000_000


@dataclass
class Server(KeyServer):
    """Key bundles and envelopes, as the service would hand them out."""

    groups: dict[str, Group] = field(default_factory=dict)
    _serial: int = 0

    def envelopes(
        self, entry: OutboxEntry, sender: str, sender_device: str
    ) -> dict[tuple[str, str], IncomingMessage]:
        """(recipient, device) -> the `message` event it gets for this send."""
        self._serial += 1
        out: dict[tuple[str, str], IncomingMessage] = {}
        if entry.body is not None:
            group = self.groups[entry.to[2:]]
            for member in group.members:
                for did in self.devices.get(member, {}):
                    if (member, did) != (sender, sender_device):
                        out[member, did] = self._message(entry, sender, sender_device, entry.body)
                        out[member, did] = replace(out[member, did], group=group.group_id)
            return out
        for did, body in (entry.payloads or {}).items():
            out[entry.to, did] = self._message(entry, sender, sender_device, body)
        return out

    def _message(self, entry: OutboxEntry, sender: str, device: str, body: str) -> IncomingMessage:
        return IncomingMessage(
            server_id=f"s{self._serial}",
            client_id=entry.client_id,
            sender=sender,
            sender_device=device,
            body=body,
            ts=TS + self._serial,
        )


class Clock:
    def __init__(self) -> None:
        self.now = 2000.0

    def __call__(self) -> float:
        return self.now


async def make_engine(
    tmp: Path, server: Server, uid: str, did: str | None = None, clock: Clock | None = None
) -> Engine:
    did = did or DEVICES[uid]
    store = Store.open(tmp / f"{uid[:4]}-{did}", keyring=None, allow_plaintext=True)
    store.accounts.save(Account(uid, did, "+1555000" + uid[:4]), IdentityKeyPair.generate())
    await publish_initial_keys(server.uploader(uid, did), store, 1000.0)
    return Engine(store, server.fetch, clock=clock or Clock())


def group_of(*members: str, version: int = 1) -> Group:
    return Group(GID, "Climbing", version, tuple(members), (members[0],), members[0], 1)


def deliver(
    server: Server, sender: Engine, entries: list[OutboxEntry], to: Engine
) -> list[MessageReceived]:
    """Hand `to` everything of `entries` meant for its device; the messages shown."""
    shown: list[MessageReceived] = []
    me = (to.account.user_id, to.account.device_id)
    for entry in entries:
        envelope = server.envelopes(entry, sender.account.user_id, sender.account.device_id)
        if me in envelope:
            shown += [e for e in to.receive(envelope[me]).events if isinstance(e, MessageReceived)]
    return shown


def texts(engine: Engine, group: Group) -> list[str]:
    return [m.text for m in engine.store.messages.history(group.conversation)]


@dataclass
class People:
    server: Server
    alice: Engine
    bob: Engine
    carol: Engine
    dan: Engine
    clock: Clock


@pytest.fixture
async def people(tmp_path: Path) -> People:
    server, clock = Server(), Clock()
    alice, bob, carol, dan = [
        await make_engine(tmp_path, server, uid, clock=clock) for uid in DEVICES
    ]
    return People(server, alice, bob, carol, dan, clock)


def share(people: People, group: Group) -> Group:
    """Everyone's client (and the server) knows the group as it is now."""
    people.server.groups[group.group_id] = group
    for engine in (people.alice, people.bob, people.carol, people.dan):
        if group.is_member(engine.account.user_id):
            engine.store.groups.save(group, 0)
    return group


# --- sender keys handed out -------------------------------------------------------------


async def test_first_group_message_hands_out_the_sender_key_then_every_member_reads_it(
    people: People,
) -> None:
    group = share(people, group_of(ALICE, BOB, CAROL))
    message, entries, _ = await people.alice.prepare_group(group, "Saturday at the crag?")
    *keys, sent = entries
    assert [k.to for k in keys] == [BOB, CAROL]
    assert all(k.payloads and k.body is None for k in keys)
    assert sent.to == f"g:{GID}"
    assert sent.version == 1
    assert sent.payloads is None
    assert sent.after == tuple(k.client_id for k in keys)
    assert sent.frame()["version"] == 1
    assert "payloads" not in sent.frame()
    assert message.group_id == GID
    assert message.state is MessageState.PENDING

    for member in (people.bob, people.carol):
        (shown,) = deliver(people.server, people.alice, entries, member)
        assert shown.message.text == "Saturday at the crag?"
        assert shown.group == group
        assert shown.contact.user_id == ALICE
        assert shown.message.peer == group.conversation
        # the key itself is never shown, not even in the 1:1 conversation
        assert member.store.messages.history(ALICE) == []
        assert texts(member, group) == ["Saturday at the crag?"]

    # the next message needs no key: one ciphertext, nothing to wait for
    _, again, _ = await people.alice.prepare_group(group, "bring the rope")
    (only,) = again
    assert only.after == ()
    assert [e.message.text for e in deliver(people.server, people.alice, again, people.bob)] == [
        "bring the rope"
    ]


async def test_every_member_has_a_key_of_their_own_and_cannot_speak_for_another(
    people: People,
) -> None:
    group = share(people, group_of(ALICE, BOB, CAROL))
    _, from_alice, _ = await people.alice.prepare_group(group, "from Alice")
    _, from_bob, _ = await people.bob.prepare_group(group, "from Bob")
    for entries, sender in ((from_alice, people.alice), (from_bob, people.bob)):
        deliver(people.server, sender, entries, people.carol)
    assert texts(people.carol, group) == ["from Alice", "from Bob"]

    # Bob knows Alice's chain key but not her signing key: what he makes in her
    # name does not open, and the server cannot pass his ciphertext off as hers
    _, forged, _ = await people.bob.prepare_group(group, "I am Alice")
    envelope = people.server.envelopes(forged[-1], ALICE, DEVICES[ALICE])[CAROL, DEVICES[CAROL]]
    assert not people.carol.receive(envelope).events
    assert texts(people.carol, group) == ["from Alice", "from Bob"]


async def test_a_message_before_its_key_is_held_then_shown_when_the_key_arrives(
    people: People,
) -> None:
    group = share(people, group_of(ALICE, BOB))
    _, entries, _ = await people.alice.prepare_group(group, "early")
    *keys, message = entries
    envelope = people.server.envelopes(message, ALICE, DEVICES[ALICE])[BOB, DEVICES[BOB]]

    held = people.bob.receive(envelope)
    assert not held.stored
    assert held.events == []
    assert people.bob.receive(envelope).events == []  # a second copy is held once
    assert len(people.bob.store.sender_keys.held(GID)) == 1
    assert texts(people.bob, group) == []

    shown = deliver(people.server, people.alice, keys, people.bob)
    assert [e.message.text for e in shown] == ["early"]
    assert people.bob.store.sender_keys.held(GID) == []
    assert texts(people.bob, group) == ["early"]


async def test_held_messages_whose_key_never_comes_are_dropped_with_a_warning(
    people: People, caplog: pytest.LogCaptureFixture
) -> None:
    group = share(people, group_of(ALICE, BOB))
    _, entries, _ = await people.alice.prepare_group(group, "lost key")
    envelope = people.server.envelopes(entries[-1], ALICE, DEVICES[ALICE])[BOB, DEVICES[BOB]]
    people.bob.receive(envelope)
    people.clock.now += HELD_MAX_AGE_S + 1
    with caplog.at_level(logging.WARNING, logger="parley"):
        people.bob.sender_keys.prune()
    assert people.bob.store.sender_keys.held() == []
    assert "never arrived" in caplog.text

    # and no sender device can make us hold more than the bound
    for n in range(HELD_PER_SENDER + 5):
        _, more, _ = await people.alice.prepare_group(group, f"m{n}")
        people.bob.receive(
            people.server.envelopes(more[-1], ALICE, DEVICES[ALICE])[BOB, DEVICES[BOB]]
        )
    held = people.bob.store.sender_keys.held(GID, ALICE, DEVICES[ALICE])
    assert len(held) == HELD_PER_SENDER


# --- membership changes -----------------------------------------------------------------


async def test_a_membership_change_rotates_the_key_removed_cannot_read_on_added_cannot_read_back(
    people: People,
) -> None:
    before = share(people, group_of(ALICE, BOB, CAROL))
    _, first, _ = await people.alice.prepare_group(before, "before the change")
    for member in (people.bob, people.carol):
        deliver(people.server, people.alice, first, member)
    old_key = people.alice.store.sender_keys.own(GID)
    assert old_key is not None

    after = share(people, group_of(ALICE, BOB, DAN, version=2))  # Carol out, Dan in
    _, second, _ = await people.alice.prepare_group(after, "after the change")
    new_key = people.alice.store.sender_keys.own(GID)
    assert new_key is not None
    assert new_key.version == 2
    assert new_key.key.key_id != old_key.key.key_id
    *keys, message = second
    assert sorted(k.to for k in keys) == [BOB, DAN]  # never to Carol

    assert [e.message.text for e in deliver(people.server, people.alice, second, people.bob)] == [
        "after the change"
    ]
    assert [e.message.text for e in deliver(people.server, people.alice, second, people.dan)] == [
        "after the change"
    ]
    # Carol is handed the ciphertext anyway (say, by the server): she has no key for it
    stolen = replace(
        people.server.envelopes(message, ALICE, DEVICES[ALICE])[BOB, DEVICES[BOB]],
        server_id="leak",
    )
    assert people.carol.receive(stolen).events == []
    assert texts(people.carol, before) == ["before the change"]
    # Dan is handed what was said before he joined: it never opens
    old = people.server.envelopes(first[-1], ALICE, DEVICES[ALICE])[BOB, DEVICES[BOB]]
    assert people.dan.receive(replace(old, server_id="old")).events == []
    assert texts(people.dan, after) == ["after the change"]


async def test_a_stale_group_send_rotates_and_goes_again_with_the_same_client_id(
    people: People,
) -> None:
    share(people, group_of(ALICE, BOB, CAROL))
    bob_view = people.bob.store.groups.get(GID)
    assert bob_view is not None
    _, entries, _ = await people.bob.prepare_group(bob_view, "who is in?")
    proto = Protocol(clock=lambda: 0.0)
    proto.connection_made()
    proto.data_to_send()
    for entry in entries:
        proto.send(entry)
    frames = [json.loads("".join(f)) for f in proto.data_to_send()]
    # the keys go first; the message waits until the server has stored them
    assert [f["to"] for f in frames] == [ALICE, CAROL]
    for key in entries[:-1]:
        proto.receive_data(json.dumps({"event": "sent", "id": key.client_id, "ts": 1}))
    (group_frame,) = [json.loads("".join(f)) for f in proto.data_to_send()]
    assert group_frame["id"] == entries[-1].client_id
    assert group_frame["version"] == 1

    # meanwhile Alice removed Carol: the server refuses the send as stale
    now = share(people, group_of(ALICE, BOB, version=2))
    proto.receive_data(
        json.dumps(
            {
                "event": "error",
                "ref": group_frame["id"],
                "code": "stale_group",
                "message": "the group changed",
                "version": 2,
            }
        )
    )
    (stale,) = [e for e in proto.events_received() if isinstance(e, GroupStale)]
    assert stale.version == 2
    resend, _ = await people.bob.regroup(stale.entry, now)
    assert resend is not None
    assert resend.version == 2
    assert [d.to for d in resend.distributions] == [ALICE]  # not to Carol
    for key in resend.distributions:
        proto.send(key)
    proto.replace_group_body(
        stale.entry.client_id,
        resend.body,
        resend.version,
        [d.client_id for d in resend.distributions],
    )
    assert [json.loads("".join(f))["to"] for f in proto.data_to_send()] == [ALICE]
    proto.receive_data(
        json.dumps({"event": "sent", "id": resend.distributions[0].client_id, "ts": 2})
    )
    (again,) = [json.loads("".join(f)) for f in proto.data_to_send()]
    assert again["id"] == group_frame["id"]  # the same client id: never shown twice
    assert again["version"] == 2
    assert again["body"] != group_frame["body"]

    # Alice reads the resent message; Carol, handed it, cannot
    resent = OutboxEntry(again["id"], again["to"], body=again["body"], version=2)
    people.server.groups[GID] = group_of(ALICE, BOB, CAROL)  # so the fake server copies it
    outbox = [*entries[:-1], *resend.distributions, resent]
    assert [e.message.text for e in deliver(people.server, people.bob, outbox, people.alice)] == [
        "who is in?"
    ]
    assert deliver(people.server, people.bob, [resent], people.carol) == []
    stored = people.bob.store.outbox.items()
    assert [i.entry.version for i in stored if i.entry.body] == [2]


async def test_regroup_gives_up_when_no_longer_a_member_and_sending_refuses_up_front(
    people: People,
) -> None:
    group = share(people, group_of(ALICE, BOB))
    _, entries, _ = await people.bob.prepare_group(group, "hello?")
    gone = group_of(ALICE, version=2)
    resend, _ = await people.bob.regroup(entries[-1], gone)
    assert resend is None
    with pytest.raises(NotAGroupMember):
        await people.bob.prepare_group(gone, "anyone?")
    with pytest.raises(NotAGroupMember):
        await people.bob.prepare_group(replace(group, active=False), "anyone?")


async def test_a_new_device_of_a_member_gets_our_key_with_the_next_message(
    people: People, tmp_path: Path
) -> None:
    group = share(people, group_of(ALICE, BOB))
    _, first, _ = await people.alice.prepare_group(group, "one")
    deliver(people.server, people.alice, first, people.bob)
    bob2 = await make_engine(tmp_path, people.server, BOB, BOB_DEV2, people.clock)
    # Alice's next 1:1 send to Bob is refused for the new device and repaired
    contact = people.alice.store.contacts.get(BOB)
    assert contact is not None
    _, direct, _ = await people.alice.prepare(contact, "new phone?")
    payloads, _ = await people.alice.repair(direct, (BOB_DEV2,), ())
    assert payloads is not None
    assert set(payloads) == {DEVICES[BOB], BOB_DEV2}

    _, second, _ = await people.alice.prepare_group(group, "two")
    *keys, _ = second
    assert [set(k.payloads or {}) for k in keys] == [{DEVICES[BOB], BOB_DEV2}]
    assert [e.message.text for e in deliver(people.server, people.alice, second, bob2)] == ["two"]


# --- ticks -----------------------------------------------------------------------------------


async def test_group_ticks_are_delivered_when_every_member_device_acked_and_read_when_all_read(
    people: People,
) -> None:
    group = share(people, group_of(ALICE, BOB, CAROL))
    message, entries, _ = await people.alice.prepare_group(group, "tick tock")
    for entry in entries:
        people.alice.sent(entry, TS)

    def stored() -> Message:
        found = people.alice.store.messages.by_id(message.id)
        assert found is not None
        return found

    assert stored().state is MessageState.SENT

    def receipt(who: str, status: str, n: int) -> list[Event]:
        return people.alice.receipt(
            IncomingReceipt(f"r{n}", who, DEVICES[who], status, (message.client_id,), TS + n)
        )

    assert receipt(BOB, "delivered", 1) == []  # Carol's device has not acked yet
    (delivered,) = receipt(CAROL, "delivered", 2)
    assert isinstance(delivered, ReceiptUpdate)
    assert delivered.state is MessageState.DELIVERED
    assert delivered.group == group
    assert receipt(CAROL, "read", 3) == []
    (read,) = receipt(BOB, "read", 4)
    assert isinstance(read, ReceiptUpdate)
    assert read.state is MessageState.READ

    assert stored().state is MessageState.READ
    detail = {m.user_id: m for m in people.alice.ticks.ticks(stored())}
    assert set(detail) == {BOB, CAROL}
    assert detail[BOB].delivered_to == {DEVICES[BOB]}
    assert detail[BOB].read_at == TS + 4
    assert detail[CAROL].tick == "read"
    assert detail[CAROL].delivered_at == TS + 2
    # someone outside the group cannot tick it
    assert receipt(DAN, "read", 5) == []


async def test_a_member_who_leaves_no_longer_holds_the_ticks_back(people: People) -> None:
    group = share(people, group_of(ALICE, BOB, CAROL))
    message, entries, _ = await people.alice.prepare_group(group, "anyone there?")
    for entry in entries:
        people.alice.sent(entry, TS)
    people.alice.receipt(
        IncomingReceipt("r1", BOB, DEVICES[BOB], "read", (message.client_id,), TS + 1)
    )
    assert people.alice.store.messages.history(group.conversation)[-1].state is MessageState.SENT

    after = group_of(ALICE, BOB, version=2)  # Carol left without ever acking
    with people.alice.store.transaction():
        (update,) = people.alice.ticks.members_gone(after, [CAROL])
    assert update.state is MessageState.READ
    assert [m.client_id for m in update.messages] == [message.client_id]
    assert people.alice.store.messages.history(group.conversation)[-1].state is MessageState.READ
    with people.alice.store.transaction():
        assert people.alice.ticks.members_gone(after, [CAROL]) == []


async def test_reading_a_group_tells_each_sender_what_of_theirs_was_read(people: People) -> None:
    group = share(people, group_of(ALICE, BOB, CAROL))
    for sender, text in ((people.alice, "a"), (people.bob, "b"), (people.alice, "c")):
        _, entries, _ = await sender.prepare_group(group, text)
        deliver(people.server, sender, entries, people.carol)
    read = people.carol.mark_group_read(group)
    assert {s: [m.text for m in ms] for s, ms in read.items()} == {ALICE: ["a", "c"], BOB: ["b"]}
    assert people.carol.mark_group_read(group) == {}


# --- what the server (or anyone) sends cannot crash us -------------------------------------


async def test_bad_group_input_from_the_server_is_dropped_and_nothing_crashes(
    people: People, caplog: pytest.LogCaptureFixture
) -> None:
    group = share(people, group_of(ALICE, BOB))
    _, entries, _ = await people.alice.prepare_group(group, "real")
    deliver(people.server, people.alice, entries[:-1], people.bob)  # Bob has Alice's key
    real = people.server.envelopes(entries[-1], ALICE, DEVICES[ALICE])[BOB, DEVICES[BOB]]
    raw = base64.b64decode(real.body)
    tampered = bytearray(raw)
    tampered[20] ^= 1
    junk = [
        replace(real, body="***"),
        replace(real, body=base64.b64encode(b"\x01\x03short").decode()),
        replace(real, body=base64.b64encode(bytes(tampered)).decode()),
        replace(real, body=base64.b64encode(b"\x09" + raw[1:]).decode()),
        replace(real, sender=BOB, sender_device=DEVICES[BOB]),  # "from" this very account
    ]
    with caplog.at_level(logging.WARNING):
        for bad in junk:
            outcome = people.bob.receive(bad)
            assert not outcome.stored
            assert outcome.events == []
    assert texts(people.bob, group) == []
    (shown,) = people.bob.receive(real).events
    assert isinstance(shown, MessageReceived)
    assert shown.message.text == "real"
    assert people.bob.receive(replace(real, server_id="again")).events == []  # a replay

    # sender-key payloads that are not one: stored (the session moved) and ignored
    contact = people.alice.store.contacts.get(BOB)
    assert contact is not None
    for doc in [
        {"v": 1, "kind": "sender_key", "group": "nope", "version": 1, "key": "AAAA"},
        {"v": 1, "kind": "sender_key", "group": GID, "version": 0, "key": "AAAA"},
        {"v": 1, "kind": "sender_key", "group": GID, "version": True, "key": "AAAA"},
        {"v": 1, "kind": "sender_key", "group": GID, "version": 1, "key": "***"},
        {"v": 1, "kind": "sender_key", "group": GID, "version": 1, "key": "AAAA", "x": 1},
        {"v": 1, "kind": "sender_key", "group": GID, "version": 1, "key": "AAAA"},
    ]:
        entry = await _direct(people.alice, contact, json.dumps(doc).encode())
        outcome = people.bob.receive(
            people.server.envelopes(entry, ALICE, DEVICES[ALICE])[BOB, DEVICES[BOB]]
        )
        assert outcome.stored
        assert outcome.events == []
    record = people.bob.store.sender_keys.record(GID, ALICE, DEVICES[ALICE])
    assert record is not None
    assert len(record.key_ids) == 1
    assert people.bob.store.messages.history(ALICE) == []


async def test_a_key_for_a_group_we_do_not_know_asks_for_the_group_and_opens_its_messages(
    people: People,
) -> None:
    other = "1e" * 16
    group = Group(other, "Surprise", 3, (ALICE, BOB), (ALICE,))
    people.server.groups[other] = group
    people.alice.store.groups.save(group, 0)
    _, entries, _ = await people.alice.prepare_group(group, "you are in")
    *keys, message = entries
    envelope = people.server.envelopes(keys[0], ALICE, DEVICES[ALICE])[BOB, DEVICES[BOB]]
    outcome = people.bob.receive(envelope)
    assert outcome.refresh_groups == {other}
    assert people.bob.store.groups.stale() == [other]
    assert people.bob.store.groups.all() == []  # a placeholder, not listed until read
    shown = deliver(people.server, people.alice, [message], people.bob)
    assert [e.message.text for e in shown] == ["you are in"]
    # once the group is read from the service, it is current
    people.bob.store.groups.save(group, 1)
    assert people.bob.store.groups.stale() == []
    assert people.bob.store.groups.all() == [group]


async def test_a_key_from_a_group_we_had_left_or_that_moved_on_asks_for_the_group_again(
    people: People,
) -> None:
    group = share(people, group_of(ALICE, BOB))
    people.bob.store.groups.leave(GID)  # Bob left; now Alice added him back (version 3)
    back = share(people, group_of(ALICE, BOB, version=3))
    people.bob.store.groups.leave(GID)
    assert people.bob.store.groups.stale() == []
    _, entries, _ = await people.alice.prepare_group(back, "welcome back")
    envelope = people.server.envelopes(entries[0], ALICE, DEVICES[ALICE])[BOB, DEVICES[BOB]]
    assert people.bob.receive(envelope).refresh_groups == {GID}
    assert people.bob.store.groups.stale() == [GID]  # asked again at the next sync if need be
    people.bob.store.groups.save(back, 1)
    assert people.bob.store.groups.stale() == []
    assert texts(people.bob, group) == []
    assert [
        e.message.text for e in deliver(people.server, people.alice, entries[-1:], people.bob)
    ] == ["welcome back"]


async def _direct(engine: Engine, contact: Contact, plaintext: bytes) -> OutboxEntry:
    """A 1:1 message with a raw plaintext (what a misbehaving client could send)."""
    await engine.ensure_sessions(contact)
    sessions = engine.store.sessions.for_user(contact.user_id)
    entry = OutboxEntry(
        "raw" + str(len(plaintext)) + plaintext[-12:].hex(),
        contact.user_id,
        {d: base64.b64encode(s.encrypt(plaintext)).decode() for d, s in sessions.items()},
    )
    for did, session in sessions.items():
        engine.store.sessions.save(contact.user_id, did, session, 0)
    return entry


async def test_a_group_message_too_large_is_refused_before_anything_is_stored(
    people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = share(people, group_of(ALICE, BOB))
    # every content kind fits a sender-key message today; the bound still holds
    monkeypatch.setattr("parley.groups.sending.MAX_GROUP_PLAINTEXT_LEN", 40)
    with pytest.raises(MessageTooLarge):
        await people.alice.prepare_group(group, "x" * 41)
    assert people.alice.store.outbox.items() == []
    assert texts(people.alice, group) == []


# --- the wire and the store ------------------------------------------------------------------


def test_the_protocol_holds_an_entry_until_what_it_waits_for_is_answered() -> None:
    proto = Protocol(clock=lambda: 0.0)
    proto.connection_made()
    proto.data_to_send()
    proto.send(OutboxEntry("k1", BOB, {DEVICES[BOB]: "a2V5"}))
    proto.send(OutboxEntry("g1", f"g:{GID}", body="Ym9keQ==", version=4, after=("k1",)))
    assert [json.loads(f[0])["id"] for f in proto.data_to_send()] == ["k1"]
    proto.receive_data(
        json.dumps({"event": "error", "ref": "k1", "code": "unknown_user", "message": "x"})
    )
    assert isinstance(proto.events_received()[0], SendRejected)
    # a key that could not go does not hold the message back for ever
    (frame,) = [json.loads(f[0]) for f in proto.data_to_send()]
    assert frame == {
        "action": "send",
        "id": "g1",
        "to": f"g:{GID}",
        "body": "Ym9keQ==",
        "version": 4,
    }
    proto.receive_data(json.dumps({"event": "error", "ref": "g1", "code": "stale_group"}))
    (refused,) = proto.events_received()
    assert isinstance(refused, SendRejected)
    assert refused.code == "stale_group"
    assert proto.pending() == []


def test_a_stale_answer_to_a_one_to_one_send_is_a_plain_refusal() -> None:
    proto = Protocol(clock=lambda: 0.0)
    proto.connection_made()
    proto.send(OutboxEntry("m1", BOB, {DEVICES[BOB]: "eA=="}))
    proto.receive_data(
        json.dumps({"event": "error", "ref": "m1", "code": "stale_group", "version": 3})
    )
    (event,) = proto.events_received()
    assert isinstance(event, SendRejected)


def test_group_outbox_entries_survive_a_restart(tmp_path: Path) -> None:
    store = Store.open(tmp_path, keyring=None, allow_plaintext=True)
    group_entry = OutboxEntry("g1", f"g:{GID}", body="Ym9keQ==", version=2, after=("k1", "k2"))
    store.outbox.add(OutboxEntry("k1", BOB, {DEVICES[BOB]: "a2V5"}), b"key", 1)
    store.outbox.add(group_entry, b"text", 2)
    store.outbox.update_group("g1", "bmV3", 3, ("k1",))
    store.close()
    items = Store.open(tmp_path, keyring=None, allow_plaintext=True).outbox.items()
    assert [i.entry for i in items] == [
        OutboxEntry("k1", BOB, {DEVICES[BOB]: "a2V5"}),
        OutboxEntry("g1", f"g:{GID}", body="bmV3", version=3, after=("k1",)),
    ]


def test_a_store_from_before_groups_is_upgraded_and_keeps_its_outbox(tmp_path: Path) -> None:
    store = Store.open(tmp_path, keyring=None, allow_plaintext=True)
    store.outbox.add(OutboxEntry("m1", BOB, {DEVICES[BOB]: "eA=="}), b"hi", 1)
    store.close()
    with sqlite3.connect(tmp_path / "parley.db") as db:
        for column in ("body", "version", "after"):
            db.execute(f"ALTER TABLE outbox DROP COLUMN {column}")
        for table in ("groups", "own_sender_keys", "sender_keys", "held_group_messages"):
            db.execute(f"DROP TABLE {table}")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.close()
    store = Store.open(tmp_path, keyring=None, allow_plaintext=True)
    assert [i.entry for i in store.outbox.items()] == [
        OutboxEntry("m1", BOB, {DEVICES[BOB]: "eA=="})
    ]
    store.groups.save(group_of(ALICE, BOB), 0)
    assert store.groups.all() == [group_of(ALICE, BOB)]
    version = store._db.conn.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'"
    ).fetchone()
    assert version == (str(SCHEMA_VERSION),)


def test_sender_keys_are_sealed_at_rest(tmp_path: Path) -> None:
    store = Store.open(tmp_path, passphrase="correct horse", kdf_limits=(1, 8192))
    store.accounts.save(Account(BOB, DEVICES[BOB], "+15550000002"), IdentityKeyPair.generate())
    key = SenderKey.generate()
    store.sender_keys.save_own(GID, OwnSenderKey(key, 1, frozenset({ALICE})), 0)
    store.close()
    raw = (tmp_path / "parley.db").read_bytes()
    assert key.to_bytes()[9:41] not in raw  # the chain key
    reopened = Store.open(tmp_path, passphrase="correct horse", kdf_limits=(1, 8192))
    own = reopened.sender_keys.own(GID)
    assert own is not None
    assert own.key.to_bytes() == key.to_bytes()


def test_group_answers_from_the_service_are_checked() -> None:
    good = {
        "group_id": GID,
        "name": "Climbing",
        "version": 2,
        "members": [ALICE, BOB],
        "admins": [ALICE],
        "created_by": ALICE,
        "created_at": 1,
    }
    assert parse_group(good) == Group(GID, "Climbing", 2, (ALICE, BOB), (ALICE,), ALICE, 1)
    bad: object
    for bad in (
        [],
        {**good, "group_id": "g:" + GID},
        {**good, "version": 0},
        {**good, "version": "2"},
        {**good, "members": [ALICE, "bob"]},
        {**good, "admins": [CAROL]},
        {**good, "name": ""},
        {k: v for k, v in good.items() if k != "members"},
    ):
        with pytest.raises(ApiError) as caught:
            parse_group(bad)
        assert caught.value.code == "bad_answer"
    with pytest.raises(ApiError):
        parse_group(good, group_id="1e" * 16)  # not the group asked for


def test_sender_key_payloads_round_trip_and_never_pass_as_content() -> None:
    key = payload.SenderKeyPayload(GID, 3, bytes(74))
    encoded = payload.encode_sender_key(key)
    assert payload.decode_any(encoded) == key
    with pytest.raises(payload.UnsupportedContent):
        payload.decode(encoded)
    assert payload.decode_any(payload.encode_text("hi")) == payload.decode(
        payload.encode_text("hi")
    )
