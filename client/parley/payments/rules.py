"""Which answers count for a payment request, and so what its status is.

An answer (a `payment_status` message) counts for a request (a `payment`
message) when it:
- is a reply quoting that very request (its author and client id);
- carries the request's reference (`ref`, the link's `tr`);
- is in the same conversation;
- comes from someone other than the requester: in a chat the other person, in a
  group any other member. The requester cannot mark their own request paid.

Any other answer is still shown as a message (quoting what it quotes), but does
not change a status. A person may answer again (declined, then paid): their
latest answer (server time) is the one that counts. A request's status is its
most recent counting answer; in a group each member's latest answer is kept.
"""

from __future__ import annotations

from collections.abc import Iterable

from parley.content import Payment, PaymentStatus
from parley.models import Message, PaymentAnswer

__all__ = ["answer_of", "latest_answers"]


def answer_of(request: Message, answer: Message) -> PaymentAnswer | None:
    """`answer` as an answer to `request`, if it counts for it (None otherwise)."""
    asked, said = request.content, answer.content
    if not isinstance(asked, Payment) or not isinstance(said, PaymentStatus):
        return None  # also a request or an answer deleted for everyone (no content)
    quote = answer.reply_to
    if quote is None or quote.target != request.target or said.ref != asked.ref:
        return None
    if answer.peer != request.peer or answer.sender == request.sender:
        return None
    return PaymentAnswer(answer.sender, said.status, said.txn, answer.ts, answer.id)


def latest_answers(request: Message, answers: Iterable[Message]) -> tuple[PaymentAnswer, ...]:
    """The answers to `request` that count, each person's latest, oldest first."""
    latest: dict[str, PaymentAnswer] = {}
    for answer in answers:
        counted = answer_of(request, answer)
        if counted is None:
            continue
        before = latest.get(counted.by)
        if before is None or (counted.ts, counted.message_id) > (before.ts, before.message_id):
            latest[counted.by] = counted
    return tuple(sorted(latest.values(), key=lambda a: (a.ts, a.message_id)))
