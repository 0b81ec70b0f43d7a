"""The contacts a user saved: what "contacts" means for last seen.

Only the user's own devices say who their contacts are (the app saves a contact
when its user adds one, writes to someone first, or accepts a message request, and
removes it when the user does): fetching someone's keys, writing to them or being
written to records nothing. The records sit in the user's own partition, so the
user's other devices read the same list (GET /v1/contacts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from parley_server.ids import is_user_id
from parley_server.logic.ports import Caller, LimiterPort
from parley_server.models.errors import BadRequest

if TYPE_CHECKING:
    from parley_server.config import Limits

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


def _limit_writes(caller: Caller, *, limits: Limits, limiter: LimiterPort, now: float) -> None:
    limiter.hit(
        "contacts",
        f"{caller.user_id}#{caller.device_id}",
        limit=limits.contact_writes_per_hour,
        window_s=3600,
        now=now,
    )


def save(
    caller: Caller,
    user_id: str,
    *,
    contacts: ContactsPort,
    limiter: LimiterPort,
    limits: Limits,
    now: float,
) -> None:
    """The caller counts `user_id` as a contact (NotFound: no such user; RateLimited
    past the device's hourly budget of saves and removals)."""
    target = _target(caller, user_id)
    _limit_writes(caller, limits=limits, limiter=limiter, now=now)
    contacts.save(caller.user_id, target, now=now)


def remove(
    caller: Caller,
    user_id: str,
    *,
    contacts: ContactsPort,
    limiter: LimiterPort,
    limits: Limits,
    now: float,
) -> None:
    """The caller no longer counts `user_id` as a contact (RateLimited as for `save`)."""
    target = _target(caller, user_id)
    _limit_writes(caller, limits=limits, limiter=limiter, now=now)
    contacts.remove(caller.user_id, target)


def list_saved(caller: Caller, *, contacts: ContactsPort) -> list[str]:
    return contacts.saved(caller.user_id)
