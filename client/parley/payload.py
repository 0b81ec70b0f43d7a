"""What travels INSIDE the end-to-end encryption: a small JSON document.

    {"v": 1, "kind": "text", "text": "hi"}

The server never sees it. `kind` lets later versions add media, locations and
the like; a client that meets a kind it does not know says so instead of
guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["MAX_TEXT_CHARS", "Content", "UnsupportedContent", "decode", "encode_text"]

PAYLOAD_VERSION = 1
# Far below the crypto's plaintext bound and API Gateway's frame limits, even
# with a ciphertext per recipient device in one frame.
MAX_TEXT_CHARS = 8_000


class UnsupportedContent(ValueError):
    """The decrypted payload is not a document this client understands."""


@dataclass(frozen=True)
class Content:
    kind: str
    text: str


def encode_text(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError("text must be a str")
    if not text:
        raise ValueError("a message needs some text")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"a message holds at most {MAX_TEXT_CHARS} characters")
    return json.dumps(
        {"v": PAYLOAD_VERSION, "kind": "text", "text": text},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def decode(plaintext: bytes) -> Content:
    try:
        raw = json.loads(plaintext.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnsupportedContent("payload is not UTF-8 JSON") from exc
    if not isinstance(raw, dict) or raw.get("v") != PAYLOAD_VERSION:
        raise UnsupportedContent("payload version is not 1")
    kind = raw.get("kind")
    if kind != "text":
        raise UnsupportedContent(f"payload kind {str(kind)[:20]!r} is not supported")
    text = raw.get("text")
    if not isinstance(text, str):
        raise UnsupportedContent("text payload without text")
    return Content(kind, text)
