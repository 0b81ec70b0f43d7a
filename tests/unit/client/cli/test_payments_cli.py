"""`parley pay` and how history shows a payment request: the upi:// link and its QR
code, the status, and your own UPI ID. The SDK is a stand-in here: what is checked
is what the commands ask of it and what they print."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import pytest

from parley.cli import main
from parley.cli.commands.payments import NO_MONEY
from parley.cli.context import Context
from parley.cli.payments_view import payment_lines
from parley.cli.qr import qr_lines
from parley.cli.render import render_message
from parley.content import Context as Relations
from parley.content import Payment, PaymentStatus, Quote, Target, with_context
from parley.content.payment import PaymentAddress
from parley.conversations.payload import describe
from parley.errors import ParleyClientError
from parley.models import (
    Account,
    Contact,
    Direction,
    Message,
    MessageState,
    PaymentAnswer,
)

ALICE, BOB = "a" * 32, "b" * 32
REF = "9f2c4e1a7b3d5c6e8f01"
LINK = f"upi://pay?pa=asha@okaxis&pn=Asha%20Rao&am=250.00&cu=INR&tn=dinner&tr={REF}"
REQUEST = Payment("asha@okaxis", "Asha Rao", Decimal("250.00"), "dinner", REF)


def message(content: Any, **changes: Any) -> Message:
    fields: dict[str, Any] = {
        "id": 7,
        "peer": BOB,
        "direction": Direction.OUT,
        "client_id": "c7",
        "sender": ALICE,
        "text": describe(content),
        "ts": 1_700_000_000_000,
        "state": MessageState.SENT,
        "content": content,
    }
    return Message(**{**fields, **changes})


@dataclass
class FakeClient:
    """What `parley pay` calls on `parley.Client`, recorded."""

    account: Account = field(default_factory=lambda: Account(ALICE, "a1" * 8, "+15550000001"))
    address: PaymentAddress | None = None
    stored: dict[int, Message] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def conversation(self, key: str) -> Contact:
        return Contact(BOB, key, "+15550000002")

    def payment_address(self) -> PaymentAddress | None:
        return self.address

    def set_payment_address(self, vpa: str | None, name: str | None = None) -> Any:
        self.calls.append(("set_payment_address", vpa, name))
        self.address = None if vpa is None else PaymentAddress(vpa, name)
        return self.address

    async def request_payment(self, to: Contact, amount: str, note: str | None, **kw: Any) -> Any:
        self.calls.append(("request_payment", to.name, amount, note, kw))
        sent = message(replace(REQUEST, amount=Decimal(amount), note=note))
        self.stored[sent.id] = sent
        return sent

    async def answer_payment(self, message_id: int, status: str, txn: str | None) -> Message:
        self.calls.append(("answer_payment", message_id, status, txn))
        quote = Quote(Target(BOB, "c3"), "payment", "💸")
        answer = with_context(PaymentStatus(REF, status, txn), Relations(reply=quote))  # type: ignore[arg-type]
        sent = message(answer, id=8)
        self.stored[sent.id] = sent
        return sent

    async def wait_outbox_empty(self) -> None:
        self.calls.append(("wait_outbox_empty",))

    def message(self, message_id: int) -> Message:
        if message_id not in self.stored:
            raise ParleyClientError(f"no message {message_id} in this profile")
        return self.stored[message_id]

    def member_name(self, user_id: str) -> str:
        return "Bob" if user_id == BOB else user_id


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    fake = FakeClient()

    @contextlib.asynccontextmanager
    async def opened_client(
        self: Context, *, connect: bool, online: bool = False
    ) -> AsyncIterator[FakeClient]:
        yield fake

    monkeypatch.setattr(Context, "opened", opened_client)
    return fake


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_pay_request_prints_the_link_and_its_qr_code(client: FakeClient) -> None:
    code, out = run("pay", "request", "Bob", "250", "--note", "dinner")
    assert code == 0
    assert client.calls[0] == (
        "request_payment",
        "Bob",
        "250",
        "dinner",
        {"vpa": None, "name": None},
    )
    lines = out.splitlines()
    assert lines[0] == "✓ 💸 Asha Rao requests ₹250.00: dinner"
    assert lines[1] == "  pay ₹250.00 to asha@okaxis (Asha Rao)"
    assert lines[2] == f"  {LINK}"
    qr = qr_lines(LINK)
    assert lines[3 : 3 + len(qr)] == [f"  {row}" for row in qr]
    assert lines[3 + len(qr) :] == ["  ⏳ not answered yet", NO_MONEY]


def test_pay_request_passes_the_vpa_and_payee_given(client: FakeClient) -> None:
    run("pay", "request", "Bob", "99.5", "--vpa", "ravi@ybl", "--name", "Ravi")
    assert client.calls[0][-1] == {"vpa": "ravi@ybl", "name": "Ravi"}


def test_pay_answer_sends_the_status(client: FakeClient) -> None:
    code, out = run("pay", "answer", "7", "paid", "--txn", "412345678901")
    assert code == 0
    assert client.calls[0] == ("answer_payment", 7, "paid", "412345678901")
    assert out.splitlines() == ["✓ ✅ Paid"]
    with pytest.raises(SystemExit):
        run("pay", "answer", "7", "maybe")


def test_pay_vpa_shows_sets_and_clears_your_upi_id(client: FakeClient) -> None:
    assert run("pay", "vpa")[1].startswith("No UPI ID set.")
    code, out = run("pay", "vpa", "asha@okaxis", "--name", "Asha Rao")
    assert code == 0
    assert client.calls[-1] == ("set_payment_address", "asha@okaxis", "Asha Rao")
    assert out.splitlines()[0] == "Your UPI ID: asha@okaxis (Asha Rao)"
    assert run("pay", "vpa")[1] == "Your UPI ID: asha@okaxis (Asha Rao)\n"
    run("pay", "vpa", "--name", "Asha R")  # the name alone: the VPA stays
    assert client.calls[-1] == ("set_payment_address", "asha@okaxis", "Asha R")
    run("pay", "vpa", "--clear")
    assert client.address is None


def test_pay_show_draws_a_request_again_with_its_answers(client: FakeClient) -> None:
    answered = message(REQUEST, payment_answers=(PaymentAnswer(BOB, "paid", "41234567", 1, 8),))
    client.stored[7] = answered
    code, out = run("pay", "show", "7")
    assert code == 0
    assert f"  {LINK}" in out.splitlines()
    assert out.splitlines()[-1] == "  Bob: ✅ marked paid (UPI transaction id 41234567)"
    client.stored[8] = replace(message(REQUEST, id=8), content=None, deleted="author")
    assert run("pay", "show", "8")[0] == 1


# -- in history and chat --------------------------------------------------------------------------


def test_history_shows_an_open_request_with_its_qr_code_under_the_line() -> None:
    bob = Contact(BOB, "Bob", None)
    shown = render_message(message(REQUEST), bob, color=False).splitlines()
    assert shown[0].endswith("you: 💸 Asha Rao requests ₹250.00: dinner  ✓")
    pad = " " * shown[0].index("  you:")
    assert shown[1] == f"{pad}    pay ₹250.00 to asha@okaxis (Asha Rao)"
    assert shown[2] == f"{pad}    {LINK}"
    assert shown[-1] == f"{pad}    ⏳ not answered yet"
    assert len(shown) == 4 + len(qr_lines(LINK))


def test_an_answered_request_shows_its_status_and_no_qr_code() -> None:
    paid = message(REQUEST, payment_answers=(PaymentAnswer(BOB, "paid", "41234567", 1, 8),))
    assert payment_lines(paid, color=False) == [
        "pay ₹250.00 to asha@okaxis (Asha Rao)",
        LINK,
        "✅ marked paid (UPI transaction id 41234567)",
    ]
    declined = replace(paid, payment_answers=(PaymentAnswer(BOB, "declined", None, 1, 8),))
    assert payment_lines(declined, color=True)[-1] == "\x1b[31m❌ declined\x1b[0m"
    assert payment_lines(message(PaymentStatus(REF, "paid", "41234567")), color=False) == [
        "UPI transaction id 41234567"
    ]
    assert (
        payment_lines(replace(message(REQUEST), content=None, deleted="author"), color=False) == []
    )
