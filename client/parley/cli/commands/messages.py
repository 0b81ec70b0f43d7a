"""`parley send`, `send-location`, `send-contact`, `inbox` and `history`: sending one
message, receiving what waits, and reading a conversation back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from parley.cli.context import Context
from parley.cli.render import (
    group_event_line,
    group_label,
    identity_warning,
    notice_line,
    render_content,
    render_group_message,
    render_message,
    ticks,
    warn,
)
from parley.client import Client
from parley.conversations.payload import timer_label
from parley.models import (
    Contact,
    Event,
    Group,
    GroupUpdated,
    IdentityChanged,
    Message,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    PaymentAnswered,
    ReactionChanged,
    ReceiptUpdate,
    TimerChanged,
)

__all__ = [
    "SEND_WAIT_S",
    "action_line",
    "history",
    "inbox",
    "send",
    "send_contact",
    "send_location",
    "send_one",
]

SEND_WAIT_S = 15.0


async def send(ctx: Context) -> None:
    await send_one(ctx, lambda client, contact: client.send(contact, ctx.args.text))


async def send_location(ctx: Context) -> None:
    args = ctx.args
    await send_one(
        ctx, lambda client, contact: client.send_location(contact, args.lat, args.lon, args.place)
    )


async def send_contact(ctx: Context) -> None:
    args = ctx.args
    await send_one(
        ctx, lambda client, contact: client.send_contact(contact, args.card_name, args.phones)
    )


async def send_one(
    ctx: Context, send: Callable[[Client, Contact | Group], Coroutine[Any, Any, Message]]
) -> None:
    """Send one message of any kind, wait (a while) for the server, show its ticks."""
    async with ctx.opened(connect=True) as client:
        target = client.conversation(ctx.args.name)
        if isinstance(target, Contact) and target.identity_changed:
            ctx.print(warn(f"{target.display_name}'s identity key changed", color=ctx.color))
        message = await send(client, target)
        try:
            async with asyncio.timeout(SEND_WAIT_S):
                await client.wait_outbox_empty()
        except TimeoutError:
            ctx.print("Queued: no connection to the service; it goes out next time.")
            return
        final = client.store.messages.get(message.sender, message.client_id) or message
        ctx.print(f"{ticks(final.state, color=ctx.color)} {render_content(final)}")


async def inbox(ctx: Context) -> None:
    async with ctx.opened(connect=True) as client:
        stream = client.events()
        shown = 0
        try:
            async with asyncio.timeout(SEND_WAIT_S):
                await client.wait_synced()
                await client.wait_groups_read()  # so a new group shows by its name
            # events are handled before `synced` is, so all of them are queued by now
            for event in stream.drain():
                if isinstance(event, MessageReceived):
                    shown += 1
                    line = render_message(
                        event.message,
                        event.contact,
                        color=ctx.color,
                        find=client.store.messages.find,
                    )
                    if event.message.group_id is not None:
                        line = f"[{group_label(client, event.message.group_id)}] {line}"
                    ctx.print(line)
                elif isinstance(event, ReceiptUpdate):
                    to = (event.group or event.contact).display_name
                    for message in event.messages:
                        shown += 1
                        ctx.print(f"{ticks(event.state, color=ctx.color)} to {to}: {message.text}")
                elif (told := action_line(client, event)) is not None:
                    shown += 1  # an edit, a delete, a reaction, a timer change
                    ctx.print(told)
                elif isinstance(event, GroupUpdated):
                    shown += 1
                    ctx.print(group_event_line(client, event))
                elif isinstance(event, IdentityChanged):
                    shown += 1
                    ctx.print(identity_warning(event.contact, color=ctx.color))
                elif (notice := notice_line(event, color=ctx.color)) is not None:
                    shown += 1  # devices linked, unlinked or changed; history imported
                    ctx.print(notice)
            if not shown:
                ctx.print("Nothing new.")
        except TimeoutError:
            ctx.print("Could not reach the service.")
        finally:
            stream.close()


def action_line(client: Client, event: Event) -> str | None:
    """How `inbox` tells of an edit, a delete, a reaction, a timer change or an answer
    to a payment request (None for any other event)."""
    name = client.member_name
    if isinstance(event, MessageEdited):
        return f"{name(event.message.sender)} edited #{event.message.id}: {event.message.text}"
    if isinstance(event, MessageDeleted):
        by = "an admin" if event.by == "admin" else name(event.deleted_by)
        return f"#{event.message.id} was deleted by {by}"
    if isinstance(event, ReactionChanged):
        what = f"reacted {event.emoji} to" if event.emoji else "took back their reaction to"
        return f"{name(event.user_id)} {what} #{event.message.id}: {event.message.text}"
    if isinstance(event, TimerChanged):
        return f"{name(event.set_by)} set disappearing messages: {timer_label(event.seconds)}"
    if isinstance(event, PaymentAnswered):
        said = "marked as paid" if event.status == "paid" else "declined"
        return f"{name(event.by)} {said} your request #{event.request.id}: {event.request.text}"
    return None


async def history(ctx: Context) -> None:
    async with ctx.opened(connect=False) as client:
        target = client.conversation(ctx.args.name)
        if isinstance(target, Group):
            _print_group_history(ctx, client, target)
            return
        contact = target
        if contact.identity_changed:
            ctx.print(identity_warning(contact, color=ctx.color))
        messages = client.history(contact, ctx.args.limit)
        if not messages:
            ctx.print(f"No messages with {contact.display_name} yet.")
        for message in messages:
            ctx.print(
                render_message(message, contact, color=ctx.color, find=client.store.messages.find)
            )


def _print_group_history(ctx: Context, client: Client, group: Group) -> None:
    state = "" if group.active else " — you are no longer in it"
    ctx.print(f"Group {group.display_name} ({len(group.members)} members){state}")
    messages = client.history(group, ctx.args.limit)
    if not messages:
        ctx.print("No messages in this group yet.")
    for message in messages:
        ctx.print(render_group_message(client, message, color=ctx.color))
