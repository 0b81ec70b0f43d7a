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
    {"v":1,"kind":"payment","vpa","name","amount","currency","note"?,"ref"}
    {"v":1,"kind":"payment_status","ref","status","txn"?,"ctx"}   (parley.content.payment)

Each of those may say what it replies to, how often it was forwarded and its
disappearing timer (`"ctx"`, parley.content.context). Four more kinds act on
other messages or on the conversation (parley.content.actions): a reaction, an
edit, a delete for everyone, and a timer change.

An `Attachment` only describes a file; encrypting, uploading and fetching it
is parley.attachments.
"""

from __future__ import annotations

from parley.content.actions import (
    ACTION_KINDS,
    TIMER_CHOICES,
    Action,
    Delete,
    Edit,
    Reaction,
    TimerChange,
    check_emoji,
)
from parley.content.attachment import (
    ATTACHMENT_KINDS,
    CHUNK_BYTES,
    MAX_CAPTION_CHARS,
    Attachment,
    AttachmentKind,
    encrypted_size,
    kind_for_mime,
)
from parley.content.codec import Content, Shown, encode_content, parse_content, with_context
from parley.content.context import (
    FORWARDED_MANY,
    MAX_EXCERPT_CHARS,
    Context,
    Quote,
    Target,
    excerpt_of,
)
from parley.content.errors import ContentError, MediaError
from parley.content.fields import MAX_NAME_CHARS
from parley.content.kinds import MAX_TEXT_CHARS, ContactCard, Location, Text
from parley.content.payment import (
    PAYMENT_STATUSES,
    Payment,
    PaymentStatus,
    check_vpa,
    format_inr,
    parse_amount,
)

__all__ = [
    "ACTION_KINDS",
    "ATTACHMENT_KINDS",
    "CHUNK_BYTES",
    "FORWARDED_MANY",
    "MAX_CAPTION_CHARS",
    "MAX_EXCERPT_CHARS",
    "MAX_NAME_CHARS",
    "MAX_TEXT_CHARS",
    "PAYMENT_STATUSES",
    "TIMER_CHOICES",
    "Action",
    "Attachment",
    "AttachmentKind",
    "ContactCard",
    "Content",
    "ContentError",
    "Context",
    "Delete",
    "Edit",
    "Location",
    "MediaError",
    "Payment",
    "PaymentStatus",
    "Quote",
    "Reaction",
    "Shown",
    "Target",
    "Text",
    "TimerChange",
    "check_emoji",
    "check_vpa",
    "encode_content",
    "encrypted_size",
    "excerpt_of",
    "format_inr",
    "kind_for_mime",
    "parse_amount",
    "parse_content",
    "with_context",
]
