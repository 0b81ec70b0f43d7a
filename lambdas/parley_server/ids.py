"""The server's id formats: how user, device, group and media ids are minted and
checked (frames, paths, tokens and the authorizer context all use these rules)."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import TypeGuard

__all__ = [
    "DEVICE_HEX",
    "DEVICE_ID",
    "DEVICE_ID_PATTERN",
    "GROUP_ID",
    "GROUP_ID_PATTERN",
    "MEDIA_ID",
    "MEDIA_ID_PATTERN",
    "USER_HEX",
    "USER_ID",
    "USER_ID_PATTERN",
    "is_device_id",
    "is_group_id",
    "is_media_id",
    "is_user_id",
    "new_device_id",
    "new_media_id",
    "new_user_id",
]

# Bare forms, for ids embedded in longer strings (server ids, sort keys).
USER_HEX = r"[0-9a-f]{32}"  # uuid4().hex
DEVICE_HEX = r"[0-9a-f]{16}"  # 8 random bytes, hex
# Anchored forms, for msgspec/OpenAPI `pattern=`; the compiled ones are for fullmatch.
USER_ID_PATTERN = f"^{USER_HEX}$"
DEVICE_ID_PATTERN = f"^{DEVICE_HEX}$"
GROUP_ID_PATTERN = r"^[0-9a-f]{32}$"  # uuid4().hex, chosen by the client that creates it
MEDIA_ID_PATTERN = r"^[0-9a-f]{32}$"  # 16 random bytes, hex

USER_ID = re.compile(USER_ID_PATTERN)
DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
GROUP_ID = re.compile(GROUP_ID_PATTERN)
MEDIA_ID = re.compile(MEDIA_ID_PATTERN)


def is_user_id(value: object) -> TypeGuard[str]:
    """32 lowercase hex characters."""
    return isinstance(value, str) and USER_ID.fullmatch(value) is not None


def is_device_id(value: object) -> TypeGuard[str]:
    """16 lowercase hex characters."""
    return isinstance(value, str) and DEVICE_ID.fullmatch(value) is not None


def is_group_id(value: object) -> TypeGuard[str]:
    """32 lowercase hex characters."""
    return isinstance(value, str) and GROUP_ID.fullmatch(value) is not None


def is_media_id(value: object) -> TypeGuard[str]:
    """32 lowercase hex characters."""
    return isinstance(value, str) and MEDIA_ID.fullmatch(value) is not None


def new_user_id() -> str:
    return uuid.uuid4().hex


def new_device_id() -> str:
    return secrets.token_hex(8)


def new_media_id() -> str:
    return secrets.token_hex(16)
