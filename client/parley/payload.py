"""What travels INSIDE the end-to-end encryption: a small JSON document.

    {"v": 1, "kind": "text", "text": "hi"}
    {"v": 1, "kind": "location", "lat": 48.8584, "lon": 2.2945, "name": "Eiffel Tower"}
    {"v": 1, "kind": "image", "media_id": ..., "key": ..., "sha256": ..., ...}

The server never sees it, not even which kind a message is. `parley.media`
defines every kind (text, image, video, audio, document, location, contact)
and validates it; this module is the SDK's door to it: bytes in and out of the
ratchet, and one error for anything this client does not understand, so a
malformed or unknown document is dropped with a warning instead of guessed at.
"""

from __future__ import annotations

from parley.media import (
    Attachment,
    Contact,
    Content,
    ContentError,
    Location,
    Text,
    encode_content,
    parse_content,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "Content",
    "UnsupportedContent",
    "decode",
    "describe",
    "encode",
    "encode_text",
]

# Far below the crypto's plaintext bound and API Gateway's frame limits, even
# with a ciphertext per recipient device in one frame (the same bound as media.Text).
MAX_TEXT_CHARS = 8_000


class UnsupportedContent(ValueError):
    """The decrypted payload is not a document this client understands."""


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


def describe(content: Content) -> str:
    """One line that stands for a message in lists and notifications: the text
    itself for a text, a symbol and a name for everything else."""
    if isinstance(content, Text):
        return content.text
    if isinstance(content, Location):
        return f"📍 {content.name or 'Location'}"
    if isinstance(content, Contact):
        return f"👤 {content.name}"
    return _describe_attachment(content)


_SYMBOLS = {"image": "📷", "video": "🎬", "audio": "🎵", "document": "📎"}


def _describe_attachment(attachment: Attachment) -> str:
    line = f"{_SYMBOLS.get(attachment.kind, '📎')} {attachment.name}"
    return f"{line}: {attachment.caption}" if attachment.caption else line
