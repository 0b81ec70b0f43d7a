"""The contacts a user saved: what "contacts" means for last seen.

Only the user's own devices say who their contacts are (the app saves a contact
when its user adds one, writes to someone first, or accepts a message request, and
removes it when the user does): fetching someone's keys, writing to them or being
written to records nothing. The records sit in the user's own partition, so the
user's other devices read the same list (GET /v1/contacts).
"""

from __future__ import annotations

from typing import Protocol

from parley_server.ids import is_user_id
from parley_server.logic.ports import Caller
from parley_server.models.errors import BadRequest

__all__ = ["ContactsPort", "list_saved", "remove", "save"]


class ContactsPort(Protocol):
    def save(self, owner: str, contact: str, *, now: float) -> None: ...

    def remove(self, owner: str, contact: str) -> None: ...

    def saved(self, owner: str) -> list[str]: ...


def _target(caller: Caller, user_id: str) -> str:
    if not is_user_id(user_id):
        raise BadRequest("user_id must be 32 lowercase hex characters", field="user_id")
    if user_id == caller.user_id:
        raise BadRequest("you are not your own contact", field="user_id")
    return user_id


def save(caller: Caller, user_id: str, *, contacts: ContactsPort, now: float) -> None:
    """The caller counts `user_id` as a contact (NotFound: no such user)."""
    contacts.save(caller.user_id, _target(caller, user_id), now=now)


def remove(caller: Caller, user_id: str, *, contacts: ContactsPort) -> None:
    """The caller no longer counts `user_id` as a contact."""
    contacts.remove(caller.user_id, _target(caller, user_id))


def list_saved(caller: Caller, *, contacts: ContactsPort) -> list[str]:
    return contacts.saved(caller.user_id)
