"""How the `parley` command shows a UPI payment request: under its message line, the
VPA and amount, the `upi://pay` link, its QR code while nobody has answered (to
scan with a UPI app; `parley pay show ID` draws it any time), and its status."""

from __future__ import annotations

from parley.cli.qr import qr_lines
from parley.content import Payment, PaymentStatus
from parley.models import Message

__all__ = ["payment_lines", "request_lines", "status_label"]

GREEN = "\x1b[32m"
RED = "\x1b[31m"
YELLOW = "\x1b[33m"
RESET = "\x1b[0m"


def status_label(status: str | None, *, color: bool) -> str:
    """paid / declined / waiting for an answer, coloured on a terminal."""
    if status == "paid":
        text, tint = "✅ marked paid", GREEN
    elif status == "declined":
        text, tint = "❌ declined", RED
    else:
        text, tint = "⏳ not answered yet", YELLOW
    return f"{tint}{text}{RESET}" if color else text


def request_lines(request: Payment, *, qr: bool) -> list[str]:
    """Who to pay, how much, the link, and (with `qr`) its QR code."""
    lines = [f"pay {request.shown_amount} to {request.vpa} ({request.name})", request.uri()]
    return lines + qr_lines(request.uri()) if qr else lines


def payment_lines(message: Message, *, color: bool, qr: bool | None = None) -> list[str]:
    """The lines under a payment request (link, QR code while unanswered, status) or
    under an answer (its transaction id); none for any other message. `qr` forces
    the QR code on or off."""
    content = message.content
    if message.deleted is not None:
        return []
    if isinstance(content, PaymentStatus):
        return [f"UPI transaction id {content.txn}"] if content.txn else []
    if not isinstance(content, Payment):
        return []
    status = message.payment_status
    lines = request_lines(content, qr=status is None if qr is None else qr)
    answers = message.payment_answers
    if len(answers) > 1:  # a group: each member's latest answer
        lines.append(f"{sum(a.status == 'paid' for a in answers)} of {len(answers)} answers: paid")
    lines.append(status_label(status, color=color))
    if answers and answers[-1].txn:
        lines[-1] += f" (UPI transaction id {answers[-1].txn})"
    return lines
