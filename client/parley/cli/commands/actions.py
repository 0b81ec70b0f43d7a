"""`parley reply`, `react`, `edit`, `delete`, `forward` and `timer`: acting on a
message by the number `history` shows (#N), and a conversation's disappearing
timer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from parley.cli.commands.messages import SEND_WAIT_S
from parley.cli.context import Context
from parley.cli.render import render_content, ticks
from parley.client import Client
from parley.content import TIMER_CHOICES
from parley.conversations.payload import timer_label
from parley.models import Message

__all__ = [
    "TIMER_WORDS",
    "delete",
    "edit",
    "forward",
    "parse_timer",
    "react",
    "reply",
    "timer",
]

# what `parley timer` and `/timer` accept, and the seconds each means
TIMER_WORDS = {"off": 0, "24h": TIMER_CHOICES[1], "7d": TIMER_CHOICES[2], "90d": TIMER_CHOICES[3]}


def parse_timer(word: str) -> int:
    """off, 24h, 7d or 90d as seconds (ValueError for anything else)."""
    try:
        return TIMER_WORDS[word.strip().lower()]
    except KeyError:
        raise ValueError(f"a timer is one of {', '.join(TIMER_WORDS)}, not {word!r}") from None


async def _act(
    ctx: Context, act: Callable[[Client], Coroutine[Any, Any, Message | list[Message]]]
) -> list[Message]:
    """Connect, do it, wait (a while) for the service to take what it sent."""
    async with ctx.opened(connect=True) as client:
        done = await act(client)
        sent = done if isinstance(done, list) else [done]
        try:
            async with asyncio.timeout(SEND_WAIT_S):
                await client.wait_outbox_empty()
        except TimeoutError:
            ctx.print("Queued: no connection to the service; it goes out next time.")
            return sent
        return [client.store.messages.get(m.sender, m.client_id) or m for m in sent]


async def reply(ctx: Context) -> None:
    args = ctx.args
    (sent,) = await _act(ctx, lambda c: c.reply(args.message_id, args.text))
    ctx.print(f"{ticks(sent.state, color=ctx.color)} {render_content(sent)}")


async def react(ctx: Context) -> None:
    args = ctx.args
    emoji = "" if args.remove else args.emoji
    if not emoji and not args.remove:
        raise ValueError("give an emoji, or --remove to take your reaction back")
    await _act(ctx, lambda c: c.react(args.message_id, emoji))
    ctx.print(f"reacted {emoji} to #{args.message_id}" if emoji else "reaction taken back")


async def edit(ctx: Context) -> None:
    args = ctx.args
    await _act(ctx, lambda c: c.edit(args.message_id, args.text))
    ctx.print(f"#{args.message_id} now says: {args.text}")


async def delete(ctx: Context) -> None:
    args = ctx.args
    if args.for_me:
        async with ctx.opened(connect=False) as client:
            client.delete_for_me(args.message_id)
        ctx.print(f"#{args.message_id} deleted from this device")
        return
    await _act(ctx, lambda c: c.delete_for_everyone(args.message_id))
    ctx.print(f"#{args.message_id} deleted for everyone")


async def forward(ctx: Context) -> None:
    args = ctx.args
    sent = await _act(ctx, lambda c: c.forward(args.message_id, args.to))
    ctx.print(f"forwarded to {len(sent)} chat{'s' if len(sent) > 1 else ''}")


async def timer(ctx: Context) -> None:
    args = ctx.args
    if args.setting is None:
        async with ctx.opened(connect=False) as client:
            seconds = client.disappearing(args.name)
        ctx.print(f"disappearing messages: {timer_label(seconds)}")
        return
    seconds = parse_timer(args.setting)
    await _act(ctx, lambda c: c.set_disappearing(args.name, seconds))
    ctx.print(f"disappearing messages: {timer_label(seconds)}")
