"""UPI payment requests between two real engines and stores (no network), through the
SDK's payment calls: a request arrives, the payer answers, the requester's request
shows the answer; what does not count (the requester's own answer, an answer to
something else, another reference) is shown but changes nothing. And which answers
count in a group, on made-up messages."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from parley.content import (
    Content,
    ContentError,
    Context,
    Payment,
    PaymentStatus,
    Quote,
    Target,
    Text,
    excerpt_of,
    with_context,
)
from parley.engine import Engine
from parley.models import (
    Account,
    Contact,
    Direction,
    Group,
    Message,
    MessageReceived,
    MessageState,
    PaymentAnswer,
    PaymentAnswered,
)
from parley.payments.calls import PaymentCalls, PaymentRefused
from parley.payments.rules import latest_answers
from parley.protocol import IncomingMessage
from parley.store import Store
from tests.unit.client.conversations.test_actions import T0, Pair, mine
from tests.unit.client.fakes import KeyServer
from tests.unit.client.test_engine import ALICE, ALICE_DEV, BOB, BOB_DEV, CAROL, make_engine


class Device(PaymentCalls):
    """`parley.Client`'s payment calls over one engine of the pair: what it sends goes
    into `outbox`, for the test to deliver."""

    def __init__(self, pair: Pair, engine: Engine) -> None:
        self.pair, self.engine = pair, engine
        self.outbox: list[IncomingMessage] = []

    @property
    def store(self) -> Store:
        return self.engine.store

    @property
    def account(self) -> Account:
        return self.engine.account

    def message(self, message_id: int) -> Message:
        found = self.store.messages.by_id(message_id)
        assert found is not None
        return found

    def conversation(self, key: str | Contact | Group) -> Contact | Group:
        assert isinstance(key, str)
        return self.pair.contact(self.engine, key)

    async def send_content(self, to: str | Contact | Group, content: str | Content) -> Message:
        self.outbox.append(await self.pair.send(self.engine, content))
        return mine(self.engine, BOB if self.engine is self.pair.alice else ALICE)[-1]

    def deliver(self, to: Device) -> list[object]:
        return self.pair.deliver(to.engine, self.outbox.pop(0))


@pytest.fixture
async def devices(tmp_path: Path) -> tuple[Device, Device]:
    directory = KeyServer()
    alice = await make_engine(tmp_path, directory, ALICE, ALICE_DEV)
    alice.store.contacts.add(BOB, "Bob", "+15550000002")
    bob = await make_engine(tmp_path, directory, BOB, BOB_DEV)
    pair = Pair(alice, bob)
    return Device(pair, alice), Device(pair, bob)


async def test_a_request_arrives_and_its_answer_shows_on_both_sides(
    devices: tuple[Device, Device],
) -> None:
    alice, bob = devices
    alice.set_payment_address("asha@okaxis", "Asha Rao")
    sent = await alice.request_payment(BOB, "250", "dinner")
    (received,) = alice.deliver(bob)

    assert isinstance(received, MessageReceived)
    asked = received.message
    assert isinstance(asked.content, Payment)
    assert asked.content.uri().startswith("upi://pay?pa=asha@okaxis&pn=Asha%20Rao&am=250.00")
    assert asked.text == "💸 Asha Rao requests ₹250.00: dinner"
    assert asked.payment_status is None
    assert sent.content == asked.content

    answer = await bob.answer_payment(asked, "paid", "412345678901")
    assert answer.reply_to == Quote(asked.target, "payment", excerpt_of(asked.text))
    assert bob.payment_status(asked.id) == "paid"  # applied on the payer's side at once
    shown, event = bob.deliver(alice)

    assert isinstance(shown, MessageReceived)
    assert shown.message.text == "✅ Paid"
    assert isinstance(event, PaymentAnswered)
    assert (event.status, event.by, event.txn) == ("paid", BOB, "412345678901")
    assert event.request.id == sent.id
    assert event.request.payment_status == "paid"
    assert alice.payment_status(sent) == "paid"
    (counted,) = alice.payment_answers(sent)
    assert counted == PaymentAnswer(BOB, "paid", "412345678901", event.answer.ts, event.answer.id)
    # both show the request, then the answer quoting it
    assert [m.kind for m in mine(alice.engine, BOB)] == ["payment", "payment_status"]


async def test_the_latest_answer_counts_even_when_an_older_one_arrives_late(
    devices: tuple[Device, Device],
) -> None:
    alice, bob = devices
    sent = await alice.request_payment(BOB, Decimal("99.50"), vpa="asha@okaxis", name="Asha")
    alice.deliver(bob)
    asked = mine(bob.engine, ALICE)[-1]
    await bob.answer_payment(asked.id, "declined")
    await bob.answer_payment(asked.id, "paid")
    older, newer = bob.outbox

    bob.outbox = [newer, older]
    bob.deliver(alice)
    assert alice.payment_status(sent) == "paid"
    late = bob.deliver(alice)
    assert not any(isinstance(e, PaymentAnswered) for e in late)  # shown, changes nothing
    assert alice.payment_status(sent) == "paid"
    assert len(alice.payment_answers(sent)) == 1


async def test_the_sdk_refuses_what_would_not_count(devices: tuple[Device, Device]) -> None:
    alice, bob = devices
    with pytest.raises(PaymentRefused, match="no UPI ID"):
        await alice.request_payment(BOB, "10")
    alice.set_payment_address("asha@okaxis")
    with pytest.raises(PaymentRefused, match="payee name"):
        await alice.request_payment(BOB, "10")
    with pytest.raises(ContentError):
        await alice.request_payment(BOB, 10.5, name="Asha")  # type: ignore[arg-type]
    with pytest.raises(ContentError):
        await alice.request_payment(BOB, "1,00,001", name="Asha")
    assert alice.outbox == []

    sent = await alice.request_payment(BOB, "10", name="Asha")
    with pytest.raises(PaymentRefused, match="who was asked to pay"):
        await alice.answer_payment(sent, "paid")
    await alice.engine.send_to(alice.pair.contact(alice.engine, BOB), "just text")
    text = mine(alice.engine, BOB)[-1]
    with pytest.raises(PaymentRefused, match="not a payment request"):
        await alice.answer_payment(text, "paid")
    alice.deliver(bob)
    asked = mine(bob.engine, ALICE)[-1]
    with pytest.raises(ContentError):
        await bob.answer_payment(asked, "pending")  # type: ignore[arg-type]
    with pytest.raises(ContentError):
        await bob.answer_payment(asked, "declined", "412345678901")


async def test_answers_that_do_not_count_are_shown_and_change_nothing(
    devices: tuple[Device, Device],
) -> None:
    alice, bob = devices
    sent = await alice.request_payment(BOB, "10", vpa="asha@okaxis", name="Asha")
    alice.deliver(bob)
    request = mine(bob.engine, ALICE)[-1]
    assert isinstance(request.content, Payment)
    ref = request.content.ref
    quote = Quote(request.target, "payment", excerpt_of(request.text))

    # the requester marking her own request paid (a client that skips the SDK's check)
    own = with_context(PaymentStatus(ref, "paid"), Context(reply=quote))
    events = alice.pair.deliver(bob.engine, await alice.pair.send(alice.engine, own))
    assert [type(e) for e in events] == [MessageReceived]
    # an answer with another reference
    wrong = with_context(PaymentStatus("0" * 20, "paid"), Context(reply=quote))
    events = bob.pair.deliver(alice.engine, await bob.pair.send(bob.engine, wrong))
    assert [type(e) for e in events] == [MessageReceived]
    # an answer "to" a text, claiming it is a payment request
    await alice.pair.exchange(alice.engine, Text("lunch?"))
    text = mine(bob.engine, ALICE)[-1]
    fake = Quote(text.target, "payment", "lunch?")
    events = await bob.pair.exchange(
        bob.engine, with_context(PaymentStatus(ref, "paid"), Context(reply=fake))
    )
    assert [type(e) for e in events] == [MessageReceived]

    assert alice.payment_status(sent) is None
    assert bob.payment_status(request) is None
    assert mine(alice.engine, BOB)[-2].payment_status is None  # the text: no status at all
    assert [m.kind for m in mine(alice.engine, BOB)] == [
        "payment",
        "payment_status",
        "payment_status",
        "text",
        "payment_status",
    ]


async def test_the_payment_address_is_kept_sealed_in_the_profile(
    devices: tuple[Device, Device],
) -> None:
    alice, _ = devices
    assert alice.payment_address() is None
    with pytest.raises(ContentError):
        alice.set_payment_address("not a vpa")
    kept = alice.set_payment_address(" asha@okaxis ", "Asha Rao")
    assert kept is not None
    assert alice.payment_address() == kept
    assert kept.vpa == "asha@okaxis"
    assert alice.set_payment_address(None) is None
    assert alice.payment_address() is None


async def test_a_request_carries_the_chats_disappearing_timer(
    devices: tuple[Device, Device],
) -> None:
    alice, _ = devices
    alice.store.messages.set_timer(BOB, 86400, ALICE, T0)
    sent = await alice.request_payment(BOB, "10", vpa="asha@okaxis", name="Asha")
    assert sent.timer == 86400


# -- which answers count, in a group ----------------------------------------------------------

GROUP = "g:" + "f" * 32
REF = "9f2c4e1a7b3d5c6e8f01"


def made(
    row: int, sender: str, content: Content, *, ts: int, peer: str = GROUP, quoted: str = "r1"
) -> Message:
    if isinstance(content, PaymentStatus):
        quote = Quote(Target(ALICE, quoted), "payment", "💸")
        content = with_context(content, Context(reply=quote))
    return Message(
        id=row,
        peer=peer,
        direction=Direction.IN,
        client_id=f"r{row}",
        sender=sender,
        text="",
        ts=ts,
        state=MessageState.RECEIVED,
        content=content,
    )


def test_in_a_group_each_members_latest_answer_counts_and_never_the_requesters() -> None:
    request = made(1, ALICE, Payment("asha@okaxis", "Asha", Decimal(300), ref=REF), ts=1)
    answers = [
        made(2, BOB, PaymentStatus(REF, "declined"), ts=2),
        made(3, CAROL, PaymentStatus(REF, "paid", "41234567"), ts=3),
        made(4, ALICE, PaymentStatus(REF, "paid"), ts=4),  # the requester herself
        made(5, BOB, PaymentStatus(REF, "paid"), ts=5),
        made(6, "d" * 32, PaymentStatus(REF, "paid"), ts=6, peer=BOB),  # another chat
        made(7, "d" * 32, PaymentStatus(REF, "paid"), ts=7, quoted="r9"),  # another request
        made(8, "d" * 32, PaymentStatus("1" * 20, "paid"), ts=8),  # another reference
    ]
    counted = latest_answers(request, answers)
    assert [(a.by, a.status, a.txn) for a in counted] == [
        (CAROL, "paid", "41234567"),
        (BOB, "paid", None),
    ]
    with_answers = replace(request, payment_answers=counted)
    assert with_answers.payment_status == "paid"
    assert latest_answers(request, reversed(answers)) == counted  # order of arrival
    deleted = replace(request, content=None, deleted="author")
    assert latest_answers(deleted, answers) == ()
