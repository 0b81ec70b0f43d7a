"""Message content to and from the JSON inside the encrypted payload."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from parley.content.attachment import ATTACHMENT_KINDS, Attachment
from parley.content.errors import ContentError
from parley.content.fields import VERSION, field
from parley.content.kinds import ContactCard, Location, Text

__all__ = ["Content", "encode_content", "parse_content"]

Content: TypeAlias = Text | Location | ContactCard | Attachment

_PARSERS: Final[dict[str, Callable[[Mapping[str, Any]], Content]]] = {
    "text": Text.from_dict,
    "location": Location.from_dict,
    "contact": ContactCard.from_dict,
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
    version = field(data, "v")
    if version != VERSION or isinstance(version, bool):
        raise ContentError(f"unsupported content version {version!r:.20}")
    kind = field(data, "kind")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ContentError(f"unknown message kind {kind!r:.20}")
    return parser(data)


def encode_content(content: Content) -> str:
    """A content object -> the compact JSON that goes into the encrypted payload."""
    return json.dumps(content.to_dict(), separators=(",", ":"), ensure_ascii=False)
