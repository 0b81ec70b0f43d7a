"""`parley pay`: UPI payment requests. `request` asks a contact or a group to pay
(printing the `upi://pay` link and its QR code), `answer` tells the requester
"paid" or "declined", `show` draws a request's link and QR code again, and `vpa`
shows or sets your own UPI ID. Parley moves no money: the payer's UPI app does."""

from __future__ import annotations

import asyncio

from parley.cli.context import Context
from parley.cli.payments_view import payment_lines, request_lines, status_label
from parley.cli.render import render_content, ticks, warn
from parley.client import Client
from parley.content import Payment
from parley.errors import ParleyClientError
from parley.models import Contact, Message

__all__ = ["NO_MONEY", "SEND_WAIT_S", "pay"]

SEND_WAIT_S = 15.0
NO_MONEY = (
    "Parley moves no money: the payer pays in their own UPI app (the link or the QR code), "
    "then marks it paid or declined here."
)


async def pay(ctx: Context) -> None:
    command = ctx.args.pay_command
    if command == "request":
        await _request(ctx)
    elif command == "answer":
        await _answer(ctx)
    elif command == "show":
        await _show(ctx)
    else:
        await _vpa(ctx)


async def _request(ctx: Context) -> None:
    args = ctx.args
    async with ctx.opened(connect=True) as client:
        target = client.conversation(args.name)
        if isinstance(target, Contact) and target.identity_changed:
            ctx.print(warn(f"{target.display_name}'s identity key changed", color=ctx.color))
        message = await client.request_payment(
            target, args.amount, args.note, vpa=args.vpa, name=args.payee
        )
        final = await _sent(ctx, client, message)
        for line in payment_lines(final, color=ctx.color, qr=True):
            ctx.print(f"  {line}")
        ctx.print(NO_MONEY)


async def _answer(ctx: Context) -> None:
    args = ctx.args
    async with ctx.opened(connect=True) as client:
        message = await client.answer_payment(args.message_id, args.status, args.txn)
        await _sent(ctx, client, message)


async def _sent(ctx: Context, client: Client, message: Message) -> Message:
    """Wait (a while) for the service to have `message`; print its line with ticks."""
    try:
        async with asyncio.timeout(SEND_WAIT_S):
            await client.wait_outbox_empty()
    except TimeoutError:
        ctx.print("Queued: no connection to the service; it goes out next time.")
    final = client.message(message.id)
    ctx.print(f"{ticks(final.state, color=ctx.color)} {render_content(final)}".strip())
    return final


async def _show(ctx: Context) -> None:
    async with ctx.opened(connect=False) as client:
        message = client.message(ctx.args.message_id)
        if not isinstance(message.content, Payment) or message.deleted is not None:
            raise ParleyClientError(f"message {message.id} is not a payment request")
        ctx.print(render_content(message))
        for line in request_lines(message.content, qr=True):
            ctx.print(f"  {line}")
        for answer in message.payment_answers:
            who = "you" if answer.by == client.account.user_id else client.member_name(answer.by)
            txn = f" (UPI transaction id {answer.txn})" if answer.txn else ""
            ctx.print(f"  {who}: {status_label(answer.status, color=ctx.color)}{txn}")
        if not message.payment_answers:
            ctx.print(f"  {status_label(None, color=ctx.color)}")


async def _vpa(ctx: Context) -> None:
    args = ctx.args
    async with ctx.opened(connect=False) as client:
        saved = client.payment_address()
        if args.clear:
            client.set_payment_address(None)
            ctx.print("Your UPI ID is no longer kept on this device.")
            return
        if args.vpa is None and args.payee is None:
            if saved is None:
                ctx.print("No UPI ID set. Set yours: parley pay vpa NAME@BANK --name 'Your Name'")
            else:
                ctx.print(f"Your UPI ID: {saved.vpa} ({saved.name or 'no payee name set'})")
            return
        vpa = args.vpa or (saved.vpa if saved is not None else None)
        if vpa is None:
            raise ParleyClientError("give your UPI ID too: parley pay vpa NAME@BANK --name NAME")
        name = args.payee if args.payee is not None else saved.name if saved else None
        address = client.set_payment_address(vpa, name)
        assert address is not None
        ctx.print(f"Your UPI ID: {address.vpa} ({address.name or 'no payee name set'})")
        ctx.print("It fills your payment requests; it stays on this device.")
