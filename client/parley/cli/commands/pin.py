"""`parley pin set|remove`: the account's registration lock (primary only)."""

from __future__ import annotations

from parley.cli.context import Context

__all__ = ["pin"]


async def pin(ctx: Context) -> None:
    async with ctx.opened(connect=False, online=True) as client:
        if ctx.args.pin_command == "remove":
            await client.remove_registration_lock()
            ctx.print("The registration lock is removed: an SMS code alone can move the")
            ctx.print("account to another phone again.")
            return
        chosen = ctx.ask_pin("New PIN (6-64 digits): ", confirm=True)
        await client.set_registration_lock(chosen)
        ctx.print("Registration lock set: signing up this number on another phone now")
        ctx.print("needs this PIN as well as the SMS code (unless the account is inactive")
        ctx.print("for 7 days). Keep it somewhere safe.")
