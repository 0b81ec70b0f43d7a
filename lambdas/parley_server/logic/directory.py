"""Contact discovery: who has this phone number?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley_server.logic.otp import normalize_phone
from parley_server.models.errors import NotFound

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.logic.ports import Caller
    from parley_server.store.ratelimits import RateLimiter
    from parley_server.store.users import UsersStore

__all__ = ["find_user"]


def find_user(
    caller: Caller,
    raw_phone: str,
    *,
    users: UsersStore,
    limiter: RateLimiter,
    limits: Limits,
    now: float,
) -> str:
    """The user id registered with the phone number; NotFound if none."""
    phone = normalize_phone(raw_phone)
    # the device's own budget first, so a device past it uses none of the account's
    limiter.hit(
        "lookups-device",
        f"{caller.user_id}#{caller.device_id}",
        limit=limits.phone_lookups_per_device_per_hour,
        window_s=3600,
        now=now,
    )
    limiter.hit(
        "lookups", caller.user_id, limit=limits.phone_lookups_per_hour, window_s=3600, now=now
    )
    user_id = users.user_by_phone(phone)
    if user_id is None:
        raise NotFound("nobody uses Parley with this number")
    return user_id
