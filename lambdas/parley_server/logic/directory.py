"""Contact discovery: who has this phone number?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley_server.logic.otp import normalize_phone
from parley_server.models.errors import NotFound

if TYPE_CHECKING:
    from parley_server.logic.tokens import Principal
    from parley_server.store.ratelimits import RateLimiter
    from parley_server.store.users import UsersStore

__all__ = ["LOOKUPS_PER_HOUR", "find_user"]

# Enough to check an address book now and then; too few to walk a numbering plan.
LOOKUPS_PER_HOUR = 500


def find_user(
    caller: Principal, raw_phone: str, *, users: UsersStore, limiter: RateLimiter, now: float
) -> str:
    """The user id registered with the phone number; NotFound if none."""
    phone = normalize_phone(raw_phone)
    limiter.hit("lookups", caller.user_id, limit=LOOKUPS_PER_HOUR, window_s=3600, now=now)
    user_id = users.user_by_phone(phone)
    if user_id is None:
        raise NotFound("nobody uses Parley with this number")
    return user_id
