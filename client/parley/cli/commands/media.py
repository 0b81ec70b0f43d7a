"""`parley send-file` and `parley download`: files, with a progress bar on stderr."""

from __future__ import annotations

from pathlib import Path

from parley.cli.commands.messages import send_one
from parley.cli.context import Context
from parley.cli.render import ProgressBar, human_size
from parley.client import Client
from parley.errors import ParleyClientError
from parley.models import Contact, Group, Message

__all__ = ["download", "send_file"]


async def send_file(ctx: Context) -> None:
    args = ctx.args
    bar = ProgressBar(f"upload {Path(args.path).name}")

    async def send(client: Client, contact: Contact | Group) -> Message:
        try:
            return await client.send_file(
                contact, args.path, caption=args.caption, progress=bar, mime=args.mime
            )
        finally:
            bar.close()

    await send_one(ctx, send)


async def download(ctx: Context) -> None:
    async with ctx.opened(connect=False, online=True) as client:
        message = client.message(ctx.args.message_id)
        attachment = message.attachment
        if attachment is None:
            raise ParleyClientError(f"message {message.id} carries no file ({message.kind})")
        bar = ProgressBar(f"download {attachment.name}")
        try:
            path = await client.download(message, progress=bar)
        finally:
            bar.close()
        ctx.print(f"Saved {attachment.name} ({human_size(attachment.size)}) as {path}")
