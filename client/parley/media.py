"""What a message says, and how attachments are encrypted.

Message content is JSON inside the end-to-end encrypted payload, so the server
never sees which kind a message is. Every kind is a frozen dataclass that
validates itself; `parse_content` turns untrusted JSON into one of them or
raises ContentError with a clear message (never anything else):

    {"v":1,"kind":"text","text":...}
    {"v":1,"kind":"location","lat":...,"lon":...,"name"?:...}
    {"v":1,"kind":"contact","name":...,"phones":[...]}
    {"v":1,"kind":"image"|"video"|"audio"|"document","media_id","key","header",
     "sha256","size","mime","name","thumbnail"?,"caption"?,"width"?,"height"?}

Attachment files are encrypted with a fresh key using libsodium's secretstream
(XChaCha20-Poly1305) in chunks of CHUNK_BYTES, file to file, so memory stays
flat whatever the file size. The object in storage is the concatenation of
the chunk ciphertexts (the stream header travels in the message, not in the
object); the last chunk carries TAG_FINAL, so a truncated, reordered, spliced
or altered object never decrypts. The receiver also checks the SHA-256 of the
whole ciphertext before decrypting anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import mimetypes
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, TypeAlias

import nacl.bindings as sodium
import nacl.exceptions

from parley.errors import ParleyClientError

__all__ = [
    "ATTACHMENT_KINDS",
    "CHUNK_BYTES",
    "Attachment",
    "AttachmentKind",
    "Contact",
    "Content",
    "ContentError",
    "EncryptedFile",
    "IntegrityError",
    "Location",
    "MediaError",
    "Text",
    "decrypt_file",
    "encode_content",
    "encrypt_file",
    "encrypted_size",
    "guess_mime",
    "kind_for_mime",
    "make_thumbnail",
    "parse_content",
    "safe_file_name",
    "sha256_file",
]

VERSION: Final = 1
# Plaintext bytes per secretstream chunk. Part of the format: the receiver
# reads CHUNK_BYTES + ABYTES at a time, so both sides must agree on it.
CHUNK_BYTES: Final = 64 * 1024
ABYTES: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
HEADER_BYTES: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
KEY_BYTES: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
_TAG_MESSAGE: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL

# the same bound as parley.payload: far below the 64 KiB ciphertext limit even in UTF-8
MAX_TEXT_CHARS: Final = 8_000
MAX_NAME_CHARS: Final = 255
MAX_CAPTION_CHARS: Final = 4_000
MAX_PHONES: Final = 20
# A preview, not a picture: it rides inside a message of at most 64 KiB.
THUMBNAIL_SIDE: Final = 96
THUMBNAIL_MAX_BYTES: Final = 8 * 1024

AttachmentKind: TypeAlias = Literal["image", "video", "audio", "document"]
ATTACHMENT_KINDS: Final[frozenset[str]] = frozenset({"image", "video", "audio", "document"})

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MIME_PART = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MIME = re.compile(rf"{_MIME_PART}/{_MIME_PART}")
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{1,30}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_JPEG_MAGIC = b"\xff\xd8\xff"
_EXIF_ORIENTATION = 0x0112


class MediaError(ParleyClientError):
    """Base of the errors of media handling (a ParleyClientError like every SDK error)."""


class ContentError(MediaError, ValueError):
    """Message content (or an attachment's description) is malformed."""


class IntegrityError(MediaError):
    """An encrypted object is not what its descriptor promised (tampered,
    truncated, reordered or of the wrong size); nothing was kept."""


# -- validation helpers ------------------------------------------------------


def _text(value: object, what: str, *, max_chars: int, allow_newlines: bool = False) -> str:
    if not isinstance(value, str):
        raise ContentError(f"{what} must be a string")
    if not value.strip():
        raise ContentError(f"{what} must not be empty")
    if len(value) > max_chars:
        raise ContentError(f"{what} is longer than {max_chars} characters")
    checked = value.replace("\n", "").replace("\t", "") if allow_newlines else value
    if _CONTROL.search(checked):
        raise ContentError(f"{what} contains control characters")
    return value


def _optional_text(value: object, what: str, *, max_chars: int) -> str | None:
    if value is None:
        return None
    return _text(value, what, max_chars=max_chars, allow_newlines=True)


def _number(value: object, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContentError(f"{what} must be a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ContentError(f"{what} must be between {low:g} and {high:g}")
    return number


def _count(value: object, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContentError(f"{what} must be an integer")
    if value < minimum:
        raise ContentError(f"{what} must be at least {minimum}")
    return value


def _b64(value: object, what: str, *, length: int | None = None, max_len: int = 0) -> bytes:
    if not isinstance(value, str):
        raise ContentError(f"{what} must be base64 text")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ContentError(f"{what} is not valid base64") from exc
    if length is not None and len(raw) != length:
        raise ContentError(f"{what} must be {length} bytes")
    if max_len and len(raw) > max_len:
        raise ContentError(f"{what} is larger than {max_len} bytes")
    return raw


def _field(data: Mapping[str, Any], name: str) -> Any:
    """A field of untrusted JSON, still unchecked (the dataclass validates it)."""
    return data.get(name)


def _enc(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- content kinds -----------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A text message."""

    text: str
    kind: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        _text(self.text, "text", max_chars=MAX_TEXT_CHARS, allow_newlines=True)

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind, "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Text:
        return cls(text=_field(data, "text"))  # validated in __post_init__


@dataclass(frozen=True)
class Location:
    """A point on the map, optionally named."""

    lat: float
    lon: float
    name: str | None = None
    kind: ClassVar[str] = "location"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lat", _number(self.lat, "lat", -90.0, 90.0))
        object.__setattr__(self, "lon", _number(self.lon, "lon", -180.0, 180.0))
        _optional_text(self.name, "location name", max_chars=MAX_NAME_CHARS)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "kind": self.kind, "lat": self.lat, "lon": self.lon}
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Location:
        return cls(lat=_field(data, "lat"), lon=_field(data, "lon"), name=_field(data, "name"))

    def map_url(self, zoom: int = 16) -> str:
        """An OpenStreetMap link with a marker on the point."""
        lat, lon = _coordinate(self.lat), _coordinate(self.lon)
        return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map={zoom}/{lat}/{lon}"


def _coordinate(value: float) -> str:
    # six decimals is about 10 cm: more only makes the link longer
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True)
class Contact:
    """A contact card: a name and one or more phone numbers."""

    name: str
    phones: tuple[str, ...]
    kind: ClassVar[str] = "contact"

    def __post_init__(self) -> None:
        _text(self.name, "contact name", max_chars=MAX_NAME_CHARS)
        if isinstance(self.phones, str) or not isinstance(self.phones, list | tuple):
            raise ContentError("phones must be a list of phone numbers")
        if not 1 <= len(self.phones) <= MAX_PHONES:
            raise ContentError(f"a contact has 1 to {MAX_PHONES} phone numbers")
        for phone in self.phones:
            if not isinstance(phone, str) or not _PHONE.fullmatch(phone):
                raise ContentError(f"not a phone number: {phone!r:.40}")
            if sum(c.isdigit() for c in phone) < 3:
                raise ContentError(f"not a phone number: {phone!r:.40}")
        object.__setattr__(self, "phones", tuple(self.phones))

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind, "name": self.name, "phones": list(self.phones)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contact:
        return cls(name=_field(data, "name"), phones=_field(data, "phones"))


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

    def __post_init__(self) -> None:
        if self.kind not in ATTACHMENT_KINDS:
            raise ContentError(f"unknown attachment kind {self.kind!r:.20}")
        if not isinstance(self.media_id, str) or not _HEX32.fullmatch(self.media_id):
            raise ContentError("media_id must be 32 lowercase hex characters")
        if not isinstance(self.key, bytes) or len(self.key) != KEY_BYTES:
            raise ContentError(f"key must be {KEY_BYTES} bytes")
        if not isinstance(self.header, bytes) or len(self.header) != HEADER_BYTES:
            raise ContentError(f"header must be {HEADER_BYTES} bytes")
        if not isinstance(self.sha256, str) or not _HEX64.fullmatch(self.sha256):
            raise ContentError("sha256 must be 64 lowercase hex characters")
        _count(self.size, "size")
        if not isinstance(self.mime, str) or not _MIME.fullmatch(self.mime):
            raise ContentError(f"not a MIME type: {self.mime!r:.60}")
        if self.kind != "document" and not self.mime.startswith(f"{self.kind}/"):
            raise ContentError(f"a {self.kind} must have a {self.kind}/* MIME type")
        _text(self.name, "file name", max_chars=MAX_NAME_CHARS)
        if _NAME_UNSAFE.search(self.name) or self.name.strip() in {".", ".."}:
            raise ContentError("file name must be a plain name (no path, no control characters)")
        if self.thumbnail is not None:
            if not isinstance(self.thumbnail, bytes) or len(self.thumbnail) > THUMBNAIL_MAX_BYTES:
                raise ContentError(f"thumbnail must be at most {THUMBNAIL_MAX_BYTES} bytes")
            if not self.thumbnail.startswith(_JPEG_MAGIC):
                raise ContentError("thumbnail must be a JPEG")
        _optional_text(self.caption, "caption", max_chars=MAX_CAPTION_CHARS)
        for what in ("width", "height"):
            value = getattr(self, what)
            if value is not None:
                _count(value, what, minimum=1)

    @property
    def encrypted_size(self) -> int:
        """Bytes of the object in storage."""
        return encrypted_size(self.size)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": VERSION,
            "kind": self.kind,
            "media_id": self.media_id,
            "key": _enc(self.key),
            "header": _enc(self.header),
            "sha256": self.sha256,
            "size": self.size,
            "mime": self.mime,
            "name": self.name,
        }
        if self.thumbnail is not None:
            out["thumbnail"] = _enc(self.thumbnail)
        for extra in ("caption", "width", "height"):
            if getattr(self, extra) is not None:
                out[extra] = getattr(self, extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attachment:
        thumbnail = _field(data, "thumbnail")
        return cls(
            kind=_field(data, "kind"),  # validated in __post_init__
            media_id=_field(data, "media_id"),
            key=_b64(_field(data, "key"), "key", length=KEY_BYTES),
            header=_b64(_field(data, "header"), "header", length=HEADER_BYTES),
            sha256=_field(data, "sha256"),
            size=_field(data, "size"),
            mime=_field(data, "mime"),
            name=_field(data, "name"),
            thumbnail=(
                None
                if thumbnail is None
                else _b64(thumbnail, "thumbnail", max_len=THUMBNAIL_MAX_BYTES)
            ),
            caption=_field(data, "caption"),
            width=_field(data, "width"),
            height=_field(data, "height"),
        )


Content: TypeAlias = Text | Location | Contact | Attachment

_PARSERS: Final[dict[str, Callable[[Mapping[str, Any]], Content]]] = {
    "text": Text.from_dict,
    "location": Location.from_dict,
    "contact": Contact.from_dict,
    **dict.fromkeys(ATTACHMENT_KINDS, Attachment.from_dict),
}


def parse_content(data: str | bytes | Mapping[str, Any]) -> Content:
    """Decrypted message JSON -> a content object, or ContentError."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            # RecursionError: nested deeper than the parser goes (a hostile sender)
            raise ContentError("message content is not JSON") from exc
    if not isinstance(data, Mapping):
        raise ContentError("message content must be a JSON object")
    version = _field(data, "v")
    if version != VERSION or isinstance(version, bool):
        raise ContentError(f"unsupported content version {version!r:.20}")
    kind = _field(data, "kind")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ContentError(f"unknown message kind {kind!r:.20}")
    return parser(data)


def encode_content(content: Content) -> str:
    """A content object -> the compact JSON that goes into the encrypted payload."""
    return json.dumps(content.to_dict(), separators=(",", ":"), ensure_ascii=False)


# -- MIME and names ------------------------------------------------------------


def guess_mime(path: str | os.PathLike[str]) -> str:
    """The MIME type a file's name suggests; application/octet-stream when unknown."""
    guessed, _ = mimetypes.guess_type(os.fspath(path), strict=False)
    return (guessed or "application/octet-stream").lower()


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


def safe_file_name(name: str) -> str:
    """A name safe to send and to save: no directories, no control characters."""
    cleaned = _NAME_UNSAFE.sub("_", os.path.basename(name)).strip()
    if cleaned in {"", ".", ".."}:
        cleaned = "file"
    if len(cleaned) > MAX_NAME_CHARS:
        stem, dot, ext = cleaned.rpartition(".")
        keep = MAX_NAME_CHARS - len(ext) - 1 if dot and len(ext) <= 16 else MAX_NAME_CHARS
        cleaned = f"{stem[:keep]}.{ext}" if dot and len(ext) <= 16 else cleaned[:keep]
    return cleaned


# -- thumbnails -------------------------------------------------------------


def make_thumbnail(
    path: str | os.PathLike[str],
    *,
    side: int = THUMBNAIL_SIDE,
    max_bytes: int = THUMBNAIL_MAX_BYTES,
) -> tuple[bytes, int, int] | None:
    """A small JPEG preview of an image and the image's (width, height).

    None when the file is not an image Pillow can read (the attachment is then
    sent without a preview, as WhatsApp does for formats it cannot render).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            width, height = opened.size
            # EXIF orientations 5-8 turn the picture a quarter: as shown, it is height x width
            if opened.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                width, height = height, width
            # JPEG decodes at a fraction of its size when asked: far less memory
            opened.draft("RGB", (side * 4, side * 4))
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "P"):
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                image = flat
            else:
                image = image.convert("RGB")
            image.thumbnail((side, side))
            for quality in (70, 55, 40, 25):
                out = io.BytesIO()
                image.save(out, "JPEG", quality=quality, optimize=True)
                if out.tell() <= max_bytes:
                    return out.getvalue(), width, height
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return None
    return None


# -- streaming encryption ------------------------------------------------------


def encrypted_size(plaintext_size: int) -> int:
    """Size of the object that encrypt_file writes for `plaintext_size` bytes."""
    chunks = max(1, -(-plaintext_size // CHUNK_BYTES))
    return plaintext_size + chunks * ABYTES


@dataclass(frozen=True)
class EncryptedFile:
    """The secrets and facts of one encrypted file."""

    key: bytes = field(repr=False)
    header: bytes = field(repr=False)
    sha256: str
    size: int  # plaintext bytes
    encrypted_size: int


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def encrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    key: bytes | None = None,
) -> EncryptedFile:
    """Encrypt `src` into `dst` chunk by chunk with a fresh key (or `key`).

    Memory is a few chunks whatever the size. On failure `dst` is removed.
    """
    key = key if key is not None else sodium.crypto_secretstream_xchacha20poly1305_keygen()
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    digest = hashlib.sha256()
    plain = written = 0
    out_path = Path(dst)
    try:
        with open(src, "rb") as source, open(out_path, "wb") as sink:
            chunk = source.read(CHUNK_BYTES)
            while True:
                # read one ahead: the last chunk (even an empty one) carries FINAL
                following = source.read(CHUNK_BYTES) if len(chunk) == CHUNK_BYTES else b""
                tag = _TAG_FINAL if not following else _TAG_MESSAGE
                sealed = sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, tag=tag)
                sink.write(sealed)
                digest.update(sealed)
                plain += len(chunk)
                written += len(sealed)
                if tag == _TAG_FINAL:
                    break
                chunk = following
    except BaseException:
        _remove(out_path)
        raise
    return EncryptedFile(
        key=key, header=header, sha256=digest.hexdigest(), size=plain, encrypted_size=written
    )


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(CHUNK_BYTES * 4):
            digest.update(block)
    return digest.hexdigest()


def decrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    key: bytes,
    header: bytes,
    sha256: str | None,
    size: int | None = None,
) -> int:
    """Decrypt `src` into `dst`, streaming; returns the plaintext size.

    The ciphertext's SHA-256 is checked first (pass `sha256=None` only when the
    caller has just checked it while downloading). Plaintext goes to a
    temporary file beside `dst` that replaces `dst` only once the whole stream
    has verified, so a tampered, truncated or reordered object leaves nothing
    behind. Raises IntegrityError.
    """
    if sha256 is not None and sha256_file(src) != sha256:
        raise IntegrityError("the encrypted file does not match its SHA-256")
    if len(key) != KEY_BYTES or len(header) != HEADER_BYTES:
        raise IntegrityError("wrong key or header length")
    target = Path(dst)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name[:40]}.", suffix=".part", dir=target.parent
    )
    tmp = Path(tmp_name)
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        with os.fdopen(fd, "wb") as sink, open(src, "rb") as source:
            try:
                sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
            except nacl.exceptions.CryptoError as exc:
                raise IntegrityError("the stream header is invalid") from exc
            total = 0
            finished = False
            while sealed := source.read(CHUNK_BYTES + ABYTES):
                if finished:
                    raise IntegrityError("data follows the final chunk")
                try:
                    chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed)
                except nacl.exceptions.CryptoError as exc:
                    raise IntegrityError("the encrypted file was altered or reordered") from exc
                finished = tag == _TAG_FINAL
                sink.write(chunk)
                total += len(chunk)
            if not finished:
                raise IntegrityError("the encrypted file is truncated")
        if size is not None and total != size:
            raise IntegrityError(f"decrypted {total} bytes, expected {size}")
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    return total
