"""Conversation addresses: a user id, or a group's "g:<group id>".

A message's conversation (`Message.peer`) and a send frame's `to` name either
a person (their user id) or a group (`GROUP_PREFIX` + its id). This module is
the one place that tells them apart; the wire format is the service's.
"""

from __future__ import annotations

__all__ = ["GROUP_PREFIX", "group_address", "group_id_of"]

# A group's conversation key: where its messages are kept (`Message.peer`) and
# what a group send frame names as `to`.
GROUP_PREFIX = "g:"


def group_address(group_id: str) -> str:
    """The conversation address of a group: "g:<group id>"."""
    return GROUP_PREFIX + group_id


def group_id_of(address: str) -> str | None:
    """The group id if `address` names a group, None if it names a user."""
    return address[len(GROUP_PREFIX) :] if address.startswith(GROUP_PREFIX) else None
