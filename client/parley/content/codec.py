"""Message content to and from the JSON inside the encrypted payload."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, TypeAlias

from parley.content.actions import Delete, Edit, Reaction, TimerChange
from parley.content.attachment import ATTACHMENT_KINDS, Attachment
from parley.content.context import Context, context_dict, parse_context
from parley.content.errors import ContentError
from parley.content.fields import VERSION, field
from parley.content.kinds import ContactCard, Location, Text
from parley.content.payment import Payment, PaymentStatus

__all__ = ["Content", "Shown", "encode_content", "parse_content", "with_context"]

# What shows as a message of its own (and may reply, be forwarded, disappear).
Shown: TypeAlias = Text | Location | ContactCard | Attachment | Payment | PaymentStatus
Content: TypeAlias = Shown | Reaction | Edit | Delete | TimerChange

_SHOWN: Final[dict[str, Callable[[Mapping[str, Any]], Shown]]] = {
    "text": Text.from_dict,
    "location": Location.from_dict,
    "contact": ContactCard.from_dict,
    "payment": Payment.from_dict,
    "payment_status": PaymentStatus.from_dict,
    **dict.fromkeys(ATTACHMENT_KINDS, Attachment.from_dict),
}
_ACTIONS: Final[dict[str, Callable[[Mapping[str, Any]], Content]]] = {
    "reaction": Reaction.from_dict,
    "edit": Edit.from_dict,
    "delete": Delete.from_dict,
    "timer": TimerChange.from_dict,
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
    version = field(data, "v")
    if version != VERSION or isinstance(version, bool):
        raise ContentError(f"unsupported content version {version!r:.20}")
    kind = field(data, "kind")
    if isinstance(kind, str) and kind in _ACTIONS:
        return _ACTIONS[kind](data)
    parser = _SHOWN.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ContentError(f"unknown message kind {kind!r:.20}")
    ctx = parse_context(data.get("ctx"))
    shown = parser(data)
    return shown if ctx is None or ctx.empty else replace(shown, ctx=ctx)


def with_context(content: Shown, ctx: Context | None) -> Shown:
    """`content` saying `ctx` (a reply, a forward, a timer) instead of what it said."""
    return replace(content, ctx=None if ctx is None or ctx.empty else ctx)


def encode_content(content: Content) -> str:
    """A content object -> the compact JSON that goes into the encrypted payload."""
    data = content.to_dict()
    ctx = context_dict(getattr(content, "ctx", None))
    if ctx is not None:
        data["ctx"] = ctx
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
