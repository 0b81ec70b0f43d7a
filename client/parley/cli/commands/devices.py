"""`parley devices [list|link CODE|unlink DEVICE_ID|remove DEVICE_ID]`: the account's
devices, linking a new companion (its history follows) and unlinking one."""

from __future__ import annotations

import asyncio

from parley.cli.context import Context
from parley.cli.render import device_row
from parley.client import Client

__all__ = ["HISTORY_SEND_WAIT_S", "devices"]

# How long `devices link` waits for the new device to finish linking and its
# history to reach the service (the pairing's lifetime, and a little more).
HISTORY_SEND_WAIT_S = 330.0


async def devices(ctx: Context) -> None:
    command = ctx.args.devices_command
    if command == "link":
        await _link(ctx)
        return
    async with ctx.opened(connect=False, online=True) as client:
        if command == "remove":
            await _sign_out(ctx, client, ctx.args.device_id)
        elif command == "unlink":
            await _unlink(ctx, client, ctx.args.device_id)
        else:
            for device in await client.devices():
                ctx.print(device_row(device))


async def _sign_out(ctx: Context, client: Client, device_id: str) -> None:
    await client.sign_out_device(device_id)
    if device_id == client.account.device_id:
        ctx.print("This device is signed out. Its history stays in this profile;")
        ctx.print("to use Parley here again, sign up into a new profile.")
    else:
        ctx.print(f"Signed out {device_id}: it can no longer send or receive.")


async def _unlink(ctx: Context, client: Client, device_id: str) -> None:
    mine = device_id == client.account.device_id
    await client.unlink_device(device_id)
    if mine:
        ctx.print("This device is unlinked from the account. Its history stays in this")
        ctx.print("profile; link it again with `parley link` into a new profile.")
    else:
        ctx.print(f"Unlinked {device_id}: it is off your device list and signed out,")
        ctx.print("and people's apps stop encrypting for it.")


async def _link(ctx: Context) -> None:
    """On the primary: approve the device showing the code, then wait while it
    finishes linking and send it the recent history."""
    async with ctx.opened(connect=True) as client:
        device_id = await client.link_device(ctx.args.code.strip())
        ctx.print(f"Approved device {device_id}; waiting for it to finish linking…")
        try:
            async with asyncio.timeout(HISTORY_SEND_WAIT_S):
                sent = await client.history_sent(device_id)
                if sent is not None:
                    await client.wait_outbox_empty()
        except TimeoutError:
            ctx.print("The new device did not finish linking in time; no history was sent.")
            return
        if sent is None:
            ctx.print(f"Linked {device_id}. Its history could not be sent (see the log).")
            return
        ctx.print(
            f"Linked {device_id} and sent it {sent.messages} messages of history "
            f"({sent.conversations} conversations)."
        )
