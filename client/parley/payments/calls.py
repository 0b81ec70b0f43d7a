"""The payment calls of `parley.Client`: ask to be paid through UPI, answer a
request "paid" or "declined", read a request's status, and keep this user's own
UPI ID (VPA) to fill their requests.

Parley moves no money: a request is a message carrying a `upi://pay` link; the
payer's own UPI app makes the payment; the answer is what the payer says
happened, not a confirmation from any bank. See `parley.payments`.
"""

from __future__ import annotations

from decimal import Decimal

from parley.content import (
    Context,
    Payment,
    PaymentStatus,
    Quote,
    excerpt_of,
    parse_amount,
    with_context,
)
from parley.content.payment import PaymentAddress, PaymentStatusName
from parley.errors import ParleyClientError
from parley.facade import ProfileFacade
from parley.ids import group_id_of
from parley.models import Contact, Group, Message, PaymentAnswer

__all__ = ["PaymentCalls", "PaymentRefused"]


class PaymentRefused(ParleyClientError):
    """This payment request or answer cannot be sent (the reason says why)."""


class PaymentCalls(ProfileFacade):
    """UPI payment requests and their answers, for a facade that sends."""

    # --- this user's own UPI ID ------------------------------------------------------------

    def payment_address(self) -> PaymentAddress | None:
        """This user's UPI ID (VPA) and payee name, if set (on this device only)."""
        return self.store.payment_address.get()

    def set_payment_address(
        self, vpa: str | None, name: str | None = None
    ) -> PaymentAddress | None:
        """Keep this user's UPI ID (`vpa`, e.g. "asha@okaxis") and the name their UPI
        app shows for it, to fill their payment requests; None forgets them.
        `parley.content.ContentError` (a ValueError) for a malformed VPA or name."""
        address = None if vpa is None else PaymentAddress(vpa.strip(), _optional(name))
        self.store.payment_address.set(address)
        return address

    # --- requests and answers ----------------------------------------------------------------

    async def request_payment(
        self,
        to: str | Contact | Group,
        amount: Decimal | str | int,
        note: str | None = None,
        *,
        vpa: str | None = None,
        name: str | None = None,
    ) -> Message:
        """Ask `to` (a contact, or everyone in a group) to pay `amount` rupees (a
        Decimal or text such as "250" or "250.50": never a float) through UPI, to
        `vpa` (default: this user's, `set_payment_address`) under the payee name
        `name` (default: the one kept with it), with an optional `note` (at most 50
        characters). Returns the message; its content's `uri()` is the `upi://pay`
        link. `parley.content.ContentError` for a bad VPA, amount or note;
        PaymentRefused when no VPA or payee name is known."""
        saved = self.payment_address()
        vpa = vpa.strip() if vpa else saved.vpa if saved else None
        if vpa is None:
            raise PaymentRefused(
                "no UPI ID to be paid at: set yours first (set_payment_address) or pass vpa"
            )
        name = _optional(name) or (saved.name if saved is not None else None)
        if name is None:
            raise PaymentRefused(
                "a payment request needs the payee name your UPI app shows for your UPI ID"
            )
        request = Payment(vpa, name, parse_amount(amount), _optional(note))
        return await self.send_content(to, request)

    async def answer_payment(
        self, message: Message | int, status: PaymentStatusName, txn: str | None = None
    ) -> Message:
        """Tell the requester how their payment request went: "paid" (after paying in
        your UPI app; `txn`: the UPI transaction id it shows, if you want to give it)
        or "declined". Sent as a reply to the request, in its conversation. Refused
        for your own request, or a message that is not a payment request."""
        request = self.message(message if isinstance(message, int) else message.id)
        if request.deleted is not None:
            raise PaymentRefused("the payment request was deleted")
        if not isinstance(request.content, Payment):
            raise PaymentRefused(f"message {request.id} is not a payment request")
        if request.sender == self.account.user_id:
            raise PaymentRefused("a payment request is answered by who was asked to pay")
        answer = PaymentStatus(request.content.ref, status, _optional(txn))
        quote = Quote(request.target, request.kind, excerpt_of(request.text))
        group_id = group_id_of(request.peer)
        where = self.conversation(group_id if group_id is not None else request.peer)
        return await self.send_content(where, with_context(answer, Context(reply=quote)))

    def payment_status(self, message: Message | int) -> str | None:
        """A payment request's status as its latest answer says: "paid", "declined",
        or None while nobody has answered (in a group: whoever answered last)."""
        return self.message(message if isinstance(message, int) else message.id).payment_status

    def payment_answers(self, message: Message | int) -> tuple[PaymentAnswer, ...]:
        """Every answer that counts for a payment request: each payer's latest
        (who, "paid"/"declined", the transaction id they gave, when), oldest first."""
        request = self.message(message if isinstance(message, int) else message.id)
        return request.payment_answers


def _optional(text: str | None) -> str | None:
    return text.strip() or None if text is not None else None
