"""What travels INSIDE the end-to-end encryption: a small JSON document.

    {"v": 1, "kind": "text", "text": "hi"}
    {"v": 1, "kind": "location", "lat": 48.8584, "lon": 2.2945, "name": "Eiffel Tower"}
    {"v": 1, "kind": "image", "media_id": ..., "key": ..., "sha256": ..., ...}

The server never sees it, not even which kind a message is. `parley.content`
defines every kind (text, image, video, audio, document, location, contact)
and validates it; this module is the SDK's door to it: bytes in and out of the
ratchet, and one error for anything this client does not understand, so a
malformed or unknown document is dropped with a warning instead of guessed at.

One more kind travels only over the pairwise sessions and is never shown: a
group member's sender key (`SenderKeyPayload`), which lets the others read what
that member's device sends to the group:

    {"v": 1, "kind": "sender_key", "group": <group id>, "version": 3, "key": <b64>}

And one goes only from one of an account's devices to its others: a copy of a
message it sent to someone (`SentCopy`), so every device of the account shows it:

    {"v": 1, "kind": "sent", "to": <user id>, "id": <client id>, "content": {...}}

And one goes from an account's primary to a companion it has just linked: where
the encrypted export of the recent history is (`HistoryPayload`; the history
itself travels as an attachment-like blob, see `parley.devices.history`):

    {"v": 1, "kind": "history", "device": <device id>, "media_id": ..., "key": <b64>,
     "header": <b64>, "sha256": <hex>, "size": <plaintext bytes>}
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from parley.content import (
    MAX_TEXT_CHARS,
    Attachment,
    ContactCard,
    Content,
    ContentError,
    Delete,
    Edit,
    Location,
    Payment,
    PaymentStatus,
    Reaction,
    Text,
    TimerChange,
    encode_content,
    parse_content,
)
from parley.content.attachment import HEADER_BYTES, KEY_BYTES
from parley.content.calls import CALL_KIND, CallSignal, parse_signal
from parley.ids import is_client_id, is_device_id, is_group_id, is_media_id, is_user_id

__all__ = [
    "HISTORY_KIND",
    "MAX_HISTORY_BYTES",
    "MAX_TEXT_CHARS",
    "SENDER_KEY_KIND",
    "SENT_KIND",
    "Content",
    "HistoryPayload",
    "SenderKeyPayload",
    "SentCopy",
    "UnsupportedContent",
    "decode",
    "decode_any",
    "describe",
    "encode",
    "encode_history",
    "encode_sender_key",
    "encode_sent_copy",
    "encode_text",
    "timer_label",
]

SENDER_KEY_KIND = "sender_key"
SENT_KIND = "sent"
HISTORY_KIND = "history"
_HISTORY_FIELDS = frozenset({"v", "kind", "device", "media_id", "key", "header", "sha256", "size"})
# The largest history export (plaintext JSON) a companion accepts.
MAX_HISTORY_BYTES = 64 * 1024 * 1024
_SHA256_HEX = frozenset("0123456789abcdef")
_SENT_FIELDS = frozenset({"v", "kind", "to", "id", "content"})
_SENDER_KEY_FIELDS = frozenset({"v", "kind", "group", "version", "key"})
# A distribution message is 74 bytes; anything far larger is not one.
_MAX_KEY_CHARS = 200


class UnsupportedContent(ValueError):
    """The decrypted payload is not a document this client understands."""


@dataclass(frozen=True)
class SenderKeyPayload:
    """A member device's sender key for a group, at the group version it was made for."""

    group_id: str
    version: int
    distribution: bytes  # parley.crypto.sender_keys.SenderKeyDistribution.to_bytes()


def _document(kind: str, **fields: Any) -> bytes:
    return json.dumps({"v": 1, "kind": kind, **fields}, separators=(",", ":")).encode()


def encode_sender_key(sender_key: SenderKeyPayload) -> bytes:
    key = base64.b64encode(sender_key.distribution).decode()
    return _document(
        SENDER_KEY_KIND, group=sender_key.group_id, version=sender_key.version, key=key
    )


@dataclass(frozen=True)
class SentCopy:
    """A message one of this account's devices sent to `to`, for the account's
    other devices to show as sent: the same client id, so its ticks reach them too."""

    to: str
    client_id: str
    content: Content


def encode_sent_copy(copy: SentCopy) -> bytes:
    content = json.loads(encode_content(copy.content))
    return _document(SENT_KIND, to=copy.to, id=copy.client_id, content=content)


@dataclass(frozen=True)
class HistoryPayload:
    """Where the encrypted history export for companion `device` is, and how to open
    and check it: secretstream key and header, SHA-256 of the encrypted object, and
    the plaintext size (the object's size follows from it)."""

    device: str
    media_id: str
    key: bytes = field(repr=False)
    header: bytes = field(repr=False)
    sha256: str
    size: int


def encode_history(history: HistoryPayload) -> bytes:
    return _document(
        HISTORY_KIND,
        device=history.device,
        media_id=history.media_id,
        key=base64.b64encode(history.key).decode(),
        header=base64.b64encode(history.header).decode(),
        sha256=history.sha256,
        size=history.size,
    )


def encode(content: Content) -> bytes:
    """A content object -> the plaintext that goes into the ratchet."""
    return encode_content(content).encode()


def encode_text(text: str) -> bytes:
    """Validate `text` as a text message and encode it (ValueError if it is not one)."""
    if not isinstance(text, str):
        raise TypeError("text must be a str")
    return encode(Text(text))


def decode(plaintext: bytes) -> Content:
    """Decrypted plaintext -> one of the content kinds, or UnsupportedContent."""
    try:
        return parse_content(plaintext)
    except ContentError as exc:
        raise UnsupportedContent(str(exc)) from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # a check this version missed: still the sender's malformed document, never a
        # crash of receiving (which would leave the envelope unacked for good)
        raise UnsupportedContent(f"malformed content ({type(exc).__name__})") from exc


def decode_any(
    plaintext: bytes,
) -> Content | SenderKeyPayload | SentCopy | HistoryPayload | CallSignal:
    """What a pairwise message carries: content to show, a member's sender key, a
    call signal, or (from this account's other devices) a copy of a message they
    sent or the history for a new companion."""
    try:
        document = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError, RecursionError):
        document = None
    if isinstance(document, dict) and document.get("kind") == SENDER_KEY_KIND:
        return _sender_key(document)
    if isinstance(document, dict) and document.get("kind") == SENT_KIND:
        return _sent_copy(document)
    if isinstance(document, dict) and document.get("kind") == HISTORY_KIND:
        return _history(document)
    if isinstance(document, dict) and document.get("kind") == CALL_KIND:
        try:
            return parse_signal(document)
        except (ContentError, TypeError, ValueError) as exc:
            raise UnsupportedContent(f"call signal: {exc}") from exc
    return decode(plaintext)


def _sent_copy(document: dict[str, Any]) -> SentCopy:
    to, client_id, content = document.get("to"), document.get("id"), document.get("content")
    if set(document) != _SENT_FIELDS or document.get("v") != 1:
        raise UnsupportedContent("a sent copy with unknown or missing fields")
    if not is_user_id(to):
        raise UnsupportedContent("a sent copy without a valid recipient")
    if not is_client_id(client_id):
        raise UnsupportedContent("a sent copy without a valid client id")
    if not isinstance(content, dict) or content.get("kind") in _NOT_CONTENT:
        raise UnsupportedContent("a sent copy without content")
    return SentCopy(to, client_id, decode(json.dumps(content).encode()))


_NOT_CONTENT = (SENDER_KEY_KIND, SENT_KIND, HISTORY_KIND, CALL_KIND)


def _history(document: dict[str, Any]) -> HistoryPayload:
    if set(document) != _HISTORY_FIELDS or document.get("v") != 1:
        raise UnsupportedContent("a history message with unknown or missing fields")
    device, media_id = document["device"], document["media_id"]
    sha256, size = document["sha256"], document["size"]
    if not is_device_id(device):
        raise UnsupportedContent("a history message without a valid device id")
    if not is_media_id(media_id):
        raise UnsupportedContent("a history message without a valid media id")
    if not isinstance(sha256, str) or len(sha256) != 64 or not set(sha256) <= _SHA256_HEX:
        raise UnsupportedContent("a history message without a valid SHA-256")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_HISTORY_BYTES:
        raise UnsupportedContent("a history message without a valid size")
    key = _b64_field(document["key"], KEY_BYTES, "key")
    header = _b64_field(document["header"], HEADER_BYTES, "header")
    return HistoryPayload(device, media_id, key, header, sha256, size)


def _b64_field(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 4 * length:
        raise UnsupportedContent(f"a history message without a {what}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnsupportedContent(f"a history {what} that is not base64") from exc
    if len(raw) != length:
        raise UnsupportedContent(f"a history {what} of the wrong length")
    return raw


def _sender_key(document: dict[str, Any]) -> SenderKeyPayload:
    group, version, key = document.get("group"), document.get("version"), document.get("key")
    if set(document) != _SENDER_KEY_FIELDS or document.get("v") != 1:
        raise UnsupportedContent("a sender key message with unknown or missing fields")
    if not is_group_id(group):
        raise UnsupportedContent("a sender key message without a valid group id")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnsupportedContent("a sender key message without a valid group version")
    if not isinstance(key, str) or len(key) > _MAX_KEY_CHARS:
        raise UnsupportedContent("a sender key message without a key")
    try:
        distribution = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnsupportedContent("a sender key that is not base64") from exc
    return SenderKeyPayload(group, version, distribution)


def describe(content: Content) -> str:
    """One line that stands for a message in lists and notifications: the text
    itself for a text, a symbol and a name for everything else."""
    if isinstance(content, Text):
        return content.text
    if isinstance(content, Location):
        return f"📍 {content.name or 'Location'}"
    if isinstance(content, ContactCard):
        return f"👤 {content.name}"
    if isinstance(content, Payment):
        line = f"💸 {content.name} requests {content.shown_amount}"
        return f"{line}: {content.note}" if content.note else line
    if isinstance(content, PaymentStatus):
        return "✅ Paid" if content.status == "paid" else "❌ Declined to pay"
    if isinstance(content, Reaction):
        return f"reacted {content.emoji}" if content.emoji else "took back a reaction"
    if isinstance(content, Edit):
        return f"✏️ {content.text}"
    if isinstance(content, Delete):
        return "🚫 deleted a message"
    if isinstance(content, TimerChange):
        return f"⏱ disappearing messages: {timer_label(content.seconds)}"
    return _describe_attachment(content)


def timer_label(seconds: int) -> str:
    """A disappearing timer as people say it: off, 24 hours, 7 days, 90 days."""
    if seconds <= 0:
        return "off"
    if seconds % 86400 == 0 and seconds > 86400:
        return f"{seconds // 86400} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    return f"{seconds} seconds"


_SYMBOLS = {"image": "📷", "video": "🎬", "audio": "🎵", "document": "📎"}


def _describe_attachment(attachment: Attachment) -> str:
    line = f"{_SYMBOLS.get(attachment.kind, '📎')} {attachment.name}"
    return f"{line}: {attachment.caption}" if attachment.caption else line
