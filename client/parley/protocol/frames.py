"""What the client writes: the outbox entry, its frame, API Gateway's size limits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parley.ids import group_id_of

# API Gateway: at most 32 KB per WebSocket frame and 128 KB per message.
FRAGMENT_BYTES = 32_000
MAX_MESSAGE_BYTES = 128 * 1024
# Messages one `send` frame carries at most (the service's MAX_MESSAGES_PER_SEND): a
# conversation's queue goes out in frames of up to this many, each kept to one
# WebSocket frame (FRAGMENT_BYTES), which API Gateway bills as one message.
MAX_MESSAGES_PER_SEND = 25


class FrameTooLarge(ValueError):
    """A frame would exceed API Gateway's 128 KB message limit."""


@dataclass(frozen=True)
class OutboxEntry:
    """One message waiting for the server's `sent`: resent as is until answered."""

    client_id: str
    to: str  # a conversation address: a user id, or a group's (`parley.ids`)
    payloads: dict[str, str] | None = None  # recipient device id -> b64 ciphertext
    body: str | None = None  # group messages: one sender-key ciphertext
    version: int | None = None  # group messages: the group version it was encrypted for
    after: tuple[str, ...] = ()  # client ids that must be answered before this goes
    # a disappearing message's timer (s): the service keeps it no longer than that
    ttl: int | None = None
    # call signalling: kept `ttl` seconds at most, by the service and in this outbox
    # (not sent by then: dropped); `ring` wakes the recipient's offline devices
    ephemeral: bool = False
    ring: bool = False

    @property
    def conversation(self) -> str:
        return self.to

    @property
    def group_id(self) -> str | None:
        """The group this entry goes to, or None for a user."""
        return group_id_of(self.to)

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": "send", "id": self.client_id, "to": self.to}
        if self.body is not None:
            out["body"] = self.body
            if self.version is not None:
                out["version"] = self.version
        else:
            out["payloads"] = dict(self.payloads or {})
        if self.ttl:
            out["ttl"] = self.ttl
        if self.ephemeral:
            out["ephemeral"] = True
        if self.ring:
            out["ring"] = True
        return out

    def joins(self, first: OutboxEntry) -> bool:
        """Whether this entry may follow `first` in its `send` frame (`more`): plain
        messages to the same user, encrypted for the same devices (what the service
        checks once for the frame), neither ephemeral nor waiting on another."""
        return (
            first.plain
            and self.plain
            and self.to == first.to
            and not self.after
            and set(self.payloads or ()) == set(first.payloads or ())
        )

    @property
    def plain(self) -> bool:
        """A message to a user that is not call signalling."""
        return self.payloads is not None and self.body is None and not self.ephemeral

    def following(self) -> dict[str, Any]:
        """This entry as a message in another's `more`."""
        out: dict[str, Any] = {"id": self.client_id, "payloads": dict(self.payloads or {})}
        if self.ttl:
            out["ttl"] = self.ttl
        return out


def check_size(entry: OutboxEntry) -> None:
    """Raise FrameTooLarge if the entry's frame exceeds API Gateway's message limit."""
    size = len(json.dumps(entry.frame(), separators=(",", ":")))
    if size > MAX_MESSAGE_BYTES:
        raise FrameTooLarge(f"a {size}-byte frame exceeds the {MAX_MESSAGE_BYTES}-byte limit")


def fragment(text: str, limit: int = FRAGMENT_BYTES) -> list[str]:
    """Split `text` into pieces of at most `limit` UTF-8 bytes, never inside a character."""
    data = text.encode()
    if len(data) <= limit:
        return [text]
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        # step back off UTF-8 continuation bytes (10xxxxxx)
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces
