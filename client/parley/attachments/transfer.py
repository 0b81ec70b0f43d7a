"""Sending and fetching attachments: encrypt, upload through a presigned POST,
download through a presigned GET, verify, decrypt. Streaming both ways, with
progress callbacks for the CLI's bars.

Independent of the SDK's Client: give these functions an aiohttp session and
anything with the two media calls of the HTTP API (`MediaApi`).

    attachment = await upload_attachment(session, api, "photo.jpg")
    payload = encode_content(attachment)          # into the E2E-encrypted message
    ...
    path = await download_attachment(session, api, attachment, media_dir)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from parley.attachments.crypto import EncryptedFile, IntegrityError, decrypt_file, encrypt_file
from parley.attachments.files import guess_mime, make_thumbnail, safe_file_name
from parley.content import (
    Attachment,
    ContentError,
    MediaError,
    encrypted_size,
    kind_for_mime,
)

__all__ = [
    "MediaApi",
    "ProgressCallback",
    "TransferError",
    "download_attachment",
    "download_file",
    "post_file",
    "upload_attachment",
]

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes in total) as a transfer advances."""

_IO_CHUNK = 256 * 1024
_CIPHERTEXT_TYPE = "application/octet-stream"


class MediaApi(Protocol):
    """The two HTTP API calls attachments need (the SDK's Client provides them)."""

    async def create_media(self, size: int) -> Mapping[str, Any]:
        """POST /v1/media {"size"} -> {"media_id", "upload": {"url", "fields"}, "expires_in"}."""
        ...

    async def media_url(self, media_id: str) -> str:
        """GET /v1/media/{media_id} -> its short-lived download URL."""
        ...


class TransferError(MediaError):
    """An upload or download failed at the HTTP level (`status` when there was an answer)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _FileBody(Payload):
    """A file sent from disk in chunks, reporting progress; size known up front
    so the request carries a Content-Length (S3's POST requires one)."""

    def __init__(self, path: Path, size: int, progress: ProgressCallback | None) -> None:
        super().__init__(path, content_type=_CIPHERTEXT_TYPE)
        self._path = path
        self._size = size
        self._file_size = size
        self._progress = progress

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file body is binary")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        total = self._file_size if content_length is None else min(self._file_size, content_length)
        done = 0
        source = await asyncio.to_thread(open, self._path, "rb")
        try:
            while done < total:
                block = await asyncio.to_thread(source.read, min(_IO_CHUNK, total - done))
                if not block:
                    raise TransferError("the file shrank while it was being uploaded")
                await writer.write(block)
                done += len(block)
                if self._progress is not None:
                    self._progress(done, self._file_size)
        finally:
            await asyncio.to_thread(source.close)


async def post_file(
    session: aiohttp.ClientSession,
    url: str,
    fields: Mapping[str, str],
    path: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
) -> None:
    """POST `path` to a presigned S3 form: the fields first, the file last."""
    file_path = Path(path)
    size = (await asyncio.to_thread(file_path.stat)).st_size
    with aiohttp.MultipartWriter("form-data") as form:
        for name, value in fields.items():
            part = form.append(str(value))
            part.set_content_disposition("form-data", name=name)
        body = _FileBody(file_path, size, progress)
        body.set_content_disposition("form-data", name="file", filename="blob")
        form.append_payload(body)
        try:
            async with session.post(url, data=form) as answer:
                if answer.status >= 300:
                    detail = (await answer.text())[:300]
                    raise TransferError(
                        f"upload refused (HTTP {answer.status}): {detail}", status=answer.status
                    )
        except aiohttp.ClientError as exc:
            raise TransferError(f"upload failed: {exc}") from exc


async def download_file(
    session: aiohttp.ClientSession,
    url: str,
    dst: str | os.PathLike[str],
    *,
    expected_size: int,
    progress: ProgressCallback | None = None,
) -> str:
    """GET `url` into `dst`, streaming; returns the hex SHA-256 of what arrived.

    More bytes than `expected_size` stop the transfer at once; fewer are a
    truncation. Either is an IntegrityError.
    """
    digest = hashlib.sha256()
    received = 0
    try:
        async with session.get(url) as answer:
            if answer.status != 200:
                raise TransferError(
                    f"download refused (HTTP {answer.status})", status=answer.status
                )
            sink = await asyncio.to_thread(open, dst, "wb")
            try:
                async for block in answer.content.iter_chunked(_IO_CHUNK):
                    received += len(block)
                    if received > expected_size:
                        raise IntegrityError("the download is larger than the attachment")
                    await asyncio.to_thread(sink.write, block)
                    digest.update(block)
                    if progress is not None:
                        progress(received, expected_size)
            finally:
                await asyncio.to_thread(sink.close)
    except aiohttp.ClientError as exc:
        raise TransferError(f"download failed: {exc}") from exc
    if received != expected_size:
        raise IntegrityError(f"the download is truncated ({received} of {expected_size} bytes)")
    return digest.hexdigest()


async def upload_attachment(
    session: aiohttp.ClientSession,
    api: MediaApi,
    path: str | os.PathLike[str],
    *,
    mime: str | None = None,
    name: str | None = None,
    caption: str | None = None,
    progress: ProgressCallback | None = None,
    workdir: str | os.PathLike[str] | None = None,
) -> Attachment:
    """Encrypt `path` with a fresh key, upload it, and describe it for the message.

    The encrypted copy lives in a temporary file (in `workdir`, default the
    system's) only while it is uploaded. Raises ContentError for a bad MIME
    type or file name, TransferError when the upload fails, and the API's own
    errors from `create_media`.
    """
    source = Path(path)
    mime = (mime or guess_mime(source)).lower()
    kind = kind_for_mime(mime)
    file_name = safe_file_name(name or source.name)
    tmp, sealed, preview = await asyncio.to_thread(_seal, source, kind, workdir)
    try:
        created = await api.create_media(sealed.encrypted_size)
        media_id, url, fields = _upload_form(created)
        await post_file(session, url, fields, tmp, progress=progress)
    finally:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)
    return Attachment(
        kind=kind,
        media_id=media_id,
        key=sealed.key,
        header=sealed.header,
        sha256=sealed.sha256,
        size=sealed.size,
        mime=mime,
        name=file_name,
        thumbnail=preview[0] if preview else None,
        caption=caption,
        width=preview[1] if preview else None,
        height=preview[2] if preview else None,
    )


def _seal(
    source: Path, kind: str, workdir: str | os.PathLike[str] | None
) -> tuple[Path, EncryptedFile, tuple[bytes, int, int] | None]:
    """Preview (images) and encrypted copy of `source`, off the event loop."""
    if not source.is_file():
        raise ContentError(f"not a file: {source}")
    preview = make_thumbnail(source) if kind == "image" else None
    tmp = _temp_file(Path(workdir or tempfile.gettempdir()), ".parley-upload-")
    return tmp, encrypt_file(source, tmp), preview


def _temp_file(folder: Path, prefix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=folder)
    os.close(fd)
    return Path(name)


def _upload_form(created: Mapping[str, Any]) -> tuple[str, str, dict[str, str]]:
    try:
        media_id = created["media_id"]
        upload = created["upload"]
        url = upload["url"]
        fields = upload["fields"]
    except (KeyError, TypeError) as exc:
        raise TransferError("the server's upload form is malformed") from exc
    if not (
        isinstance(media_id, str)
        and isinstance(url, str)
        and isinstance(fields, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    ):
        raise TransferError("the server's upload form is malformed")
    return media_id, url, dict(fields)


async def download_attachment(
    session: aiohttp.ClientSession,
    api: MediaApi,
    attachment: Attachment,
    dest_dir: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
) -> Path:
    """Download, verify and decrypt an attachment into `dest_dir`; returns its path.

    The file is named after the attachment (" (2)", " (3)"... when taken).
    Nothing is left in `dest_dir` when anything fails: the ciphertext and the
    partial plaintext live in hidden temporary files that are removed.
    A link that has expired (HTTP 403) is asked for again once.
    """
    folder = Path(dest_dir)
    expected = encrypted_size(attachment.size)
    ciphertext = await asyncio.to_thread(_temp_in, folder, ".parley-download-")
    try:
        for attempt in range(2):
            url = await api.media_url(attachment.media_id)
            try:
                digest = await download_file(
                    session, url, ciphertext, expected_size=expected, progress=progress
                )
                break
            except TransferError as exc:
                if exc.status != 403 or attempt:
                    raise
        if digest != attachment.sha256:
            raise IntegrityError("the download does not match the attachment's SHA-256")
        return await asyncio.to_thread(_open_into, ciphertext, folder, attachment)
    finally:
        await asyncio.to_thread(ciphertext.unlink, missing_ok=True)


def _temp_in(folder: Path, prefix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return _temp_file(folder, prefix)


def _open_into(ciphertext: Path, folder: Path, attachment: Attachment) -> Path:
    """Decrypt a verified download into `folder` under the attachment's name."""
    plaintext = _temp_file(folder, ".parley-plain-")
    try:
        decrypt_file(
            ciphertext,
            plaintext,
            key=attachment.key,
            header=attachment.header,
            sha256=None,  # just checked while downloading
            size=attachment.size,
        )
        return _claim_name(plaintext, folder, attachment.name)
    finally:
        plaintext.unlink(missing_ok=True)


def _claim_name(tmp: Path, folder: Path, name: str) -> Path:
    """Give `tmp` its final name in `folder` without ever replacing an existing file."""
    base = safe_file_name(name)
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem:
        stem, ext = base, ""
    for n in range(1, 10_000):
        candidate = folder / (base if n == 1 else f"{stem} ({n}){'.' + ext if ext else ''}")
        try:
            # a hard link fails if the name exists: no check-then-write race
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        except OSError:
            # filesystems without hard links: best effort
            if candidate.exists():
                continue
            os.replace(tmp, candidate)
            return candidate
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        return candidate
    raise MediaError(f"no free file name for {base!r} in {folder}")
