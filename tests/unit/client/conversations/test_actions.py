"""Replies, reactions, edits, deletes for everyone and disappearing timers between
two real engines and stores (no network): what each device shows, and what the
rules drop."""

from __future__ import annotations

import itertools
import json
import shutil
from functools import partial
from pathlib import Path

import pytest

from parley.cli.render import render_message
from parley.content import (
    Attachment,
    ContactCard,
    ContentError,
    Context,
    Delete,
    Edit,
    Quote,
    Reaction,
    Target,
    Text,
    TimerChange,
    excerpt_of,
    with_context,
)
from parley.conversations import actions, payload
from parley.engine import Engine
from parley.groups.admins import signed_admin
from parley.models import (
    Contact,
    Direction,
    Group,
    Message,
    MessageDeleted,
    MessageDisappeared,
    MessageEdited,
    MessageReceived,
    MessageState,
    ReactionChanged,
    TimerChanged,
)
from parley.protocol import IncomingMessage, OutboxEntry
from parley.store import Store
from tests.unit.client.fakes import KeyServer
from tests.unit.client.test_engine import ALICE, ALICE_DEV, BOB, BOB_DEV, make_engine

T0 = 1_700_000_000_000  # server time of the first message (ms)
MINUTE = 60_000


class Pair:
    """Alice and Bob, each one device, and a service that hands over what they send."""

    def __init__(self, alice: Engine, bob: Engine) -> None:
        self.alice, self.bob = alice, bob
        self.clock = T0

    def contact(self, engine: Engine, user_id: str) -> Contact:
        found = engine.store.contacts.get(user_id) or engine.store.contacts.add(user_id, None, None)
        return found

    async def send(
        self, sender: Engine, content: object, *, at: int | None = None
    ) -> IncomingMessage:
        """`sender` sends `content` to the other; the envelope the other would get
        (stamped `at`, else one second after the last)."""
        to = BOB if sender is self.alice else ALICE
        outgoing = await sender.send_to(self.contact(sender, to), content)  # type: ignore[arg-type]
        entry = outgoing.entries[0]
        self.clock = at if at is not None else self.clock + 1000
        sender.sent(entry, self.clock)
        return self.envelope(entry, sender)

    def envelope(self, entry: OutboxEntry, sender: Engine) -> IncomingMessage:
        device = BOB_DEV if sender is self.alice else ALICE_DEV
        assert entry.payloads is not None
        return IncomingMessage(
            server_id=f"m#{entry.client_id}",
            client_id=entry.client_id,
            sender=sender.account.user_id,
            sender_device=sender.account.device_id,
            body=entry.payloads[device],
            ts=self.clock,
        )

    def deliver(self, to: Engine, envelope: IncomingMessage) -> list[object]:
        received = to.receive(envelope)
        assert received.stored
        return list(received.events)

    async def exchange(self, sender: Engine, content: object, **at: int) -> list[object]:
        to = self.bob if sender is self.alice else self.alice
        return self.deliver(to, await self.send(sender, content, **at))


@pytest.fixture
async def pair(tmp_path: Path) -> Pair:
    directory = KeyServer()
    alice = await make_engine(tmp_path, directory, ALICE, ALICE_DEV)
    alice.store.contacts.add(BOB, "Bob", "+15550000002")
    bob = await make_engine(tmp_path, directory, BOB, BOB_DEV)
    return Pair(alice, bob)


def mine(engine: Engine, peer: str) -> list[Message]:
    return engine.store.messages.history(peer)


def only(engine: Engine, peer: str) -> Message:
    (message,) = mine(engine, peer)
    return message


# -- replies ---------------------------------------------------------------------------


async def test_a_reply_quotes_its_message_on_both_sides(pair: Pair) -> None:
    await pair.exchange(pair.alice, "Lunch at 1?\nOr later")
    asked = only(pair.bob, ALICE)
    quote = Quote(asked.target, asked.kind, excerpt_of(asked.text))

    (event,) = await pair.exchange(pair.bob, with_context(Text("yes!"), Context(reply=quote)))

    assert isinstance(event, MessageReceived)
    answer = mine(pair.alice, BOB)[-1]
    assert answer.text == "yes!"
    assert answer.reply_to == Quote(Target(ALICE, asked.client_id), "text", "Lunch at 1? Or later")
    assert mine(pair.bob, ALICE)[-1].reply_to == answer.reply_to


def test_a_quote_that_is_not_one_is_refused() -> None:
    bad = {"v": 1, "kind": "text", "text": "x", "ctx": {"reply": {"author": ALICE, "id": "m1"}}}
    with pytest.raises(payload.UnsupportedContent):
        payload.decode(json.dumps(bad).encode())
    with pytest.raises(ContentError):
        Quote(Target(ALICE, "m1"), "text", "x" * 201)


# -- reactions -------------------------------------------------------------------------


async def test_reactions_replace_and_take_back_one_per_person(pair: Pair) -> None:
    await pair.exchange(pair.alice, "photo time")
    target = only(pair.alice, BOB).target

    (event,) = await pair.exchange(pair.bob, Reaction(target, "👍"))
    assert isinstance(event, ReactionChanged)
    assert (event.user_id, event.emoji, event.message.reactions) == (BOB, "👍", ((BOB, "👍"),))
    await pair.exchange(pair.alice, Reaction(target, "😂"))
    await pair.exchange(pair.bob, Reaction(target, "❤️"))
    both = {ALICE: "😂", BOB: "❤️"}
    assert dict(only(pair.alice, BOB).reactions) == both
    assert dict(only(pair.bob, ALICE).reactions) == both  # each applied its own at once
    await pair.exchange(pair.bob, Reaction(target, ""))
    assert only(pair.alice, BOB).reactions == ((ALICE, "😂"),)
    # reactions are not messages: nothing new in the conversation
    assert [m.text for m in mine(pair.alice, BOB)] == ["photo time"]


async def test_an_older_reaction_arriving_late_does_not_win(pair: Pair) -> None:
    await pair.exchange(pair.alice, "hi")
    target = only(pair.alice, BOB).target
    older = await pair.send(pair.bob, Reaction(target, "👍"), at=T0 + 5000)
    newer = await pair.send(pair.bob, Reaction(target, "🎉"), at=T0 + 6000)

    pair.deliver(pair.alice, newer)
    assert pair.alice.receive(older).events == []

    assert only(pair.alice, BOB).reactions == ((BOB, "🎉"),)


async def test_actions_of_one_frame_share_a_millisecond_and_the_later_one_wins(
    pair: Pair,
) -> None:
    """The service stamps the messages of one `send` frame a microsecond apart, so
    they share their `ts` (ms); each device gets them in the frame's order."""
    await pair.exchange(pair.alice, "v1", at=T0)
    target = only(pair.alice, BOB).target
    same = T0 + 5000
    actions_in_one_frame = [
        await pair.send(pair.alice, Reaction(target, "👍"), at=same),
        await pair.send(pair.alice, Reaction(target, "🎉"), at=same),
        await pair.send(pair.alice, Edit(target, "v2"), at=same),
        await pair.send(pair.alice, Edit(target, "v3"), at=same),
        await pair.send(pair.alice, TimerChange(86400), at=same),
        await pair.send(pair.alice, TimerChange(604800), at=same),
    ]

    for envelope in actions_in_one_frame:
        pair.deliver(pair.bob, envelope)

    shown = pair.bob.store.messages.find(target)
    assert shown is not None
    assert (shown.text, shown.reactions) == ("v3", ((ALICE, "🎉"),))
    assert pair.bob.store.messages.timer_of(ALICE) == 604800


def test_a_reaction_is_one_emoji() -> None:
    target = Target(ALICE, "m1")
    for bad in ("ok", "👍👍", " 👍", "👍 "):
        with pytest.raises(ContentError):
            Reaction(target, bad)
    assert Reaction(target, "👨‍👩‍👧").emoji == "👨‍👩‍👧"
    hostile = {"v": 1, "kind": "reaction", "target": target.to_dict(), "emoji": "lol"}
    with pytest.raises(payload.UnsupportedContent):
        payload.decode(json.dumps(hostile).encode())


# -- edits -----------------------------------------------------------------------------


async def test_its_author_edits_a_text_and_every_side_shows_it(pair: Pair) -> None:
    await pair.exchange(pair.alice, "see you at 8", at=T0)
    target = only(pair.alice, BOB).target

    (event,) = await pair.exchange(pair.alice, Edit(target, "see you at 9"), at=T0 + MINUTE)
    (again,) = await pair.exchange(pair.alice, Edit(target, "see you at 10"), at=T0 + 2 * MINUTE)

    assert isinstance(event, MessageEdited)
    assert isinstance(again, MessageEdited)
    shown = only(pair.bob, ALICE)
    assert (shown.text, shown.edited_at) == ("see you at 10", T0 + 2 * MINUTE)
    own = only(pair.alice, BOB)  # applied here when sent (this device's clock)
    assert own.text == "see you at 10"
    assert own.edited


async def test_edits_out_of_order_end_on_the_latest(pair: Pair) -> None:
    await pair.exchange(pair.alice, "v1", at=T0)
    target = only(pair.alice, BOB).target
    second = await pair.send(pair.alice, Edit(target, "v2"), at=T0 + 1000)
    third = await pair.send(pair.alice, Edit(target, "v3"), at=T0 + 2000)

    pair.deliver(pair.bob, third)
    assert pair.bob.receive(second).events == []

    assert only(pair.bob, ALICE).text == "v3"


async def test_an_edit_before_its_message_is_held_until_it_comes(pair: Pair) -> None:
    first = await pair.send(pair.alice, "typo", at=T0)
    target = Target(ALICE, first.client_id)
    fix = await pair.send(pair.alice, Edit(target, "fixed"), at=T0 + 1000)

    assert pair.deliver(pair.bob, fix) == []  # held: nothing to show yet
    events = pair.deliver(pair.bob, first)

    assert [type(e) for e in events] == [MessageReceived, MessageEdited]
    assert only(pair.bob, ALICE).text == "fixed"


async def test_edits_that_break_the_rules_are_dropped(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    await pair.exchange(pair.alice, "mine", at=T0)
    target = only(pair.bob, ALICE).target

    # Bob's device forges an edit of Alice's message (his client refuses to make one)
    assert await pair.exchange(pair.bob, Edit(target, "not yours"), at=T0 + 1000) == []
    # Alice edits too late: her own copy is ahead, Bob's stays
    late = T0 + actions.RULES.edit_window_s * 1000 + 1
    assert await pair.exchange(pair.alice, Edit(target, "too late"), at=late) == []

    assert only(pair.bob, ALICE).text == "mine"
    assert "only its author edits" in caplog.text
    assert "can be edited for 15 minutes" in caplog.text


# -- deletes ---------------------------------------------------------------------------


async def test_delete_for_everyone_drops_content_file_and_reactions(
    pair: Pair, tmp_path: Path
) -> None:
    await pair.exchange(pair.alice, "oops", at=T0)
    received = only(pair.bob, ALICE)
    saved = tmp_path / "media" / "oops.jpg"
    saved.parent.mkdir()
    saved.write_bytes(b"\xff\xd8\xff picture")
    pair.bob.store.messages.set_file(received.id, saved)
    await pair.exchange(pair.bob, Reaction(received.target, "😮"), at=T0 + 500)

    (event,) = await pair.exchange(pair.alice, Delete(received.target), at=T0 + 1000)

    assert isinstance(event, MessageDeleted)
    assert (event.by, event.deleted_by) == ("author", ALICE)
    gone = only(pair.bob, ALICE)
    assert (gone.text, gone.content, gone.file, gone.reactions) == (actions.DELETED, None, None, ())
    assert gone.deleted == "author"
    assert not saved.exists()
    assert only(pair.alice, BOB).deleted == "author"
    # nothing acts on it any more
    assert await pair.exchange(pair.bob, Reaction(received.target, "👍"), at=T0 + 2000) == []
    assert await pair.exchange(pair.alice, Edit(received.target, "back"), at=T0 + 3000) == []
    assert only(pair.bob, ALICE).text == actions.DELETED


async def test_only_the_author_deletes_in_a_chat_and_within_48_hours(pair: Pair) -> None:
    await pair.exchange(pair.alice, "keep", at=T0)
    target = only(pair.alice, BOB).target

    assert await pair.exchange(pair.bob, Delete(target), at=T0 + 1000) == []
    late = T0 + actions.RULES.delete_window_s * 1000 + 1
    assert await pair.exchange(pair.alice, Delete(target), at=late) == []

    assert only(pair.bob, ALICE).text == "keep"


async def test_an_action_from_another_conversation_is_dropped(pair: Pair) -> None:
    # Alice's message to herself (another conversation) named in Bob's chat
    await pair.exchange(pair.alice, "to Bob")
    foreign = pair.bob.store.messages.add(
        peer="g:" + "f" * 32,
        direction=only(pair.bob, ALICE).direction,
        sender=ALICE,
        client_id="elsewhere",
        text="in a group",
        ts=T0,
        state=only(pair.bob, ALICE).state,
    )
    assert foreign is not None

    assert await pair.exchange(pair.alice, Delete(foreign.target)) == []

    assert pair.bob.store.messages.get(ALICE, "elsewhere").deleted is None  # type: ignore[union-attr]


# -- disappearing messages -------------------------------------------------------------


async def test_a_timer_change_is_shown_and_carried_by_every_later_message(pair: Pair) -> None:
    day = 24 * 3600
    events = await pair.exchange(pair.bob, TimerChange(day))

    assert TimerChanged(BOB, day, BOB) in events
    assert pair.alice.store.messages.timer_of(BOB) == day
    assert pair.bob.store.messages.timer_of(ALICE) == day
    assert mine(pair.alice, BOB)[-1].text == "⏱ disappearing messages: 24 hours"

    outgoing = await pair.alice.send_to(pair.contact(pair.alice, BOB), "gone tomorrow")
    assert outgoing.entries[0].ttl == day
    assert outgoing.entries[0].frame()["ttl"] == day
    assert outgoing.message.timer == day
    pair.clock += 1000
    pair.deliver(pair.bob, pair.envelope(outgoing.entries[0], pair.alice))
    assert mine(pair.bob, ALICE)[-1].timer == day


async def test_disappearing_messages_go_from_every_device_when_their_time_is_up(
    pair: Pair,
) -> None:
    day = 24 * 3600
    await pair.exchange(pair.alice, TimerChange(day))
    envelope = await pair.send(pair.alice, "secret")
    pair.deliver(pair.bob, envelope)
    sent = mine(pair.alice, BOB)[-1]
    received = mine(pair.bob, ALICE)[-1]
    # Alice's runs from sending (the engine's clock: 2000 s); Bob's only once read
    assert sent.expires_at == 2000 * 1000 + day * 1000
    assert received.expires_at is None

    pair.bob.mark_read(pair.contact(pair.bob, ALICE))  # Bob's engine clock: 2000 s
    started = pair.bob.store.messages.by_id(received.id)
    assert started is not None
    assert started.expires_at == 2000 * 1000 + day * 1000

    assert actions.sweep(pair.bob.store, now=2000.0 + day - 1) == []
    (gone,) = actions.sweep(pair.bob.store, now=2000.0 + day)
    assert isinstance(gone, MessageDisappeared)
    assert gone.message.text == "secret"
    assert [m.text for m in mine(pair.bob, ALICE)] == ["⏱ disappearing messages: 24 hours"]
    (mine_gone,) = actions.sweep(pair.alice.store, now=2000.0 + day)
    assert mine_gone.message.text == "secret"
    # delivered again (a retry), it stays gone
    assert not pair.bob.receive(envelope).stored
    assert "secret" not in [m.text for m in mine(pair.bob, ALICE)]


def test_a_timer_is_one_of_the_choices() -> None:
    with pytest.raises(ContentError):
        TimerChange(3600)
    assert TimerChange(0).seconds == 0


# -- whatever the order, the same end ----------------------------------------------------


async def _every_order_ends_the_same(
    pair: Pair, tmp_path: Path, envelopes: list[IncomingMessage], check: object
) -> int:
    """Deliver `envelopes` to a fresh copy of Bob's device in every order, each one
    twice; `check(engine)` the end state. How many orders were tried."""
    pair.bob.store.close()
    source = pair.bob.store.path.parent
    tried = 0
    for n, order in enumerate(itertools.permutations(envelopes)):
        copy = tmp_path / f"bob-order-{n}"
        shutil.copytree(source, copy)
        store = Store.open(copy, keyring=None, allow_plaintext=True)
        engine = Engine(store, pair.bob.sealer._fetch, clock=lambda: 2000.0)
        for envelope in (*order, order[0]):
            engine.receive(envelope)
        check(engine)  # type: ignore[operator]
        store.close()
        shutil.rmtree(copy)
        tried += 1
    return tried


async def test_edits_and_reactions_in_any_order_and_twice_end_the_same(
    pair: Pair, tmp_path: Path
) -> None:
    text = await pair.send(pair.alice, "v1", at=T0)
    target = Target(ALICE, text.client_id)
    envelopes = [
        text,
        await pair.send(pair.alice, Edit(target, "v2"), at=T0 + 2000),
        await pair.send(pair.alice, Reaction(target, "🎉"), at=T0 + 3000),
        await pair.send(pair.alice, Edit(target, "v3"), at=T0 + 4000),
    ]

    def check(engine: Engine) -> None:
        shown = only(engine, ALICE)
        assert (shown.text, shown.edited_at, shown.reactions) == ("v3", T0 + 4000, ((ALICE, "🎉"),))

    assert await _every_order_ends_the_same(pair, tmp_path, envelopes, check) == 24


async def test_a_delete_in_any_order_is_final(pair: Pair, tmp_path: Path) -> None:
    text = await pair.send(pair.alice, "oops", at=T0)
    target = Target(ALICE, text.client_id)
    envelopes = [
        text,
        await pair.send(pair.alice, Reaction(target, "👍"), at=T0 + 1000),
        await pair.send(pair.alice, Delete(target), at=T0 + 2000),
        await pair.send(pair.alice, Edit(target, "back"), at=T0 + 3000),
    ]

    def check(engine: Engine) -> None:
        shown = only(engine, ALICE)
        assert (shown.text, shown.deleted, shown.reactions) == (actions.DELETED, "author", ())

    assert await _every_order_ends_the_same(pair, tmp_path, envelopes, check) == 24


# -- what an attacker tried (a review before landing) -----------------------------------


def test_a_quote_of_the_wrong_type_is_dropped_not_a_crash() -> None:
    for kind in ([], {}, 7, None):
        bad = {
            "v": 1,
            "kind": "text",
            "text": "x",
            "ctx": {"reply": {"author": ALICE, "id": "m1", "kind": kind, "excerpt": ""}},
        }
        with pytest.raises(payload.UnsupportedContent):
            payload.decode(json.dumps(bad).encode())


@pytest.mark.parametrize("sneaky", ["\x9b31m", "\x9d0;title\x07", "\u202egnp.exe"])
def test_c1_controls_and_reordering_are_refused_where_they_could_fool_a_reader(
    sneaky: str,
) -> None:
    with pytest.raises(ContentError):
        Quote(Target(ALICE, "m1"), "text", f"pay {sneaky}")
    with pytest.raises(ContentError):
        ContactCard(f"Carol {sneaky}", ("+15551230003",))  # a name, as a file's is
    if not sneaky.startswith("\u202e"):  # a text may be right-to-left
        with pytest.raises(ContentError):
            Text(f"hello {sneaky}")


def test_a_message_timer_is_one_of_the_choices() -> None:
    with pytest.raises(ContentError):
        Context(timer=5)
    assert Context(timer=7 * 24 * 3600).timer == 7 * 24 * 3600


async def test_an_edits_text_goes_with_the_message_it_edited(pair: Pair) -> None:
    await pair.exchange(pair.alice, "the plan", at=T0)
    target = only(pair.bob, ALICE).target
    await pair.exchange(pair.alice, Edit(target, "the secret plan"), at=T0 + 1000)
    await pair.exchange(pair.alice, Delete(target), at=T0 + 2000)

    for engine in (pair.alice, pair.bob):
        rows = engine.store.messages._db.execute(
            "SELECT COUNT(*) FROM messages WHERE action = 1"
        ).fetchone()[0]
        assert rows == 0  # the edit (and the delete) rows went with their target
    raw = pair.bob.store.path.read_bytes()
    assert b"secret plan" not in raw


async def test_actions_held_per_sender_are_bounded_and_their_rows_dropped_in_time(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "RULES", actions.ActionRules(max_held_per_sender=2))
    ghosts = [Target(ALICE, f"never{n}") for n in range(3)]
    for n, ghost in enumerate(ghosts):
        await pair.exchange(pair.alice, Reaction(ghost, "👍"), at=T0 + n)

    messages = pair.bob.store.messages
    assert messages.held_from(ALICE) == 2
    assert messages.drop_held(before=10**12) == 2
    count = messages._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert count == 0


async def test_our_edit_takes_effect_at_the_services_time_by_the_same_rules(pair: Pair) -> None:
    await pair.exchange(pair.alice, "draft", at=T0)
    mine = only(pair.alice, BOB)
    late = T0 + actions.RULES.edit_window_s * 1000 + 1
    outgoing = await pair.alice.send_to(pair.contact(pair.alice, BOB), Edit(mine.target, "final"))
    assert only(pair.alice, BOB).text == "draft"  # not before the service has it

    events = pair.alice.sent(outgoing.entries[0], late)

    # the service stamped it past the window: dropped here as on Bob's device
    assert events == []
    assert only(pair.alice, BOB).text == "draft"


def _picture(media_id: str) -> Attachment:
    return Attachment(
        kind="image",
        media_id=media_id,
        key=bytes(32),
        header=bytes(24),
        sha256="0" * 64,
        size=10,
        mime="image/jpeg",
        name="p.jpg",
    )


async def test_a_file_forwarded_on_is_kept_while_another_message_points_to_it(pair: Pair) -> None:
    media = "ab" * 16
    first = await pair.alice.send_to(pair.contact(pair.alice, BOB), _picture(media))
    messages = pair.alice.store.messages
    assert not messages.shares_file(ALICE, media, first.message.id)

    copy = await pair.alice.send_to(
        pair.contact(pair.alice, BOB), with_context(_picture(media), Context(forwarded=1))
    )

    assert messages.shares_file(ALICE, media, first.message.id)
    assert not messages.shares_file(ALICE, "cd" * 16, first.message.id)
    messages.delete_for_everyone(copy.message.id, "author", actions.DELETED)
    assert not messages.shares_file(ALICE, media, first.message.id)


async def test_an_admin_by_the_services_list_alone_deletes_nothing(pair: Pair) -> None:
    group_id = "a" * 32
    # Bob is listed as an admin by the service, and no signed chain says so
    listed = Group(group_id, "g", 1, (ALICE, BOB), admins=(ALICE, BOB), unverified=())
    pair.alice.store.groups.save(listed, 2000.0)
    mine_there = pair.alice.store.messages.add(
        peer=listed.conversation,
        direction=Direction.OUT,
        sender=ALICE,
        client_id="m1",
        text="mine",
        ts=T0,
        state=MessageState.SENT,
    )
    assert mine_there is not None
    admins = partial(signed_admin, pair.alice.store)

    refused = actions.delete_refused_or_by(mine_there, BOB, T0 + 1, admins)

    assert refused == "only its author or a group admin deletes a message for everyone"
    assert actions.delete_refused_or_by(mine_there, ALICE, T0 + 1, admins) == "author"


async def test_a_quote_shows_the_message_as_it_is_here_not_as_the_replier_says(
    pair: Pair,
) -> None:
    await pair.exchange(pair.alice, "see you at 8", at=T0)
    real = only(pair.bob, ALICE)
    forged = Quote(real.target, "text", "I owe Bob ₹50,000")
    reply = with_context(Text("ok, noted"), Context(reply=forged))
    await pair.exchange(pair.bob, reply, at=T0 + 1000)
    shown = mine(pair.alice, BOB)[-1]
    bob = pair.contact(pair.alice, BOB)

    line = render_message(shown, bob, color=False, find=pair.alice.store.messages.find)
    unknown = render_message(shown, bob, color=False, find=lambda _target: None)

    assert "┌ you: “see you at 8”" in line
    assert "I owe Bob" not in line
    assert "“I owe Bob ₹50,000” (as quoted; not on this device)" in unknown


async def test_a_disappearing_message_not_sent_before_its_time_never_goes(pair: Pair) -> None:
    day = 24 * 3600
    await pair.exchange(pair.alice, TimerChange(day))
    outgoing = await pair.alice.send_to(pair.contact(pair.alice, BOB), "offline, then gone")
    queued = {item.entry.client_id for item in pair.alice.store.outbox.items()}
    assert outgoing.entries[0].client_id in queued

    (gone,) = actions.sweep(pair.alice.store, now=2000.0 + day)

    assert gone.message.client_id == outgoing.message.client_id
    queued = {item.entry.client_id for item in pair.alice.store.outbox.items()}
    assert outgoing.entries[0].client_id not in queued
