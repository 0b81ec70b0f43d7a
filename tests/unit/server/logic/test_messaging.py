"""The messaging use cases over the real stores (moto) with a scripted @connections
gateway and push notifier, so every delivery outcome can be chosen."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest

from parley_server.config import Limits
from parley_server.logic import connections as lifecycle
from parley_server.logic import messaging, receipts
from parley_server.logic.ports import Caller
from parley_server.models.errors import (
    BadRequest,
    DependencyUnavailable,
    MismatchedDevices,
    NotFound,
    PayloadTooLarge,
    RateLimited,
)
from parley_server.models.frames import (
    BATCH_BYTES,
    CONNECTING_S,
    AckFrame,
    PostOutcome,
    ReceiptFrame,
    SyncFrame,
    decode_cursor,
    event_bytes,
    parse_send,
    parse_typing,
)
from parley_server.store.mailbox import Mailbox
from tests.conftest import FakeAws
from tests.unit.conftest import Device, Ports

NOW = 1_800_000_000.0
LIMITS = Limits()


class World(Ports):
    def user(self, *devices: Device) -> tuple[str, list[Device]]:
        user_id = secrets.token_hex(16)
        found = list(devices) or [Device(secrets.token_hex(8))]
        self.directory.users[user_id] = found
        return user_id, found

    def online(
        self, user_id: str, device: Device, *, since: float = NOW, batch: bool = False
    ) -> Caller:
        """The device connected (`batch`: dialled with batch=1, as the SDK does)."""
        caller = Caller(user_id, device.device_id, secrets.token_hex(6) + "=")
        self.call(lifecycle.connect, caller, now=since, limits=LIMITS, batch=batch)
        return caller

    def online_user(self) -> tuple[Caller, Device]:
        """A user with one device, connected: the caller and the device."""
        user_id, (device,) = self.user()
        return self.online(user_id, device), device

    def send(
        self,
        caller: Caller,
        to: str,
        payloads: dict[str, bytes],
        *,
        client_id: str = "c1",
        now: float = NOW,
        limits: Limits = LIMITS,
        ttl: int | None = None,
        **flags: bool,
    ) -> messaging.SendOutcome:
        raw: dict[str, Any] = {
            "id": client_id,
            "to": to,
            "payloads": {d: base64.b64encode(p).decode() for d, p in payloads.items()},
            **flags,
        }
        if ttl is not None:
            raw["ttl"] = ttl
        frame = parse_send(raw, max_payload_bytes=limits.max_payload_bytes)
        return self.call(messaging.send, frame, caller, now=now, limits=limits)

    def ack(
        self,
        caller: Caller,
        ids: list[str],
        now: float = NOW,
        *,
        delivered: list[str] | None = None,
    ) -> receipts.AckOutcome:
        """Ack `ids`, ticking `delivered` (default: all of them, as for people one knows)."""
        frame = AckFrame.parse({"ids": ids, "delivered": ids if delivered is None else delivered})
        return self.call(receipts.ack, frame, caller, now=now, limits=LIMITS)

    def sync(
        self,
        caller: Caller,
        after: str | None = None,
        *,
        page_size: int = 100,
        now: float = NOW,
        batch: bool = False,
    ) -> messaging.SyncOutcome:
        frame = SyncFrame.parse({"after": after, "batch": batch})
        return self.call(messaging.sync, frame, caller, now=now, page_size=page_size)

    def posts(self, caller: Caller) -> list[dict[str, Any]]:
        """What was posted to the caller's connection, one entry a post."""
        return self.gateway.posted.get(caller.connection_id, [])

    def events(self, caller: Caller, kind: str | None = None) -> list[dict[str, Any]]:
        """The events posted to the caller, in order, as a client reads them (a batch's
        events one by one)."""
        got = [
            event
            for post in self.posts(caller)
            for event in (post["events"] if post["event"] == "batch" else [post])
        ]
        return [e for e in got if kind is None or e["event"] == kind]


@pytest.fixture
def world(aws: FakeAws) -> World:
    return World(aws)


def offline(user_id: str, device: Device) -> Caller:
    return Caller(user_id, device.device_id, "never-connected=")


# -- send -----------------------------------------------------------------------------


def test_send_to_an_online_device_delivers_before_answering_sent(world: World) -> None:
    (alice, alice_dev), (bob, bob_dev) = world.online_user(), world.online_user()
    alice_id, bob_id = alice.user_id, bob.user_id

    outcome = world.send(alice, bob_id, {bob_dev.device_id: b"hello"})

    assert outcome.event == {"event": "sent", "id": "c1", "ts": int(NOW * 1000)}
    (message,) = world.events(bob, "message")
    assert message["from"] == alice_id
    assert message["from_device"] == alice_dev.device_id
    assert base64.b64decode(message["body"]) == b"hello"
    assert (outcome.stored, outcome.delivered, outcome.pushed) == (1, 1, 0)
    assert world.pusher.woken == []


def test_a_disappearing_message_is_kept_no_longer_than_its_timer(world: World) -> None:
    alice, _ = world.online_user()
    bob_id, (bob_dev,) = world.user()
    day = 24 * 3600

    world.send(alice, bob_id, {bob_dev.device_id: b"soon gone"}, client_id="d1", ttl=day)
    world.send(alice, bob_id, {bob_dev.device_id: b"for a year"}, client_id="y1", ttl=10**7)
    world.send(alice, bob_id, {bob_dev.device_id: b"plain"}, client_id="p1")

    def kept(now: float) -> list[str]:
        page = world.mailbox.page(bob_id, bob_dev.device_id, after=None, limit=9, now=now)
        return sorted(e.client_id for e in page.envelopes)

    assert kept(NOW + day - 1) == ["d1", "p1", "y1"]
    # an offline device that syncs after the timer never gets the message
    assert kept(NOW + day) == ["p1", "y1"]
    # nothing is kept past the mailbox's 30 days, whatever the send asked for
    assert kept(NOW + LIMITS.mailbox_ttl_s) == []


def test_send_to_two_devices_gives_each_its_own_ciphertext(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    phone, laptop = Device(secrets.token_hex(8)), Device(secrets.token_hex(8))
    bob_id, _ = world.user(phone, laptop)
    on_phone, on_laptop = world.online(bob_id, phone), world.online(bob_id, laptop)

    world.send(
        world.online(alice_id, alice_dev), bob_id, {phone.device_id: b"P", laptop.device_id: b"L"}
    )

    assert [base64.b64decode(e["body"]) for e in world.events(on_phone)] == [b"P"]
    assert [base64.b64decode(e["body"]) for e in world.events(on_laptop)] == [b"L"]


def test_send_to_an_offline_device_with_push_wakes_it_and_the_envelope_waits(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    bob_dev = Device(secrets.token_hex(8), "fcm", "arn:aws:sns:us-east-1:1:endpoint/GCM/app/x")
    bob_id, _ = world.user(bob_dev)

    outcome = world.send(world.online(alice_id, alice_dev), bob_id, {bob_dev.device_id: b"hi"})

    assert (outcome.delivered, outcome.pushed) == (0, 1)
    assert world.pusher.woken == [bob_dev.device_id]
    bob = world.online(bob_id, bob_dev)
    world.sync(bob)
    assert [e["client_id"] for e in world.events(bob, "message")] == ["c1"]


def test_only_the_offline_device_of_a_recipient_is_pushed(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    push = "arn:aws:sns:us-east-1:1:endpoint/GCM/app/"
    phone, tablet = (
        Device(secrets.token_hex(8), "fcm", push + "p"),
        Device(secrets.token_hex(8), "fcm", push + "t"),
    )
    bob_id, _ = world.user(phone, tablet)
    world.online(bob_id, phone)

    world.send(
        world.online(alice_id, alice_dev), bob_id, {phone.device_id: b"1", tablet.device_id: b"2"}
    )

    assert world.pusher.woken == [tablet.device_id]


# -- ephemeral and ringing sends (call signalling) ------------------------------------

PUSHABLE = "arn:aws:sns:us-east-1:1:endpoint/GCM/app/"


def test_an_ephemeral_send_wakes_no_offline_phone_and_lives_only_its_ttl(world: World) -> None:
    alice, _ = world.online_user()
    phone = Device(secrets.token_hex(8), "fcm", PUSHABLE + "p")
    bob_id, _ = world.user(phone)

    outcome = world.send(alice, bob_id, {phone.device_id: b"ice"}, ttl=30, ephemeral=True)

    assert (outcome.stored, outcome.delivered, outcome.pushed, outcome.call_pushes) == (1, 0, 0, 0)
    assert world.pusher.woken == []
    assert world.pusher.rung == []
    (waiting,) = world.mailbox.page(bob_id, phone.device_id, after=None, limit=9, now=NOW).envelopes
    assert waiting.expires_at == int(NOW) + 30
    assert (
        world.mailbox.page(bob_id, phone.device_id, after=None, limit=9, now=NOW + 30).envelopes
        == []
    )


def test_a_ringing_send_rings_an_offline_phone_with_a_call_push_as_long_as_it_lives(
    world: World,
) -> None:
    alice, _ = world.online_user()
    phone = Device(secrets.token_hex(8), "apns", PUSHABLE + "p")
    bob_id, _ = world.user(phone)

    outcome = world.send(
        alice, bob_id, {phone.device_id: b"offer"}, ttl=45, ephemeral=True, ring=True
    )

    assert (outcome.pushed, outcome.call_pushes) == (1, 1)
    assert world.pusher.rung == [(phone.device_id, 45)]
    assert world.pusher.woken == []  # a call push, never a wake-up
    (waiting,) = world.mailbox.page(bob_id, phone.device_id, after=None, limit=9, now=NOW).envelopes
    assert waiting.expires_at == int(NOW) + 45
    # the phone that answers the push syncs the offer within its ttl
    bob = world.online(bob_id, phone, since=NOW + 10)
    world.sync(bob, now=NOW + 10)
    assert [base64.b64decode(e["body"]) for e in world.events(bob, "message")] == [b"offer"]


def test_a_ringing_send_reaches_live_devices_at_once_and_rings_only_the_others(
    world: World,
) -> None:
    alice, _ = world.online_user()
    laptop = Device(secrets.token_hex(8), "fcm", PUSHABLE + "l")
    phone = Device(secrets.token_hex(8), "fcm", PUSHABLE + "p")
    tablet = Device(secrets.token_hex(8))  # no push token: nothing to ring
    bob_id, _ = world.user(laptop, phone, tablet)
    on_laptop = world.online(bob_id, laptop)

    outcome = world.send(
        alice,
        bob_id,
        {laptop.device_id: b"L", phone.device_id: b"P", tablet.device_id: b"T"},
        ttl=60,
        ephemeral=True,
        ring=True,
    )

    assert [base64.b64decode(e["body"]) for e in world.events(on_laptop, "message")] == [b"L"]
    assert (outcome.stored, outcome.delivered, outcome.pushed, outcome.call_pushes) == (3, 1, 1, 1)
    assert world.pusher.rung == [(phone.device_id, 60)]
    assert world.pusher.woken == []


def test_retried_send_stores_no_second_envelope_and_answers_the_original_time(world: World) -> None:
    (alice, _), (bob, bob_dev) = world.online_user(), world.online_user()
    bob_id = bob.user_id

    first = world.send(alice, bob_id, {bob_dev.device_id: b"once"})
    again = world.send(alice, bob_id, {bob_dev.device_id: b"once"}, now=NOW + 5)

    assert (first.stored, again.stored, again.duplicates) == (1, 0, 1)
    assert again.event == first.event
    page = world.mailbox.page(bob_id, bob_dev.device_id, after=None, limit=10, now=NOW + 5)
    assert len(page.envelopes) == 1
    # the pending original is delivered again (the first attempt may have stopped
    # before delivering); the client drops the copy by (sender, client id)
    assert [e["id"] for e in world.events(bob, "message")] == [page.envelopes[0].server_id] * 2


def test_a_send_after_the_first_was_acked_is_stored_again(world: World) -> None:
    (alice, _), (bob, bob_dev) = world.online_user(), world.online_user()
    bob_id = bob.user_id
    world.send(alice, bob_id, {bob_dev.device_id: b"x"})
    world.ack(bob, [world.events(bob, "message")[0]["id"]])

    assert world.send(alice, bob_id, {bob_dev.device_id: b"x"}, now=NOW + 1).stored == 1


def test_an_expired_envelope_does_not_block_a_send_with_its_id(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    bob_id, (bob_dev,) = world.user()
    alice = world.online(alice_id, alice_dev)
    world.send(alice, bob_id, {bob_dev.device_id: b"old"})
    later = NOW + LIMITS.mailbox_ttl_s + 1

    outcome = world.send(alice, bob_id, {bob_dev.device_id: b"new"}, now=later)

    assert outcome.stored == 1
    (envelope,) = world.mailbox.page(
        bob_id, bob_dev.device_id, after=None, limit=10, now=later
    ).envelopes
    assert envelope.event()["body"] == base64.b64encode(b"new").decode()


def test_payloads_that_miss_or_add_devices_are_refused_naming_them(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    phone, laptop = Device(secrets.token_hex(8)), Device(secrets.token_hex(8))
    bob_id, _ = world.user(phone, laptop)
    stranger = secrets.token_hex(8)

    with pytest.raises(MismatchedDevices) as caught:
        world.send(
            world.online(alice_id, alice_dev), bob_id, {phone.device_id: b"x", stranger: b"y"}
        )

    assert caught.value.to_dict()["missing"] == [laptop.device_id]
    assert caught.value.to_dict()["extra"] == [stranger]
    assert world.mailbox.page(bob_id, phone.device_id, after=None, limit=5, now=NOW).envelopes == []


def test_send_to_a_user_without_devices_is_unknown_user(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    with pytest.raises(NotFound) as caught:
        world.send(world.online(alice_id, alice_dev), "f" * 32, {"0" * 16: b"x"})
    assert caught.value.code == "unknown_user"


def test_group_send_is_not_supported_yet(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    frame = parse_send({"id": "g1", "to": "g:" + "c" * 32, "body": "eA=="}, max_payload_bytes=1024)
    with pytest.raises(BadRequest) as caught:
        world.call(messaging.send, frame, world.online(alice_id, alice_dev), now=NOW, limits=LIMITS)
    assert caught.value.code == "not_supported"


def test_sends_over_the_per_device_rate_are_refused_in_that_second(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    bob_id, (bob_dev,) = world.user()
    alice = world.online(alice_id, alice_dev)
    limits = Limits(send_rate_per_s=3)
    for i in range(3):
        world.send(alice, bob_id, {bob_dev.device_id: b"x"}, client_id=f"c{i}", limits=limits)

    with pytest.raises(RateLimited) as caught:
        world.send(alice, bob_id, {bob_dev.device_id: b"x"}, client_id="c9", limits=limits)

    assert caught.value.retry_after == 1
    pending = world.mailbox.page(bob_id, bob_dev.device_id, after=None, limit=10, now=NOW)
    assert sorted(e.event()["client_id"] for e in pending.envelopes) == ["c0", "c1", "c2"]
    # another device of the same user has its own budget; the next second is fresh
    other = world.online(alice_id, Device(secrets.token_hex(8)))
    world.send(other, bob_id, {bob_dev.device_id: b"x"}, client_id="d0", limits=limits)
    world.send(alice, bob_id, {bob_dev.device_id: b"x"}, client_id="c9", limits=limits, now=NOW + 1)


# -- several messages in one frame (`more`) ---------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def send_many(
    world: World,
    caller: Caller,
    to: str,
    bodies: dict[str, list[bytes]],
    *,
    ids: list[str] | None = None,
    now: float = NOW,
    limits: Limits = LIMITS,
) -> messaging.SendOutcome:
    """One frame carrying a message per position of each device's list of bodies."""
    count = len(next(iter(bodies.values())))
    ids = ids or [f"m{i}" for i in range(count)]
    items = [
        {"id": ids[i], "payloads": {d: _b64(b[i]) for d, b in bodies.items()}} for i in range(count)
    ]
    raw: dict[str, Any] = {"to": to, **items[0]}
    if items[1:]:
        raw["more"] = items[1:]
    frame = parse_send(raw, max_payload_bytes=limits.max_payload_bytes)
    return world.call(messaging.send, frame, caller, now=now, limits=limits)


def test_a_connection_that_reads_batches_gets_a_frames_messages_in_one_post(
    world: World,
) -> None:
    alice, _ = world.online_user()
    phone, laptop = Device(secrets.token_hex(8)), Device(secrets.token_hex(8))
    bob_id, _ = world.user(phone, laptop)
    on_phone = world.online(bob_id, phone, batch=True)
    on_laptop = world.online(bob_id, laptop)  # an older client: an event a post
    bodies = [b"one", b"two", b"three"]

    outcome = send_many(world, alice, bob_id, {phone.device_id: bodies, laptop.device_id: bodies})

    (post,) = world.posts(on_phone)
    assert post["event"] == "batch"
    assert [e["client_id"] for e in post["events"]] == ["m0", "m1", "m2"]
    assert [p["event"] for p in world.posts(on_laptop)] == ["message"] * 3
    assert outcome.delivered == 2


def test_a_batch_post_that_fails_leaves_the_frames_messages_to_the_next_sync(
    world: World,
) -> None:
    alice, _ = world.online_user()
    bob_id, (phone,) = world.user(Device(secrets.token_hex(8), "fcm", PUSHABLE + "p"))
    on_phone = world.online(bob_id, phone, batch=True)
    world.gateway.script[on_phone.connection_id] = [PostOutcome.FAILED]

    outcome = send_many(world, alice, bob_id, {phone.device_id: [b"one", b"two"]})

    assert world.posts(on_phone) == []
    assert world.pusher.woken == [phone.device_id]  # not reached: woken to sync
    assert outcome.delivered == 0
    world.sync(on_phone, batch=True)
    assert [e["client_id"] for e in world.events(on_phone, "message")] == ["m0", "m1"]


def test_a_frame_of_several_messages_stores_posts_and_answers_them_in_order(
    world: World,
) -> None:
    alice, _ = world.online_user()
    phone = Device(secrets.token_hex(8), "fcm", PUSHABLE + "p")
    laptop = Device(secrets.token_hex(8), "fcm", PUSHABLE + "l")
    bob_id, _ = world.user(phone, laptop)
    on_laptop = world.online(bob_id, laptop)
    bodies = [b"one", b"two", b"three"]

    outcome = send_many(
        world,
        alice,
        bob_id,
        {phone.device_id: bodies, laptop.device_id: [b + b"!" for b in bodies]},
        ids=["z", "k", "a"],  # the frame's order, not the ids', decides
    )

    # posted live in the frame's order, each device its own ciphertexts
    live = world.events(on_laptop, "message")
    assert [e["client_id"] for e in live] == ["z", "k", "a"]
    assert [base64.b64decode(e["body"]) for e in live] == [b"one!", b"two!", b"three!"]
    # stored in that order too: the offline phone syncs them as sent
    page = world.mailbox.page(bob_id, phone.device_id, after=None, limit=10, now=NOW)
    assert [e.client_id for e in page.envelopes] == ["z", "k", "a"]
    assert [e.body for e in page.envelopes] == bodies
    # one wake-up for the phone, not one per message
    assert world.pusher.woken == [phone.device_id]
    assert (outcome.stored, outcome.delivered, outcome.pushed, outcome.devices) == (6, 1, 1, 2)
    ts = [e.ts for e in page.envelopes]
    assert outcome.event == {
        "event": "sent",
        "id": "z",
        "ts": ts[0],
        "more": [{"id": "k", "ts": ts[1]}, {"id": "a", "ts": ts[2]}],
    }


def test_a_retried_frame_stores_nothing_twice_and_adds_what_the_first_did_not_store(
    world: World,
) -> None:
    (alice, _), (bob, bob_dev) = world.online_user(), world.online_user()
    dev = bob_dev.device_id
    first = send_many(world, alice, bob.user_id, {dev: [b"a", b"b"]}, ids=["a", "b"])

    # the retry carries one more message: the first two are the pending originals
    again = send_many(
        world, alice, bob.user_id, {dev: [b"a", b"b", b"c"]}, ids=["a", "b", "c"], now=NOW + 5
    )

    assert (again.stored, again.duplicates) == (1, 2)
    assert again.event["ts"] == first.event["ts"]
    assert again.event["more"][0] == first.event["more"][0]
    page = world.mailbox.page(bob.user_id, dev, after=None, limit=10, now=NOW + 5)
    assert [e.client_id for e in page.envelopes] == ["a", "b", "c"]
    # the new message sorts after the originals, though stamped in a later call
    assert page.envelopes[2].ts > page.envelopes[1].ts


def test_a_frame_whose_later_message_misses_a_device_stores_none_of_it(world: World) -> None:
    alice, _ = world.online_user()
    phone, laptop = Device(secrets.token_hex(8)), Device(secrets.token_hex(8))
    bob_id, _ = world.user(phone, laptop)
    p, q = phone.device_id, laptop.device_id
    raw = {
        "id": "m0",
        "to": bob_id,
        "payloads": {p: _b64(b"x"), q: _b64(b"y")},
        "more": [{"id": "m1", "payloads": {p: _b64(b"x")}}],
    }
    frame = parse_send(raw, max_payload_bytes=LIMITS.max_payload_bytes)

    with pytest.raises(MismatchedDevices) as caught:
        world.call(messaging.send, frame, alice, now=NOW, limits=LIMITS)

    assert caught.value.to_dict()["missing"] == [q]
    assert world.mailbox.page(bob_id, p, after=None, limit=5, now=NOW).envelopes == []


def test_each_message_of_a_frame_counts_against_the_send_rate(world: World) -> None:
    alice, _ = world.online_user()
    bob_id, (bob_dev,) = world.user()
    limits = Limits(send_rate_per_s=4)
    send_many(world, alice, bob_id, {bob_dev.device_id: [b"x"] * 3}, limits=limits)

    with pytest.raises(RateLimited):
        send_many(
            world, alice, bob_id, {bob_dev.device_id: [b"y"] * 2}, ids=["n0", "n1"], limits=limits
        )

    page = world.mailbox.page(bob_id, bob_dev.device_id, after=None, limit=10, now=NOW)
    assert [e.client_id for e in page.envelopes] == ["m0", "m1", "m2"]
    # one more fits that second
    send_many(world, alice, bob_id, {bob_dev.device_id: [b"z"]}, ids=["n9"], limits=limits)


def test_a_frame_larger_than_a_seconds_send_budget_is_refused_as_too_large(
    world: World,
) -> None:
    alice, _ = world.online_user()
    bob_id, (bob_dev,) = world.user()
    limits = Limits(send_rate_per_s=3)

    with pytest.raises(PayloadTooLarge) as caught:
        send_many(world, alice, bob_id, {bob_dev.device_id: [b"x"] * 4}, limits=limits)

    assert caught.value.details == {"field": "more", "limit": 3}
    assert (
        world.mailbox.page(bob_id, bob_dev.device_id, after=None, limit=9, now=NOW).envelopes == []
    )
    # a frame that fits goes, and its budget was not spent by the refusal
    assert (
        send_many(world, alice, bob_id, {bob_dev.device_id: [b"y"] * 3}, limits=limits).stored == 3
    )


def test_a_post_that_fails_ends_that_connections_share_of_a_frame(world: World) -> None:
    alice, _ = world.online_user()
    bob_dev = Device(secrets.token_hex(8), "fcm", PUSHABLE + "b")
    bob_id, _ = world.user(bob_dev)
    bob = world.online(bob_id, bob_dev)
    world.gateway.script[bob.connection_id] = [PostOutcome.DELIVERED, PostOutcome.FAILED]

    outcome = send_many(world, alice, bob_id, {bob_dev.device_id: [b"1", b"2", b"3"]})

    # the third is not posted ahead of the second: both wait for the next sync
    assert [e["client_id"] for e in world.events(bob, "message")] == ["m0"]
    assert world.gateway.script[bob.connection_id] == []
    assert (outcome.stored, outcome.delivered) == (3, 0)
    assert world.pusher.woken == [bob_dev.device_id]


def test_a_gone_connection_is_forgotten_and_the_envelope_waits(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    bob_id, (bob_dev,) = world.user()
    stale = world.online(bob_id, bob_dev, since=NOW - CONNECTING_S)
    fresh = world.online(bob_id, bob_dev)
    world.gateway.script[stale.connection_id] = [PostOutcome.GONE]

    outcome = world.send(world.online(alice_id, alice_dev), bob_id, {bob_dev.device_id: b"x"})

    assert (outcome.gone, outcome.delivered) == (1, 1)
    assert [c.connection_id for c in world.connections.of_user(bob_id, now=NOW)] == [
        fresh.connection_id
    ]
    assert len(world.events(fresh, "message")) == 1


def test_a_connection_still_opening_is_not_forgotten_when_a_post_finds_it_gone(
    world: World,
) -> None:
    # $connect recorded bob's connection a moment ago and has not finished, so the
    # @connections API answers 410 for it; once open, bob syncs and finds the message
    alice_id, (alice_dev,) = world.user()
    bob_id, (bob_dev,) = world.user()
    opening = world.online(bob_id, bob_dev, since=NOW - CONNECTING_S + 1)
    world.gateway.script[opening.connection_id] = [PostOutcome.GONE]

    outcome = world.send(world.online(alice_id, alice_dev), bob_id, {bob_dev.device_id: b"x"})

    assert (outcome.gone, outcome.delivered) == (1, 0)
    assert [c.connection_id for c in world.connections.of_user(bob_id, now=NOW)] == [
        opening.connection_id
    ]
    world.sync(opening)
    assert len(world.events(opening, "message")) == 1
    # and the next message reaches it live
    world.send(world.online(alice_id, alice_dev), bob_id, {bob_dev.device_id: b"y"}, client_id="c2")
    assert len(world.events(opening, "message")) == 2


# -- ack and receipts ------------------------------------------------------------------


def test_ack_deletes_and_sends_one_delivered_receipt_to_every_device_of_the_sender(
    world: World,
) -> None:
    phone, laptop = Device(secrets.token_hex(8)), Device(secrets.token_hex(8))
    alice_id, _ = world.user(phone, laptop)
    bob_id, (bob_dev,) = world.user()
    alice_phone, alice_laptop = world.online(alice_id, phone), world.online(alice_id, laptop)
    bob = world.online(bob_id, bob_dev)
    for i in range(3):
        world.send(alice_phone, bob_id, {bob_dev.device_id: b"x"}, client_id=f"c{i}")

    outcome = world.ack(bob, [e["id"] for e in world.events(bob, "message")])

    assert (outcome.messages, outcome.unknown, outcome.error) == (3, (), None)
    for device in (alice_phone, alice_laptop):
        (receipt,) = world.events(device, "receipt")
        assert receipt["status"] == "delivered"
        assert receipt["ids"] == ["c0", "c1", "c2"]
        assert (receipt["from"], receipt["from_device"]) == (bob_id, bob_dev.device_id)
    assert (
        world.mailbox.page(bob_id, bob_dev.device_id, after=None, limit=9, now=NOW).envelopes == []
    )


def test_an_ack_ticks_only_the_messages_it_names_as_delivered(world: World) -> None:
    # a stranger's messages are acked without a tick: the stranger learns nothing of
    # when the recipient came online; a friend's in the same frame are ticked
    (stranger, _), (friend, _) = world.online_user(), world.online_user()
    bob, bob_dev = world.online_user()
    world.send(stranger, bob.user_id, {bob_dev.device_id: b"junk"}, client_id="s1")
    world.send(friend, bob.user_id, {bob_dev.device_id: b"hi"}, client_id="f1")
    by_sender = {e["from"]: e["id"] for e in world.events(bob, "message")}

    outcome = world.ack(bob, list(by_sender.values()), delivered=[by_sender[friend.user_id]])

    assert (outcome.messages, outcome.error) == (2, None)
    assert world.events(stranger, "receipt") == []
    assert (
        world.mailbox.page(
            stranger.user_id, stranger.device_id, after=None, limit=9, now=NOW
        ).envelopes
        == []
    )
    (receipt,) = world.events(friend, "receipt")
    assert receipt["ids"] == ["f1"]


def test_an_ack_that_names_no_delivered_ids_makes_no_receipt(world: World) -> None:
    (alice, _), (bob, bob_dev) = world.online_user(), world.online_user()
    world.send(alice, bob.user_id, {bob_dev.device_id: b"x"})

    outcome = world.ack(bob, [e["id"] for e in world.events(bob, "message")], delivered=[])

    assert (outcome.messages, outcome.delivered_receipts) == (1, ())
    assert world.events(alice, "receipt") == []


def test_an_ack_of_one_id_reads_first_only_what_may_tick(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice, _), (bob, bob_dev) = world.online_user(), world.online_user()
    world.send(alice, bob.user_id, {bob_dev.device_id: b"x"}, client_id="x1")
    world.send(alice, bob.user_id, {bob_dev.device_id: b"y"}, client_id="y1")
    first, second = [e["id"] for e in world.events(bob, "message")]
    calls = _count_mailbox_calls(monkeypatch)

    ticked = world.ack(bob, [second], delivered=[second])
    plain = world.ack(bob, [first], delivered=[])
    receipt = world.events(alice, "receipt")[0]
    untouched = world.ack(alice, [receipt["id"]], delivered=[])

    # the ticking one is read before it is deleted; the others are only deleted
    assert calls == [
        ("get_many", [second]),
        ("delete", [second]),
        ("delete", [first]),
        ("delete", [receipt["id"]]),
    ]
    assert (ticked.messages, plain.messages, untouched.receipts) == (1, 1, 1)
    assert [r["ids"] for r in world.events(alice, "receipt")] == [["y1"]]
    assert (plain.unknown, untouched.unknown) == ((), ())


def test_an_ack_of_several_reads_once_and_deletes_in_one_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice, _), (bob, bob_dev) = world.online_user(), world.online_user()
    for n in range(3):
        world.send(alice, bob.user_id, {bob_dev.device_id: b"x"}, client_id=f"m{n}")
    ids = [e["id"] for e in world.events(bob, "message")]
    ghost = ids[0].replace("#m0", "#never")
    calls = _count_mailbox_calls(monkeypatch)

    outcome = world.ack(bob, [*ids, ghost, ids[1]], delivered=ids[1:])

    assert calls == [("get_many", [*ids, ghost]), ("delete_many", ids)]
    assert (outcome.messages, outcome.receipts, outcome.unknown) == (3, 0, (ghost,))
    # only what the frame named in `delivered` ticks
    assert [r["ids"] for r in world.events(alice, "receipt")] == [["m1", "m2"]]
    page = world.mailbox.page(bob.user_id, bob_dev.device_id, after=None, limit=9, now=NOW)
    assert page.envelopes == []


def _count_mailbox_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Record the mailbox reads and deletes (with the ids) from now on."""
    calls: list[tuple[str, list[str]]] = []
    get_many, delete, delete_many = Mailbox.get_many, Mailbox.delete, Mailbox.delete_many

    def counted_get(store: Mailbox, user_id: str, device_id: str, ids: Any, *, now: float) -> Any:
        calls.append(("get_many", list(ids)))
        return get_many(store, user_id, device_id, ids, now=now)

    def counted_delete(store: Mailbox, user_id: str, device: str, sid: str, *, now: float) -> Any:
        calls.append(("delete", [sid]))
        return delete(store, user_id, device, sid, now=now)

    def counted_many(store: Mailbox, user_id: str, device_id: str, ids: Any) -> int:
        calls.append(("delete_many", list(ids)))
        return delete_many(store, user_id, device_id, ids)

    monkeypatch.setattr(Mailbox, "get_many", counted_get)
    monkeypatch.setattr(Mailbox, "delete", counted_delete)
    monkeypatch.setattr(Mailbox, "delete_many", counted_many)
    return calls


def test_an_ack_without_ticks_of_someone_elses_id_deletes_nothing(world: World) -> None:
    (alice, _), (bob, bob_dev) = world.online_user(), world.online_user()
    mallory, _ = world.online_user()
    world.send(alice, bob.user_id, {bob_dev.device_id: b"for bob"})
    bobs_id = world.events(bob, "message")[0]["id"]

    outcome = world.ack(mallory, [bobs_id, bobs_id], delivered=[])

    assert outcome.unknown == (bobs_id,)
    page = world.mailbox.page(bob.user_id, bob_dev.device_id, after=None, limit=5, now=NOW)
    assert len(page.envelopes) == 1


def test_ack_batches_receipts_per_sender(world: World) -> None:
    (alice, _), (carol, _) = world.online_user(), world.online_user()
    bob, bob_dev = world.online_user()
    bob_id = bob.user_id
    world.send(alice, bob_id, {bob_dev.device_id: b"a"}, client_id="a1")
    world.send(carol, bob_id, {bob_dev.device_id: b"c"}, client_id="c1")
    world.send(alice, bob_id, {bob_dev.device_id: b"a"}, client_id="a2")

    world.ack(bob, [e["id"] for e in world.events(bob, "message")])

    assert [r["ids"] for r in world.events(alice, "receipt")] == [["a1", "a2"]]
    assert [r["ids"] for r in world.events(carol, "receipt")] == [["c1"]]


def test_what_was_sent_before_the_senders_number_moved_is_ticked_for_nobody(
    world: World,
) -> None:
    # Alice's old phone wrote to Bob; her number then moved to a new phone (perhaps a
    # new owner's) before Bob acked. The new phone must not learn whom the old one
    # wrote to; what the new phone sent since is ticked as ever, in the same ack
    alice, _ = world.online_user()
    bob, bob_dev = world.online_user()
    world.send(alice, bob.user_id, {bob_dev.device_id: b"old"}, client_id="old", now=NOW)
    new_phone = Device(secrets.token_hex(8))
    world.directory.users[alice.user_id] = [new_phone]
    world.directory.moved_at[alice.user_id] = round((NOW + 1) * 1_000_000)
    new = world.online(alice.user_id, new_phone, since=NOW + 2)
    world.send(new, bob.user_id, {bob_dev.device_id: b"new"}, client_id="new", now=NOW + 2)

    outcome = world.ack(bob, [e["id"] for e in world.events(bob, "message")], now=NOW + 3)

    assert outcome.messages == 2
    assert [r["ids"] for r in world.events(new, "receipt")] == [["new"]]
    stored = world.mailbox.page(
        alice.user_id, new_phone.device_id, after=None, limit=9, now=NOW + 3
    ).envelopes
    assert [e.ids for e in stored] == [("new",)]  # type: ignore[union-attr]
    assert world.events(alice, "receipt") == []  # the old phone, signed out, gets nothing


def test_a_read_receipt_tells_nobody_of_what_was_sent_before_the_number_moved(
    world: World,
) -> None:
    # Bob reads, after Alice's number moved, one message of her old phone's and one of
    # the new phone's: only the new one is told, and only of its own
    bob, _ = world.online_user()
    new_phone = Device(secrets.token_hex(8))
    alice_id, _ = world.user(new_phone)
    moved_at = round(NOW * 1_000_000) + 250  # µs; a message of that ms before it is old
    world.directory.moved_at[alice_id] = moved_at
    new = world.online(alice_id, new_phone)
    old_ms, same_ms_before, new_ms = int(NOW * 1000) - 5000, int(NOW * 1000), int(NOW * 1000) + 1

    def read(ids: list[str], sent: list[int] | None) -> receipts.ReceiptOutcome:
        raw: dict[str, Any] = {"to": alice_id, "status": "read", "ids": ids}
        if sent is not None:
            raw["sent"] = sent
        return world.call(receipts.receipt, ReceiptFrame.parse(raw), bob, now=NOW, limits=LIMITS)

    assert read(["old", "edge", "new"], [old_ms, same_ms_before, new_ms]).stored == 1
    assert read(["old2"], [old_ms]) == receipts.ReceiptOutcome(0, 0, 0, 0)
    assert [r["ids"] for r in world.events(new, "receipt")] == [["new"]]
    # an app that does not date its receipts is told as before
    assert read(["undated"], None).stored == 1
    assert [r["ids"] for r in world.events(new, "receipt")] == [["new"], ["undated"]]


def test_ack_of_ids_not_in_the_callers_mailbox_deletes_nothing(world: World) -> None:
    (alice, _), (bob, bob_dev) = world.online_user(), world.online_user()
    mallory, _ = world.online_user()
    bob_id = bob.user_id
    world.send(alice, bob_id, {bob_dev.device_id: b"for bob"})
    bobs_id = world.events(bob, "message")[0]["id"]

    outcome = world.ack(mallory, [bobs_id])

    assert outcome.unknown == (bobs_id,)
    assert outcome.error is not None
    assert outcome.error.code == "unknown_ids"
    assert (
        len(world.mailbox.page(bob_id, bob_dev.device_id, after=None, limit=5, now=NOW).envelopes)
        == 1
    )
    assert world.events(alice, "receipt") == []


def test_acking_a_receipt_deletes_it_and_produces_nothing_more(world: World) -> None:
    (alice, alice_dev), (bob, bob_dev) = world.online_user(), world.online_user()
    alice_id, bob_id = alice.user_id, bob.user_id
    world.send(alice, bob_id, {bob_dev.device_id: b"x"})
    world.ack(bob, [world.events(bob, "message")[0]["id"]])
    receipt = world.events(alice, "receipt")[0]

    outcome = world.ack(alice, [receipt["id"]])

    assert (outcome.messages, outcome.receipts, outcome.delivered_receipts) == (0, 1, ())
    assert world.events(bob, "receipt") == []
    assert (
        world.mailbox.page(alice_id, alice_dev.device_id, after=None, limit=5, now=NOW).envelopes
        == []
    )


def test_an_expired_envelope_acked_late_yields_no_receipt(world: World) -> None:
    (alice, _), (bob, bob_dev) = world.online_user(), world.online_user()
    bob_id = bob.user_id
    world.send(alice, bob_id, {bob_dev.device_id: b"x"})
    server_id = world.events(bob, "message")[0]["id"]

    outcome = world.ack(bob, [server_id], now=NOW + LIMITS.mailbox_ttl_s)

    assert outcome.unknown == (server_id,)
    assert world.events(alice, "receipt") == []


def test_read_receipt_is_stored_for_every_device_and_delivered_where_online(world: World) -> None:
    phone, laptop = Device(secrets.token_hex(8)), Device(secrets.token_hex(8))
    alice_id, _ = world.user(phone, laptop)
    bob_id, (bob_dev,) = world.user()
    alice_phone = world.online(alice_id, phone)
    bob = world.online(bob_id, bob_dev)

    outcome = world.call(
        receipts.receipt,
        ReceiptFrame.parse({"to": alice_id, "status": "read", "ids": ["c1", "c2"]}),
        bob,
        now=NOW,
        limits=LIMITS,
    )

    assert (outcome.devices, outcome.stored, outcome.delivered) == (2, 1 + 1, 1)
    (live,) = world.events(alice_phone, "receipt")
    assert (live["status"], live["ids"], live["from"]) == ("read", ["c1", "c2"], bob_id)
    laptop_later = world.online(alice_id, laptop)
    world.sync(laptop_later)
    assert [e["id"] for e in world.events(laptop_later, "receipt")] == [live["id"]]


def test_read_receipt_to_an_unknown_user_is_refused(world: World) -> None:
    bob_id, (bob_dev,) = world.user()
    with pytest.raises(NotFound):
        world.call(
            receipts.receipt,
            ReceiptFrame.parse({"to": "e" * 32, "status": "read", "ids": ["c1"]}),
            world.online(bob_id, bob_dev),
            now=NOW,
            limits=LIMITS,
        )


# -- sync ------------------------------------------------------------------------------


def _fill(world: World, count: int) -> tuple[Caller, str, Device]:
    """`count` messages from one sender waiting for an offline recipient."""
    alice_id, (alice_dev,) = world.user()
    bob_id, (bob_dev,) = world.user()
    alice = world.online(alice_id, alice_dev)
    for i in range(count):
        world.send(
            alice, bob_id, {bob_dev.device_id: b"x"}, client_id=f"c{i:03d}", now=NOW + i / 1000
        )
    return alice, bob_id, bob_dev


def test_sync_pages_deliver_everything_oldest_first(world: World) -> None:
    _, bob_id, bob_dev = _fill(world, 7)
    bob = world.online(bob_id, bob_dev)

    cursor = None
    pages = 0
    while True:
        pages += 1
        outcome = world.sync(bob, cursor, page_size=3)
        synced = world.events(bob, "synced")[-1]
        if not synced["more"]:
            break
        cursor = synced["cursor"]
    assert pages == 3
    assert [e["client_id"] for e in world.events(bob, "message")] == [f"c{i:03d}" for i in range(7)]
    assert outcome.delivered == 1


def test_sync_reports_when_the_oldest_event_it_delivered_was_accepted(world: World) -> None:
    _, bob_id, bob_dev = _fill(world, 3)
    bob = world.online(bob_id, bob_dev)

    outcome = world.sync(bob, now=NOW + 60)

    first = world.events(bob, "message")[0]
    assert outcome.oldest_ts == first["ts"] == int(NOW * 1000)


def test_sync_never_delivers_expired_envelopes(world: World) -> None:
    alice, bob_id, bob_dev = _fill(world, 2)
    later = NOW + LIMITS.mailbox_ttl_s + 1
    world.send(alice, bob_id, {bob_dev.device_id: b"fresh"}, client_id="new", now=later)
    bob = world.online(bob_id, bob_dev)

    world.sync(bob, now=later)

    assert [e["client_id"] for e in world.events(bob, "message")] == ["new"]


def test_sync_stops_when_the_callers_connection_is_gone(world: World) -> None:
    _, bob_id, bob_dev = _fill(world, 3)
    bob = world.online(bob_id, bob_dev)
    world.gateway.script[bob.connection_id] = [PostOutcome.DELIVERED, PostOutcome.GONE]

    outcome = world.sync(bob)

    assert (outcome.delivered, outcome.gone) == (1, True)
    assert world.events(bob, "synced") == []


def test_sync_that_cannot_post_resumes_after_the_last_event_that_got_through(world: World) -> None:
    _, bob_id, bob_dev = _fill(world, 4)
    bob = world.online(bob_id, bob_dev)
    world.gateway.script[bob.connection_id] = [PostOutcome.DELIVERED, PostOutcome.FAILED]

    world.sync(bob)
    synced = world.events(bob, "synced")[-1]
    assert synced["more"] is True
    assert decode_cursor(synced["cursor"]).server_id == world.events(bob, "message")[0]["id"]
    world.sync(bob, synced["cursor"])

    assert [e["client_id"] for e in world.events(bob, "message")] == [f"c{i:03d}" for i in range(4)]


def test_sync_that_cannot_post_anything_asks_the_client_to_sync_again(world: World) -> None:
    _, bob_id, bob_dev = _fill(world, 1)
    bob = world.online(bob_id, bob_dev)
    world.gateway.script[bob.connection_id] = [PostOutcome.FAILED]
    with pytest.raises(DependencyUnavailable):
        world.sync(bob)


def test_a_sync_whose_synced_cannot_be_posted_asks_the_client_to_sync_again(
    world: World,
) -> None:
    _, bob_id, bob_dev = _fill(world, 3)
    bob = world.online(bob_id, bob_dev)
    script = [PostOutcome.DELIVERED] * 3 + [PostOutcome.FAILED]  # the page, then `synced`
    world.gateway.script[bob.connection_id] = script
    with pytest.raises(DependencyUnavailable):  # the client would wait for the page's end
        world.sync(bob)
    assert len(world.events(bob, "message")) == 3


def test_a_batched_sync_of_nothing_whose_synced_cannot_be_posted_asks_to_sync_again(
    world: World,
) -> None:
    bob_id, (bob_dev,) = world.user()
    bob = world.online(bob_id, bob_dev)
    world.gateway.script[bob.connection_id] = [PostOutcome.FAILED]
    with pytest.raises(DependencyUnavailable):
        world.sync(bob, batch=True)


def test_sync_of_an_empty_mailbox_says_synced_with_nothing_more(world: World) -> None:
    bob_id, (bob_dev,) = world.user()
    bob = world.online(bob_id, bob_dev)
    assert world.sync(bob).delivered == 0
    assert world.events(bob) == [{"event": "synced", "more": False, "cursor": None}]


def test_a_sync_asking_for_batches_gets_a_page_in_one_post_synced_last(world: World) -> None:
    _, bob_id, bob_dev = _fill(world, 7)
    bob = world.online(bob_id, bob_dev)

    outcome = world.sync(bob, batch=True)

    (post,) = world.posts(bob)
    assert post["event"] == "batch"
    assert [e["event"] for e in post["events"]] == ["message"] * 7 + ["synced"]
    assert [e["client_id"] for e in post["events"][:7]] == [f"c{i:03d}" for i in range(7)]
    assert post["events"][-1] == {"event": "synced", "more": False, "cursor": None}
    assert (outcome.delivered, outcome.more) == (7, False)


def test_a_sync_without_batch_gets_an_event_a_post_as_before(world: World) -> None:
    _, bob_id, bob_dev = _fill(world, 3)
    bob = world.online(bob_id, bob_dev)

    world.sync(bob)

    assert [p["event"] for p in world.posts(bob)] == ["message"] * 3 + ["synced"]


def test_batched_sync_posts_stay_within_a_billed_websocket_message(world: World) -> None:
    alice_id, (alice_dev,) = world.user()
    bob_id, (bob_dev,) = world.user()
    alice = world.online(alice_id, alice_dev)
    for i in range(12):  # over 12 KB posted each: two share a 32 KB post, not three
        body = secrets.token_bytes(9 * 1024)
        world.send(alice, bob_id, {bob_dev.device_id: body}, client_id=f"c{i:03d}", now=NOW + i)
    bob = world.online(bob_id, bob_dev)

    world.sync(bob, batch=True)

    posts = world.posts(bob)
    assert all(event_bytes(post) <= BATCH_BYTES for post in posts)
    # `synced`, small, joins the last two
    assert [len(post.get("events", [post])) for post in posts] == [2] * 5 + [3]
    shown = [e["client_id"] for e in world.events(bob, "message")]
    assert shown == [f"c{i:03d}" for i in range(12)]
    assert world.events(bob)[-1]["event"] == "synced"


def test_a_batched_sync_that_cannot_post_resumes_after_the_last_batch_that_got_through(
    world: World,
) -> None:
    alice_id, (alice_dev,) = world.user()
    bob_id, (bob_dev,) = world.user()
    alice = world.online(alice_id, alice_dev)
    for i in range(5):
        body = secrets.token_bytes(9 * 1024)
        world.send(alice, bob_id, {bob_dev.device_id: body}, client_id=f"c{i:03d}", now=NOW + i)
    bob = world.online(bob_id, bob_dev)
    world.gateway.script[bob.connection_id] = [PostOutcome.DELIVERED, PostOutcome.FAILED]

    outcome = world.sync(bob, batch=True)

    assert outcome.delivered == 2
    synced = world.events(bob, "synced")[-1]
    assert synced["more"] is True
    assert decode_cursor(synced["cursor"]).server_id == world.events(bob, "message")[1]["id"]
    world.sync(bob, synced["cursor"], batch=True)
    assert [e["client_id"] for e in world.events(bob, "message")] == [f"c{i:03d}" for i in range(5)]


def test_a_batched_sync_whose_first_post_fails_asks_the_client_to_sync_again(
    world: World,
) -> None:
    _, bob_id, bob_dev = _fill(world, 3)
    bob = world.online(bob_id, bob_dev)
    world.gateway.script[bob.connection_id] = [PostOutcome.FAILED]
    with pytest.raises(DependencyUnavailable):
        world.sync(bob, batch=True)
    assert world.posts(bob) == []


def test_a_batched_sync_stops_when_the_callers_connection_is_gone(world: World) -> None:
    _, bob_id, bob_dev = _fill(world, 3)
    bob = world.online(bob_id, bob_dev)
    world.gateway.script[bob.connection_id] = [PostOutcome.GONE]

    outcome = world.sync(bob, batch=True)

    assert (outcome.delivered, outcome.gone, outcome.more) == (0, True, True)


def test_sync_frames_refuse_a_batch_that_is_not_true_or_false() -> None:
    with pytest.raises(BadRequest) as refused:
        SyncFrame.parse({"batch": "yes"})
    assert refused.value.details.get("field") == "batch"


# -- typing and connections -----------------------------------------------------------


def test_typing_reaches_every_live_connection_of_the_recipient_and_is_never_stored(
    world: World,
) -> None:
    alice_id, (alice_dev,) = world.user()
    phone, laptop = Device(secrets.token_hex(8)), Device(secrets.token_hex(8))
    bob_id, _ = world.user(phone, laptop)
    alice = world.online(alice_id, alice_dev)
    on_phone, on_laptop = world.online(bob_id, phone), world.online(bob_id, laptop)

    report = world.call(
        messaging.typing, parse_typing({"to": bob_id, "state": "on"}), alice, now=NOW
    )

    expected = {
        "event": "typing",
        "from": alice_id,
        "from_device": alice_dev.device_id,
        "state": "on",
    }
    assert world.events(on_phone) == [expected]
    assert world.events(on_laptop) == [expected]
    assert report.posts == 2
    for device in (phone, laptop):
        page = world.mailbox.page(bob_id, device.device_id, after=None, limit=5, now=NOW)
        assert page.envelopes == []


def test_disconnect_forgets_the_connection_and_records_last_seen(world: World) -> None:
    bob_id, (bob_dev,) = world.user()
    bob = world.online(bob_id, bob_dev)
    seen: list[tuple[str, float]] = []

    class LastSeen:
        def record_last_seen(self, user_id: str, ts: float) -> None:
            seen.append((user_id, ts))

    world.call(lifecycle.disconnect, bob, now=NOW + 60, last_seen=LastSeen())

    assert world.connections.of_user(bob_id, now=NOW + 60) == []
    assert seen == [(bob_id, NOW + 60)]


def test_connections_expire_after_their_ttl_even_without_disconnect(world: World) -> None:
    bob_id, (bob_dev,) = world.user()
    world.online(bob_id, bob_dev)
    assert len(world.connections.of_user(bob_id, now=NOW)) == 1
    assert world.connections.of_user(bob_id, now=NOW + LIMITS.connection_ttl_s) == []


def test_refuse_unknown_names_the_known_actions() -> None:
    error = messaging.refuse_unknown({"action": "dance", "id": "x1"})
    assert error.code == "unknown_action"
    assert error.details["actions"] == ["ack", "receipt", "send", "sync", "typing"]
    assert messaging.refuse_unknown({}).code == "unknown_action"


# -- rate limits: read receipts, typing, one sender's mail to one recipient -----------


def _read(
    world: World, caller: Caller, to: str, *, now: float = NOW, limits: Limits = LIMITS
) -> receipts.ReceiptOutcome:
    frame = ReceiptFrame.parse({"to": to, "status": "read", "ids": [secrets.token_hex(4)]})
    return world.call(receipts.receipt, frame, caller, now=now, limits=limits)


def _waiting(world: World, user_id: str, device: Device) -> int:
    page = world.mailbox.page(user_id, device.device_id, after=None, limit=100, now=NOW)
    return len(page.envelopes)


def test_read_receipts_past_a_devices_budget_per_second_are_refused(world: World) -> None:
    limits = Limits(receipts_per_s=2, receipts_per_minute=100)
    alice_id, (alice_dev,) = world.user()
    phone, laptop = Device(secrets.token_hex(8)), Device(secrets.token_hex(8))
    bob_id, _ = world.user(phone, laptop)
    bob_phone, bob_laptop = world.online(bob_id, phone), world.online(bob_id, laptop)
    for _ in range(2):
        _read(world, bob_phone, alice_id, limits=limits)

    with pytest.raises(RateLimited) as refused:
        _read(world, bob_phone, alice_id, limits=limits)

    assert (refused.value.code, refused.value.retry_after) == ("rate_limited", 1)
    assert _waiting(world, alice_id, alice_dev) == 2
    # each device has its own budget, and the next second is a new one
    _read(world, bob_laptop, alice_id, limits=limits)
    _read(world, bob_phone, alice_id, now=NOW + 1, limits=limits)
    assert _waiting(world, alice_id, alice_dev) == 4


def test_read_receipts_past_a_devices_budget_per_minute_are_refused(world: World) -> None:
    limits = Limits(receipts_per_s=100, receipts_per_minute=3)
    alice_id, (alice_dev,) = world.user()
    bob, _ = world.online_user()
    for second in range(3):
        _read(world, bob, alice_id, now=NOW + second, limits=limits)

    with pytest.raises(RateLimited) as refused:
        _read(world, bob, alice_id, now=NOW + 3, limits=limits)

    assert refused.value.retry_after == 57  # NOW is the start of a minute
    assert _waiting(world, alice_id, alice_dev) == 3
    _read(world, bob, alice_id, now=NOW + 60, limits=limits)


def test_typing_past_a_devices_budget_per_second_or_minute_is_refused(world: World) -> None:
    limits = Limits(typing_per_s=2, typing_per_minute=3)
    alice, _ = world.online_user()
    other = Caller(alice.user_id, secrets.token_hex(8), "other=")
    for _ in range(2):
        world.call(messaging.limit_typing_rate, alice, limits=limits, now=NOW)
    with pytest.raises(RateLimited) as per_second:
        world.call(messaging.limit_typing_rate, alice, limits=limits, now=NOW)
    assert per_second.value.retry_after == 1
    world.call(messaging.limit_typing_rate, alice, limits=limits, now=NOW + 1)

    with pytest.raises(RateLimited) as per_minute:
        world.call(messaging.limit_typing_rate, alice, limits=limits, now=NOW + 2)

    assert per_minute.value.retry_after == 58
    world.call(messaging.limit_typing_rate, other, limits=limits, now=NOW + 2)


def test_one_user_may_send_another_only_so_many_messages_an_hour(world: World) -> None:
    limits = Limits(messages_to_user_per_hour=3)
    phone, laptop = Device(secrets.token_hex(8)), Device(secrets.token_hex(8))
    alice_id, _ = world.user(phone, laptop)
    alice_phone, alice_laptop = world.online(alice_id, phone), world.online(alice_id, laptop)
    bob_id, (bob_dev,) = world.user()
    carol_id, (carol_dev,) = world.user()
    to_bob = {bob_dev.device_id: b"x"}
    # the sender's devices share one budget per recipient
    world.send(alice_phone, bob_id, to_bob, client_id="m0", now=NOW, limits=limits)
    world.send(alice_laptop, bob_id, to_bob, client_id="m1", now=NOW + 1, limits=limits)
    world.send(alice_phone, bob_id, to_bob, client_id="m2", now=NOW + 2, limits=limits)

    with pytest.raises(RateLimited) as refused:
        world.send(alice_phone, bob_id, to_bob, client_id="m3", now=NOW + 3, limits=limits)

    assert (refused.value.code, refused.value.retry_after) == ("rate_limited", 3600 - 3)
    assert _waiting(world, bob_id, bob_dev) == 3
    # another recipient, one's own other devices and the next hour are not held back
    world.send(alice_phone, carol_id, {carol_dev.device_id: b"x"}, client_id="m4", now=NOW + 4)
    for i in range(5):
        world.send(
            alice_phone,
            alice_id,
            {laptop.device_id: b"copy"},
            client_id=f"own{i}",
            now=NOW + 5 + i,
            limits=limits,
        )
    world.send(alice_phone, bob_id, to_bob, client_id="m3", now=NOW + 3600, limits=limits)
    assert _waiting(world, bob_id, bob_dev) == 4


def test_one_user_may_ring_another_only_a_few_times_a_minute_and_an_hour(world: World) -> None:
    limits = Limits(rings_to_user_per_minute=2, rings_to_user_per_hour=3)
    alice, _ = world.online_user()
    phone = Device(secrets.token_hex(8), "fcm", PUSHABLE + "p")
    bob_id, _ = world.user(phone)
    carol_id, (carol_dev,) = world.user()
    offer = {phone.device_id: b"offer"}

    def ring(client_id: str, now: float, to: str = bob_id, payloads: Any = offer) -> None:
        world.send(
            alice,
            to,
            payloads,
            client_id=client_id,
            now=now,
            limits=limits,
            ttl=60,
            ephemeral=True,
            ring=True,
        )

    ring("r0", NOW)
    ring("r1", NOW + 1)
    with pytest.raises(RateLimited) as per_minute:
        ring("r2", NOW + 2)
    assert per_minute.value.retry_after == 58
    assert len(world.pusher.rung) == 2  # the refused offer rang nobody
    # signalling that does not ring is not counted, nor is another callee
    world.send(
        alice, bob_id, offer, client_id="a1", now=NOW + 3, limits=limits, ttl=60, ephemeral=True
    )
    ring("c0", NOW + 4, carol_id, {carol_dev.device_id: b"offer"})
    ring("r3", NOW + 61)
    with pytest.raises(RateLimited) as per_hour:
        ring("r4", NOW + 122)
    assert per_hour.value.retry_after == 3600 - 122
