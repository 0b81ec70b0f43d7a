"""The groups slice's error."""

from __future__ import annotations

from parley.errors import ParleyClientError

__all__ = ["NotAGroupMember"]


class NotAGroupMember(ParleyClientError):
    """This account is not (or no longer) a member of the group."""
