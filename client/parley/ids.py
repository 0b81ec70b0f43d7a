"""The identifiers the client checks, in one place: user, device, group and
media ids (as the service mints them), client ids (as senders choose them), and
conversation addresses: a user id, or a group's "g:<group id>".

A message's conversation (`Message.peer`) and a send frame's `to` name either
a person (their user id) or a group (`GROUP_PREFIX` + its id). This module is
the one place that tells them apart; the wire format is the service's
(docs/PROTOCOL.md, "Identifiers").
"""

from __future__ import annotations

import re
from typing import TypeGuard

__all__ = [
    "GROUP_PREFIX",
    "group_address",
    "group_id_of",
    "is_client_id",
    "is_device_id",
    "is_group_id",
    "is_media_id",
    "is_user_id",
]

_USER_ID = re.compile(r"[0-9a-f]{32}")  # the service's uuid4().hex
_DEVICE_ID = re.compile(r"[0-9a-f]{16}")  # 8 random bytes, hex
_GROUP_ID = re.compile(r"[0-9a-f]{32}")  # the service's uuid4().hex
_MEDIA_ID = re.compile(r"[0-9a-f]{32}")  # 16 random bytes, hex
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # chosen by the sender; what a retry repeats

# A group's conversation key: where its messages are kept (`Message.peer`) and
# what a group send frame names as `to`.
GROUP_PREFIX = "g:"


def _matches(pattern: re.Pattern[str], value: object) -> TypeGuard[str]:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def is_user_id(value: object) -> TypeGuard[str]:
    """A user id: 32 lowercase hex characters."""
    return _matches(_USER_ID, value)


def is_device_id(value: object) -> TypeGuard[str]:
    """A device id: 16 lowercase hex characters."""
    return _matches(_DEVICE_ID, value)


def is_group_id(value: object) -> TypeGuard[str]:
    """A bare group id (not its "g:" address): 32 lowercase hex characters."""
    return _matches(_GROUP_ID, value)


def is_media_id(value: object) -> TypeGuard[str]:
    """An uploaded attachment's id: 32 lowercase hex characters."""
    return _matches(_MEDIA_ID, value)


def is_client_id(value: object) -> TypeGuard[str]:
    """A message's client id: 1-64 of A-Z a-z 0-9 _ -."""
    return _matches(_CLIENT_ID, value)


def group_address(group_id: str) -> str:
    """The conversation address of a group: "g:<group id>"."""
    return GROUP_PREFIX + group_id


def group_id_of(address: str) -> str | None:
    """The group id if `address` names a group, None if it names a user."""
    return address[len(GROUP_PREFIX) :] if address.startswith(GROUP_PREFIX) else None
