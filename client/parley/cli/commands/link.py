"""`parley link`: make this profile a companion device of an account. Shows the link
code as a QR code and as text, waits for the primary to link it, then for the
history the primary sends."""

from __future__ import annotations

import asyncio

from parley.cli.context import Context
from parley.cli.qr import qr_text
from parley.cli.render import notice_line
from parley.devices.linking import link
from parley.errors import PassphraseRequired
from parley.models import HistoryImported
from parley.profiles import profile_dir

__all__ = ["link_command", "show_code"]


def show_code(ctx: Context, code: str) -> None:
    """The QR code for the primary's camera, and the same code as text."""
    ctx.print("Scan this on your primary device, or type the code below there:")
    ctx.print()
    ctx.print(qr_text(code))
    ctx.print()
    ctx.print(f"  parley devices link {code}")
    ctx.print()
    ctx.print("Waiting for your primary device…")


async def link_command(ctx: Context) -> None:
    args = ctx.args
    endpoints = ctx.endpoints()
    passphrase = ctx.passphrase
    for attempt in range(2):
        try:
            account = await link(
                ctx.profile,
                endpoints=endpoints,
                on_code=lambda code: show_code(ctx, code),
                passphrase=passphrase,
                allow_plaintext=ctx.insecure,
                timeout=args.timeout,
            )
            break
        except PassphraseRequired:
            if attempt or passphrase:
                raise
            ctx.print("No OS keyring here: choose a passphrase to protect this profile.")
            passphrase = ctx.ask_passphrase(confirm=True)
    ctx.passphrase = passphrase
    ctx.print(f"Joined the account of {account.phone} (user {account.user_id}) as")
    ctx.print(f"device {account.device_id}, key index {account.key_index}.")
    ctx.print(f"Profile {ctx.profile!r} is in {profile_dir(ctx.profile)}")
    await _import(ctx)


async def _import(ctx: Context) -> None:
    """Wait (a while) for the history the primary sends and say what came."""
    async with ctx.opened(connect=True) as client:
        stream = client.events()
        try:
            async with asyncio.timeout(ctx.args.history_wait):
                async for event in stream:
                    if isinstance(event, HistoryImported):
                        ctx.print(notice_line(event, color=ctx.color) or "")
                        return
        except TimeoutError:
            ctx.print("No history arrived yet; it is imported when it comes (e.g. `parley inbox`).")
        finally:
            stream.close()
