"""`parley search`, `star`, `unstar` and `starred`: finding messages in this device's
history by their text, and the ones starred here. All offline."""

from __future__ import annotations

from collections.abc import Sequence

from parley.cli.context import Context
from parley.cli.render import group_label, render_content, render_group_message, render_message
from parley.client import Client
from parley.models import Contact, Message

__all__ = ["search", "star", "starred", "unstar"]


async def search(ctx: Context) -> None:
    args = ctx.args
    text = " ".join(args.text)
    async with ctx.opened(connect=False) as client:
        found = client.search(text, conversation=args.conversation, limit=args.limit)
        if not found:
            where = "" if args.conversation is None else f" with {_name(client, args.conversation)}"
            ctx.print(f"No messages{where} match “{text}”.")
            return
        _print(ctx, client, found)


async def star(ctx: Context) -> None:
    async with ctx.opened(connect=False) as client:
        message = client.star(ctx.args.message_id)
        ctx.print(f"★ #{message.id} starred: {render_content(message)}")


async def unstar(ctx: Context) -> None:
    async with ctx.opened(connect=False) as client:
        was = client.message(ctx.args.message_id).starred
        message = client.unstar(ctx.args.message_id)
        ctx.print(f"#{message.id} unstarred." if was else f"#{message.id} was not starred.")


async def starred(ctx: Context) -> None:
    name = ctx.args.name
    async with ctx.opened(connect=False) as client:
        found = client.starred(name)
        if not found:
            where = "" if name is None else f" with {_name(client, name)}"
            ctx.print(f"No starred messages{where}.")
            return
        _print(ctx, client, found)


def _print(ctx: Context, client: Client, messages: Sequence[Message]) -> None:
    """Newest first, as `history` shows each, under the name of its conversation
    (again whenever it changes)."""
    heading = None
    for message in messages:
        here = _where(client, message)
        if here != heading:
            heading = here
            ctx.print(f"── {here} ──")
        if message.group_id is not None:
            ctx.print(render_group_message(client, message, color=ctx.color))
        else:
            contact = client.store.contacts.get(message.peer) or Contact(message.peer, None, None)
            ctx.print(
                render_message(message, contact, color=ctx.color, find=client.store.messages.find)
            )


def _where(client: Client, message: Message) -> str:
    if message.group_id is not None:
        return group_label(client, message.group_id)
    contact = client.store.contacts.get(message.peer)
    return (contact or Contact(message.peer, None, None)).display_name


def _name(client: Client, key: str) -> str:
    return client.conversation(key).display_name
