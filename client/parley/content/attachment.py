"""The attachment a message carries: where an encrypted file is, how to open it,
and the facts of the encrypted object it promises.

The object in storage is a libsodium secretstream (XChaCha20-Poly1305) written
in chunks of CHUNK_BYTES plaintext bytes; those constants are part of the
format, since the receiver reads CHUNK_BYTES + ABYTES at a time and checks the
object's size before decrypting (see parley.attachments.crypto).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

import nacl.bindings as sodium

from parley.content.context import Context
from parley.content.errors import ContentError
from parley.content.fields import (
    MAX_NAME_CHARS,
    VERSION,
    b64,
    check_count,
    check_optional_text,
    check_text,
    decode_b64,
)
from parley.content.fields import field as json_field
from parley.ids import is_media_id

__all__ = [
    "ABYTES",
    "ATTACHMENT_KINDS",
    "CHUNK_BYTES",
    "HEADER_BYTES",
    "KEY_BYTES",
    "MAX_CAPTION_CHARS",
    "THUMBNAIL_MAX_BYTES",
    "UNSAFE_NAME",
    "Attachment",
    "AttachmentKind",
    "encrypted_size",
    "kind_for_mime",
]

# Plaintext bytes per secretstream chunk. Part of the format: the receiver
# reads CHUNK_BYTES + ABYTES at a time, so both sides must agree on it.
CHUNK_BYTES: Final = 64 * 1024
ABYTES: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
HEADER_BYTES: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
KEY_BYTES: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES

MAX_CAPTION_CHARS: Final = 4_000
# A preview, not a picture: it rides inside a message of at most 64 KiB.
THUMBNAIL_MAX_BYTES: Final = 8 * 1024

AttachmentKind: TypeAlias = Literal["image", "video", "audio", "document"]
ATTACHMENT_KINDS: Final[frozenset[str]] = frozenset({"image", "video", "audio", "document"})

# what a file name must not contain: directories and control characters
UNSAFE_NAME: Final = re.compile(r"[\x00-\x1f\x7f/\\]")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_MIME_PART = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MIME = re.compile(rf"{_MIME_PART}/{_MIME_PART}")
_JPEG_MAGIC = b"\xff\xd8\xff"


def encrypted_size(plaintext_size: int) -> int:
    """Size of the encrypted object for `plaintext_size` bytes of file."""
    chunks = max(1, -(-plaintext_size // CHUNK_BYTES))
    return plaintext_size + chunks * ABYTES


def kind_for_mime(mime: str) -> AttachmentKind:
    """Which attachment kind a MIME type is shown as."""
    if not isinstance(mime, str) or not _MIME.fullmatch(mime):
        raise ContentError(f"not a MIME type: {mime!r:.60}")
    major = mime.split("/", 1)[0]
    if major == "image":
        return "image"
    if major == "video":
        return "video"
    if major == "audio":
        return "audio"
    return "document"


@dataclass(frozen=True)
class Attachment:
    """An encrypted file in media storage, and everything needed to fetch and open it."""

    kind: AttachmentKind
    media_id: str
    key: bytes = field(repr=False)
    header: bytes = field(repr=False)
    sha256: str
    size: int
    mime: str
    name: str
    thumbnail: bytes | None = field(default=None, repr=False)
    caption: str | None = None
    width: int | None = None
    height: int | None = None
    # what it replies to, forwarding, timer: set by the codec from "ctx"
    ctx: Context | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.kind not in ATTACHMENT_KINDS:
            raise ContentError(f"unknown attachment kind {self.kind!r:.20}")
        if not is_media_id(self.media_id):
            raise ContentError("media_id must be 32 lowercase hex characters")
        if not isinstance(self.key, bytes) or len(self.key) != KEY_BYTES:
            raise ContentError(f"key must be {KEY_BYTES} bytes")
        if not isinstance(self.header, bytes) or len(self.header) != HEADER_BYTES:
            raise ContentError(f"header must be {HEADER_BYTES} bytes")
        if not isinstance(self.sha256, str) or not _HEX64.fullmatch(self.sha256):
            raise ContentError("sha256 must be 64 lowercase hex characters")
        check_count(self.size, "size")
        if not isinstance(self.mime, str) or not _MIME.fullmatch(self.mime):
            raise ContentError(f"not a MIME type: {self.mime!r:.60}")
        if self.kind != "document" and not self.mime.startswith(f"{self.kind}/"):
            raise ContentError(f"a {self.kind} must have a {self.kind}/* MIME type")
        check_text(self.name, "file name", max_chars=MAX_NAME_CHARS)
        if UNSAFE_NAME.search(self.name) or self.name.strip() in {".", ".."}:
            raise ContentError("file name must be a plain name (no path, no control characters)")
        if self.thumbnail is not None:
            if not isinstance(self.thumbnail, bytes) or len(self.thumbnail) > THUMBNAIL_MAX_BYTES:
                raise ContentError(f"thumbnail must be at most {THUMBNAIL_MAX_BYTES} bytes")
            if not self.thumbnail.startswith(_JPEG_MAGIC):
                raise ContentError("thumbnail must be a JPEG")
        check_optional_text(self.caption, "caption", max_chars=MAX_CAPTION_CHARS)
        for what in ("width", "height"):
            value = getattr(self, what)
            if value is not None:
                check_count(value, what, minimum=1)

    @property
    def encrypted_size(self) -> int:
        """Bytes of the object in storage."""
        return encrypted_size(self.size)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": VERSION,
            "kind": self.kind,
            "media_id": self.media_id,
            "key": b64(self.key),
            "header": b64(self.header),
            "sha256": self.sha256,
            "size": self.size,
            "mime": self.mime,
            "name": self.name,
        }
        if self.thumbnail is not None:
            out["thumbnail"] = b64(self.thumbnail)
        for extra in ("caption", "width", "height"):
            if getattr(self, extra) is not None:
                out[extra] = getattr(self, extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attachment:
        thumbnail = json_field(data, "thumbnail")
        return cls(
            kind=json_field(data, "kind"),  # validated in __post_init__
            media_id=json_field(data, "media_id"),
            key=decode_b64(json_field(data, "key"), "key", length=KEY_BYTES),
            header=decode_b64(json_field(data, "header"), "header", length=HEADER_BYTES),
            sha256=json_field(data, "sha256"),
            size=json_field(data, "size"),
            mime=json_field(data, "mime"),
            name=json_field(data, "name"),
            thumbnail=(
                None
                if thumbnail is None
                else decode_b64(thumbnail, "thumbnail", max_len=THUMBNAIL_MAX_BYTES)
            ),
            caption=json_field(data, "caption"),
            width=json_field(data, "width"),
            height=json_field(data, "height"),
        )
