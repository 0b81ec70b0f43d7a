"""What a message says about other messages: the one it replies to (a quote) and
how often it was forwarded, and its disappearing timer. Rides as `"ctx"` beside
any shown kind's fields:

    {"v":1,"kind":"text","text":"yes!","ctx":{"reply":{"author":<user id>,
     "id":<client id>,"kind":"text","excerpt":"Lunch at 1?"},"fwd":2,"timer":86400}}

A quote names its message by (author, client id), the pair that is unique on
every device, and carries a short excerpt so it still shows when the quoted
message is gone (deleted, disappeared, or never on this device). A timer (in
seconds) says the message disappears that long after it was read (received) or
sent (sent), on every device (parley.conversations.actions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from parley.content.errors import ContentError
from parley.content.fields import BIDI_OVERRIDES, CONTROL, check_count
from parley.ids import is_client_id, is_user_id

__all__ = [
    "FORWARDED_MANY",
    "MAX_EXCERPT_CHARS",
    "MAX_HOPS",
    "TIMERS",
    "Context",
    "Quote",
    "Target",
    "context_dict",
    "excerpt_of",
    "parse_context",
    "parse_target",
]

MAX_EXCERPT_CHARS: Final = 200
# Hops counted exactly up to here; more is "many" (a forward of a forward of ...).
MAX_HOPS: Final = 127
# From this many hops a message shows "Forwarded many times", as WhatsApp's does.
FORWARDED_MANY: Final = 5
# The disappearing timers a conversation (and so a message) may have, in seconds:
# off, 24 h, 7 d, 90 d.
TIMERS: Final = (0, 24 * 3600, 7 * 24 * 3600, 90 * 24 * 3600)
_QUOTED_KINDS: Final = frozenset(
    {
        "text",
        "location",
        "contact",
        "image",
        "video",
        "audio",
        "document",
        "payment",
        "payment_status",
    }
)


@dataclass(frozen=True)
class Target:
    """A message named by its author's user id and its client id."""

    author: str
    client_id: str

    def __post_init__(self) -> None:
        if not is_user_id(self.author):
            raise ContentError("a message reference needs the author's user id")
        if not is_client_id(self.client_id):
            raise ContentError("a message reference needs a valid client id")

    def to_dict(self) -> dict[str, str]:
        return {"author": self.author, "id": self.client_id}


def parse_target(value: object, what: str = "target") -> Target:
    if not isinstance(value, Mapping) or set(value) != {"author", "id"}:
        raise ContentError(f"{what} must be an object with author and id")
    return Target(value["author"], value["id"])


def excerpt_of(text: str) -> str:
    """The first line of `text`, cut to MAX_EXCERPT_CHARS (an ellipsis if cut)."""
    line = " ".join(text.split())
    if len(line) <= MAX_EXCERPT_CHARS:
        return line
    return line[: MAX_EXCERPT_CHARS - 1] + "…"


@dataclass(frozen=True)
class Quote:
    """The message a reply answers: who wrote it, its client id, its kind and a
    short excerpt (what lists show for it)."""

    target: Target
    kind: str
    excerpt: str

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in _QUOTED_KINDS:
            raise ContentError(f"a reply cannot quote a {self.kind!r:.20} message")
        if not isinstance(self.excerpt, str) or len(self.excerpt) > MAX_EXCERPT_CHARS:
            raise ContentError(f"a quote's excerpt is at most {MAX_EXCERPT_CHARS} characters")
        if CONTROL.search(self.excerpt) or BIDI_OVERRIDES.search(self.excerpt):
            raise ContentError("a quote's excerpt contains control characters")

    def to_dict(self) -> dict[str, Any]:
        return {**self.target.to_dict(), "kind": self.kind, "excerpt": self.excerpt}

    @classmethod
    def from_dict(cls, value: object) -> Quote:
        if not isinstance(value, Mapping) or set(value) != {"author", "id", "kind", "excerpt"}:
            raise ContentError("a quote must have author, id, kind and excerpt")
        target = parse_target({"author": value["author"], "id": value["id"]}, "a quote")
        return cls(target, value["kind"], value["excerpt"])


@dataclass(frozen=True)
class Context:
    """A shown message's relations: the message it replies to, how many times it was
    forwarded to get here (0: written by its sender), and its disappearing timer in
    seconds (0: it stays)."""

    reply: Quote | None = None
    forwarded: int = 0
    timer: int = 0

    def __post_init__(self) -> None:
        check_count(self.forwarded, "forward count")
        if self.forwarded > MAX_HOPS:
            object.__setattr__(self, "forwarded", MAX_HOPS)
        check_count(self.timer, "timer")
        if self.timer not in TIMERS:
            raise ContentError("a timer is off, 24 hours, 7 days or 90 days")

    @property
    def empty(self) -> bool:
        return self.reply is None and self.forwarded == 0 and self.timer == 0


def context_dict(ctx: Context | None) -> dict[str, Any] | None:
    """The `"ctx"` JSON of a context (None when there is nothing to say)."""
    if ctx is None or ctx.empty:
        return None
    out: dict[str, Any] = {}
    if ctx.reply is not None:
        out["reply"] = ctx.reply.to_dict()
    if ctx.forwarded:
        out["fwd"] = ctx.forwarded
    if ctx.timer:
        out["timer"] = ctx.timer
    return out


def parse_context(value: object) -> Context | None:
    """The `"ctx"` of untrusted content JSON (None when absent)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not set(value) <= {"reply", "fwd", "timer"}:
        raise ContentError("ctx must be an object with reply, fwd and/or timer")
    reply = Quote.from_dict(value["reply"]) if "reply" in value else None
    numbers = []
    for name in ("fwd", "timer"):
        number = value.get(name, 0)
        if name in value and (
            isinstance(number, bool) or not isinstance(number, int) or number < 1
        ):
            raise ContentError(f"{name} must be a positive integer")
        numbers.append(number)
    return Context(reply, *numbers)
