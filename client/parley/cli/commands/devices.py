"""`parley devices [list|remove DEVICE_ID]`: the account's signed-in devices."""

from __future__ import annotations

from parley.cli.context import Context
from parley.cli.render import device_row

__all__ = ["devices"]


async def devices(ctx: Context) -> None:
    async with ctx.opened(connect=False, online=True) as client:
        if ctx.args.devices_command == "remove":
            device_id = ctx.args.device_id
            await client.sign_out_device(device_id)
            if device_id == client.account.device_id:
                ctx.print("This device is signed out. Its history stays in this profile;")
                ctx.print("to use Parley here again, sign up into a new profile.")
            else:
                ctx.print(f"Signed out {device_id}: it can no longer send or receive.")
            return
        for device in await client.devices():
            ctx.print(device_row(device))
