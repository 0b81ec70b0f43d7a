"""What an answer to a payment request does when it is stored: `PaymentAnswered`,
if it counts for the request (parley.payments.rules). The status itself is not
stored: it is read from the answers whenever the request is (`Message.payment_answers`),
so an answer that arrives before its request still counts once the request is here."""

from __future__ import annotations

import logging

from parley.content import PaymentStatus
from parley.models import Event, Message, PaymentAnswered
from parley.payments.rules import answer_of
from parley.store import Store

__all__ = ["answered"]

log = logging.getLogger("parley.payments")


def answered(store: Store, answer: Message) -> list[Event]:
    """The event of `answer` (a payment status just stored), if it counts and is its
    author's latest answer; nothing otherwise (it still shows as a message)."""
    if not isinstance(answer.content, PaymentStatus) or answer.reply_to is None:
        return []
    request = store.messages.find(answer.reply_to.target)
    if request is None:
        return []  # not here (yet): it counts once it comes
    counted = answer_of(request, answer)
    if counted is None:
        log.info("payment answer %s from %s does not count", answer.client_id, answer.sender)
        return []
    updated = store.messages.by_id(request.id)
    if updated is None or counted not in updated.payment_answers:
        return []  # an older answer of theirs, arriving late
    return [PaymentAnswered(updated, counted.status, counted.by, counted.txn, answer)]
