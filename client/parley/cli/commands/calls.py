"""`parley call NAME`: place a voice (or video) call and stay on it until either side
hangs up, Ctrl-C, or `--for` seconds; `parley calls`: this device's call log.
Incoming calls are answered in `parley chat` (/accept, /decline, /hangup)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from parley.calling.call import Call
from parley.cli.context import Context
from parley.client import Client
from parley.errors import ParleyClientError
from parley.models import CallRecord, CallState, Direction

__all__ = ["OUTCOMES", "call", "call_line", "calls", "media_for", "stats_line"]

# What the log says of each way a call ended, from this device's side.
OUTCOMES = {
    "ongoing": "ongoing",
    "answered": "answered",
    "missed": "MISSED",
    "declined": "declined",
    "busy": "busy",
    "no_answer": "no answer",
    "failed": "failed",
    "answered_elsewhere": "answered on another device",
    "cancelled": "cancelled",
}
STATS_EVERY_S = 5.0


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


def call_line(client: Client, record: CallRecord) -> str:
    """One line of the call log."""
    when = datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M")
    arrow = "→" if record.direction is Direction.OUT else "←"
    kind = "video" if record.video else "voice"
    name = client.member_name(record.peer)
    outcome = OUTCOMES.get(record.outcome, record.outcome)
    length = f" {_duration(record.duration)}" if record.duration else ""
    where = " (on another device)" if record.elsewhere else ""
    return f"{when}  {arrow} {name}  {kind}  {outcome}{length}{where}"


def stats_line(stats: Any) -> str:
    rtt = "?" if stats.rtt_ms is None else f"{stats.rtt_ms:.0f} ms"
    up = "?" if stats.send_kbps is None else f"{stats.send_kbps:.0f}"
    down = "?" if stats.receive_kbps is None else f"{stats.receive_kbps:.0f}"
    return f"  rtt {rtt}, loss {stats.loss:.1%}, {up} kbit/s up, {down} kbit/s down"


def media_for(play: str | None, record: str | None) -> dict[str, Any]:
    """The sources and sinks `--play` and `--record` ask for (the calls extra needed)."""
    from parley.calling.audio import Recorder, WavFile

    media: dict[str, Any] = {}
    if play:
        media["audio"] = WavFile(play)
    if record:
        media["sink"] = Recorder(record)
    return media


async def call(ctx: Context) -> None:
    args = ctx.args
    async with ctx.opened(connect=True) as client:
        await asyncio.wait_for(client.wait_synced(), 30)
        media = media_for(args.play, args.record)
        placed = await client.call(args.name, video=args.video, **media)
        ctx.print(f"calling {placed.contact.display_name}…")
        await _follow(ctx, placed, args.seconds)


async def _follow(ctx: Context, placed: Call, seconds: float | None) -> None:
    """Show the call's progress until it ends (hanging up `seconds` after it connected)."""
    shown = placed.state
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    next_stats = 0.0
    try:
        while not _ended(placed):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(placed.ended.wait()), 0.5)
            if placed.state is not shown and not _ended(placed):
                shown = placed.state
                ctx.print(f"{shown}")
                if shown is CallState.CONNECTED and seconds is not None:
                    deadline = loop.time() + seconds
            now = loop.time()
            if placed.state is CallState.CONNECTED and now >= next_stats:
                next_stats = now + STATS_EVERY_S
                stats = await placed.stats()
                if stats is not None:
                    ctx.print(stats_line(stats))
            if deadline is not None and now >= deadline and not _ended(placed):
                await placed.hangup()
    finally:
        if not _ended(placed):  # Ctrl-C
            with contextlib.suppress(ParleyClientError):
                await placed.hangup()
    record = await placed.wait_ended()
    length = f" after {_duration(record.duration)}" if record.duration else ""
    ctx.print(f"call ended: {record.reason}{length}")


def _ended(placed: Call) -> bool:
    return placed.state is CallState.ENDED


async def calls(ctx: Context) -> None:
    async with ctx.opened(connect=False) as client:
        log = client.call_log(ctx.args.limit)
        if not log:
            ctx.print("no calls yet")
        for record in log:
            ctx.print(call_line(client, record))
