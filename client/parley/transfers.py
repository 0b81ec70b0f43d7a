"""Files for a `Client`: a caption checked, then the file encrypted and uploaded;
an attachment fetched, verified and decrypted into the profile's media folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from parley.api import ApiClient
from parley.attachments.transfer import ProgressCallback, download_attachment, upload_attachment
from parley.content import MAX_CAPTION_CHARS, Attachment, ContentError
from parley.errors import ParleyClientError
from parley.models import Message
from parley.store.messages import Messages

__all__ = ["MEDIA_DIR", "fetch_file", "upload_file"]

# Downloaded attachments, inside the profile directory.
MEDIA_DIR = "media"


async def upload_file(
    http: aiohttp.ClientSession,
    api: ApiClient,
    path: str | os.PathLike[str],
    caption: str | None,
    progress: ProgressCallback | None,
    *,
    mime: str | None,
    name: str | None,
) -> Attachment:
    """The uploaded attachment of `path`; the caption is checked before the upload."""
    if caption is not None and not caption.strip():
        caption = None
    if caption is not None and len(caption) > MAX_CAPTION_CHARS:
        raise ContentError(f"a caption holds at most {MAX_CAPTION_CHARS} characters")
    return await upload_attachment(
        http, api, path, mime=mime, name=name, caption=caption, progress=progress
    )


async def fetch_file(
    http: aiohttp.ClientSession,
    api: ApiClient,
    messages: Messages,
    message: Message,
    folder: Path,
    progress: ProgressCallback | None,
) -> Path:
    """The message's attachment as a file in `folder` (not fetched again if there)."""
    attachment = message.attachment
    if attachment is None:
        raise ParleyClientError(f"message {message.id} carries no file ({message.kind})")
    if message.file is not None and _is_file_of_size(message.file, attachment.size):
        return message.file
    await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
    path = await download_attachment(http, api, attachment, folder, progress=progress)
    messages.set_file(message.id, path)
    return path


def _is_file_of_size(path: Path, size: int) -> bool:
    try:
        return path.is_file() and path.stat().st_size == size
    except OSError:
        return False
