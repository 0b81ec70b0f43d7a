"""What one message does to another: react to it, edit it, delete it for everyone,
and what changes a conversation: its disappearing timer. None is shown as a
message of its own; each is applied to its target on every device of the
conversation (parley.conversations.actions):

    {"v":1,"kind":"reaction","target":{"author":<user id>,"id":<client id>},"emoji":"👍"}
    {"v":1,"kind":"reaction","target":{...},"emoji":""}          (takes the reaction back)
    {"v":1,"kind":"edit","target":{...},"text":"the new text"}
    {"v":1,"kind":"delete","target":{...}}
    {"v":1,"kind":"timer","seconds":604800}                      (0 turns it off)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from parley.content.context import TIMERS, Target, parse_target
from parley.content.errors import ContentError
from parley.content.fields import VERSION, check_count, check_text, field
from parley.content.kinds import MAX_TEXT_CHARS

__all__ = [
    "ACTION_KINDS",
    "TIMER_CHOICES",
    "Action",
    "Delete",
    "Edit",
    "Reaction",
    "TimerChange",
    "check_emoji",
]

# The disappearing timers a conversation may be set to (seconds): off, 24 h, 7 d, 90 d.
TIMER_CHOICES: Final = TIMERS


def check_emoji(value: object) -> str:
    """A reaction: exactly one emoji (a flag, a family or a skin tone is one), or ""
    to take a reaction back. ContentError for anything else."""
    if not isinstance(value, str):
        raise ContentError("a reaction must be a string")
    if value == "":
        return value
    import emoji  # about 25 ms: only when a reaction is checked

    if len(value) > 32 or not emoji.is_emoji(value):
        raise ContentError(f"a reaction is one emoji, not {value!r:.40}")
    return value


def _exact(data: Mapping[str, Any], *names: str) -> None:
    if set(data) != {"v", "kind", *names}:
        raise ContentError(f"a {data.get('kind')} needs exactly {', '.join(names)}")


@dataclass(frozen=True)
class Reaction:
    """One emoji from one person on one message; "" takes theirs back."""

    target: Target
    emoji: str
    kind: ClassVar[str] = "reaction"

    def __post_init__(self) -> None:
        check_emoji(self.emoji)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "kind": self.kind,
            "target": self.target.to_dict(),
            "emoji": self.emoji,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reaction:
        _exact(data, "target", "emoji")
        return cls(parse_target(field(data, "target")), field(data, "emoji"))


@dataclass(frozen=True)
class Edit:
    """The new text of a text message its author sent."""

    target: Target
    text: str
    kind: ClassVar[str] = "edit"

    def __post_init__(self) -> None:
        check_text(self.text, "text", max_chars=MAX_TEXT_CHARS, allow_newlines=True)

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind, "target": self.target.to_dict(), "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Edit:
        _exact(data, "target", "text")
        return cls(parse_target(field(data, "target")), field(data, "text"))


@dataclass(frozen=True)
class Delete:
    """Delete a message for everyone (its author, or a group admin)."""

    target: Target
    kind: ClassVar[str] = "delete"

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind, "target": self.target.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delete:
        _exact(data, "target")
        return cls(parse_target(field(data, "target")))


@dataclass(frozen=True)
class TimerChange:
    """The conversation's disappearing timer from now on (seconds; 0: off)."""

    seconds: int
    kind: ClassVar[str] = "timer"

    def __post_init__(self) -> None:
        check_count(self.seconds, "timer")
        if self.seconds not in TIMER_CHOICES:
            raise ContentError("a timer is off, 24 hours, 7 days or 90 days")

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimerChange:
        _exact(data, "seconds")
        return cls(field(data, "seconds"))


Action = Reaction | Edit | Delete | TimerChange
ACTION_KINDS: Final = frozenset({"reaction", "edit", "delete", "timer"})
