"""What a message says: the content kinds and their wire encoding.

Message content is JSON inside the end-to-end encrypted payload, so the server
never sees which kind a message is. Every kind is a frozen dataclass that
validates itself; `parse_content` turns untrusted JSON into one of them or
raises ContentError with a clear message (never anything else):

    {"v":1,"kind":"text","text":...}
    {"v":1,"kind":"location","lat":...,"lon":...,"name"?:...}
    {"v":1,"kind":"contact","name":...,"phones":[...]}
    {"v":1,"kind":"image"|"video"|"audio"|"document","media_id","key","header",
     "sha256","size","mime","name","thumbnail"?,"caption"?,"width"?,"height"?}

An `Attachment` only describes a file; encrypting, uploading and fetching it
is parley.attachments.
"""

from __future__ import annotations

from parley.content.attachment import (
    ATTACHMENT_KINDS,
    CHUNK_BYTES,
    MAX_CAPTION_CHARS,
    Attachment,
    AttachmentKind,
    encrypted_size,
    kind_for_mime,
)
from parley.content.codec import Content, encode_content, parse_content
from parley.content.errors import ContentError, MediaError
from parley.content.fields import MAX_NAME_CHARS
from parley.content.kinds import MAX_TEXT_CHARS, ContactCard, Location, Text

__all__ = [
    "ATTACHMENT_KINDS",
    "CHUNK_BYTES",
    "MAX_CAPTION_CHARS",
    "MAX_NAME_CHARS",
    "MAX_TEXT_CHARS",
    "Attachment",
    "AttachmentKind",
    "ContactCard",
    "Content",
    "ContentError",
    "Location",
    "MediaError",
    "Text",
    "encode_content",
    "encrypted_size",
    "kind_for_mime",
    "parse_content",
]
