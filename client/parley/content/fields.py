"""Checks for the fields of untrusted content JSON; each raises ContentError."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from parley.content.errors import ContentError

__all__ = [
    "BIDI_OVERRIDES",
    "CONTROL",
    "MAX_NAME_CHARS",
    "VERSION",
    "b64",
    "check_count",
    "check_number",
    "check_optional_text",
    "check_text",
    "decode_b64",
    "field",
]

VERSION: Final = 1
# names of places, people and files
MAX_NAME_CHARS: Final = 255

# C0 and C1 controls and DEL: a terminal may act on them (C1's CSI and OSC too)
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# what reorders text as it is shown (a name or a note that reads as another)
BIDI_OVERRIDES: Final = re.compile("[\u202a-\u202e\u2066-\u2069]")


def check_text(value: object, what: str, *, max_chars: int, allow_newlines: bool = False) -> str:
    if not isinstance(value, str):
        raise ContentError(f"{what} must be a string")
    if not value.strip():
        raise ContentError(f"{what} must not be empty")
    if len(value) > max_chars:
        raise ContentError(f"{what} is longer than {max_chars} characters")
    checked = value.replace("\n", "").replace("\t", "") if allow_newlines else value
    if CONTROL.search(checked):
        raise ContentError(f"{what} contains control characters")
    if not allow_newlines and BIDI_OVERRIDES.search(value):
        raise ContentError(f"{what} contains characters that reorder how it is shown")
    return value


def check_optional_text(value: object, what: str, *, max_chars: int) -> str | None:
    if value is None:
        return None
    return check_text(value, what, max_chars=max_chars, allow_newlines=True)


def check_number(value: object, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContentError(f"{what} must be a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ContentError(f"{what} must be between {low:g} and {high:g}")
    return number


def check_count(value: object, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContentError(f"{what} must be an integer")
    if value < minimum:
        raise ContentError(f"{what} must be at least {minimum}")
    return value


def decode_b64(value: object, what: str, *, length: int | None = None, max_len: int = 0) -> bytes:
    if not isinstance(value, str):
        raise ContentError(f"{what} must be base64 text")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ContentError(f"{what} is not valid base64") from exc
    if length is not None and len(raw) != length:
        raise ContentError(f"{what} must be {length} bytes")
    if max_len and len(raw) > max_len:
        raise ContentError(f"{what} is larger than {max_len} bytes")
    return raw


def field(data: Mapping[str, Any], name: str) -> Any:
    """A field of untrusted JSON, still unchecked (the dataclass validates it)."""
    return data.get(name)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
