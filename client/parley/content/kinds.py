"""The message kinds that are not files: text, location and contact card."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from parley.content.context import Context
from parley.content.errors import ContentError
from parley.content.fields import (
    MAX_NAME_CHARS,
    VERSION,
    check_number,
    check_optional_text,
    check_text,
)
from parley.content.fields import field as json_field

__all__ = ["MAX_PHONES", "MAX_TEXT_CHARS", "ContactCard", "Location", "Text"]

# Far below the crypto's plaintext bound and API Gateway's frame limits, even in
# UTF-8 and with a ciphertext per recipient device in one frame.
MAX_TEXT_CHARS: Final = 8_000
MAX_PHONES: Final = 20

_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{1,30}")


@dataclass(frozen=True)
class Text:
    """A text message."""

    text: str
    # what it replies to, forwarding, timer: set by the codec from "ctx"
    ctx: Context | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        check_text(self.text, "text", max_chars=MAX_TEXT_CHARS, allow_newlines=True)

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind, "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Text:
        return cls(text=json_field(data, "text"))  # validated in __post_init__


@dataclass(frozen=True)
class Location:
    """A point on the map, optionally named."""

    lat: float
    lon: float
    name: str | None = None
    # what it replies to, forwarding, timer: set by the codec from "ctx"
    ctx: Context | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "location"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lat", check_number(self.lat, "lat", -90.0, 90.0))
        object.__setattr__(self, "lon", check_number(self.lon, "lon", -180.0, 180.0))
        check_optional_text(self.name, "location name", max_chars=MAX_NAME_CHARS)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "kind": self.kind, "lat": self.lat, "lon": self.lon}
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Location:
        return cls(
            lat=json_field(data, "lat"), lon=json_field(data, "lon"), name=json_field(data, "name")
        )

    def map_url(self, zoom: int = 16) -> str:
        """An OpenStreetMap link with a marker on the point."""
        lat, lon = _coordinate(self.lat), _coordinate(self.lon)
        return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map={zoom}/{lat}/{lon}"


def _coordinate(value: float) -> str:
    # six decimals is about 10 cm: more only makes the link longer
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True)
class ContactCard:
    """A contact card: a name and one or more phone numbers."""

    name: str
    phones: tuple[str, ...]
    # what it replies to, forwarding, timer: set by the codec from "ctx"
    ctx: Context | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "contact"

    def __post_init__(self) -> None:
        check_text(self.name, "contact name", max_chars=MAX_NAME_CHARS)
        if isinstance(self.phones, str) or not isinstance(self.phones, list | tuple):
            raise ContentError("phones must be a list of phone numbers")
        if not 1 <= len(self.phones) <= MAX_PHONES:
            raise ContentError(f"a contact has 1 to {MAX_PHONES} phone numbers")
        for phone in self.phones:
            if not isinstance(phone, str) or not _PHONE.fullmatch(phone):
                raise ContentError(f"not a phone number: {phone!r:.40}")
            if sum(c.isdigit() for c in phone) < 3:
                raise ContentError(f"not a phone number: {phone!r:.40}")
        object.__setattr__(self, "phones", tuple(self.phones))

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind, "name": self.name, "phones": list(self.phones)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContactCard:
        return cls(name=json_field(data, "name"), phones=json_field(data, "phones"))
