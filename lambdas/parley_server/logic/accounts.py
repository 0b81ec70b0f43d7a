"""Accounts: sign-in (a proved phone number becomes a user and a new device).

Signing in with a number that already has an account is a re-registration: the
account MOVES to the new phone. No code ever adds a device to an account (linked
devices join by pairing, logic/linking.py). If the account has a registration
lock and is active, the request must carry its PIN (logic/registration_lock.py);
a refused request leaves the one-time code unspent. Once the lock is passed and
the code spent: every old device's live connections get `devices_changed`
(reason "reregistered"), every old device is signed out (as DELETE
/v1/devices/{id} does), the account identity, device list and key indexes are
forgotten (the new primary publishes list version 1 after uploading its keys),
and the new device is the primary (key index 0). The user id, contacts and
groups stay: they are the number's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley_server.ids import new_device_id, new_user_id
from parley_server.logic import devices, otp, registration_lock, tokens
from parley_server.logic.ports import Caller
from parley_server.logic.tokens import TokenPair

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.logic.devices import NoticePort
    from parley_server.logic.ports import ConnectionsPort
    from parley_server.logic.tokens import Keys
    from parley_server.store.otp import OtpStore
    from parley_server.store.ratelimits import RateLimiter
    from parley_server.store.tokens import RefreshStore
    from parley_server.store.users import UsersStore

__all__ = ["move_account", "sign_in"]


def sign_in(
    raw_phone: str,
    code: str,
    *,
    pin: str | None = None,
    keys: Keys,
    otps: OtpStore,
    users: UsersStore,
    refresh_tokens: RefreshStore,
    connections: ConnectionsPort,
    gateway: NoticePort,
    limiter: RateLimiter,
    limits: Limits,
    now: float,
) -> tuple[TokenPair, bool]:
    """Verify the code, then create the user (or move their account here) and register
    this device as the account's primary.

    Returns the tokens and whether the user was created by this call. Every
    sign-in is a new device: the app stores its device id and keys, and a
    reinstall signs in again as a new device with new keys. For an existing
    account the registration lock is checked before the code is spent
    (RegistrationLocked / PinBackoff leave the code usable).
    """
    if pin is not None:
        registration_lock.parse_pin(pin)  # malformed input changes nothing
    # refusals of the code (wrong, dead, number locked) come before the account is
    # looked up: they are the same for a number with an account and one without
    checked = otp.check_code(
        raw_phone, code, keys=keys, otps=otps, limits=limits, now=now, limiter=limiter
    )
    existing = users.user_by_phone(checked.phone)
    if existing is not None:
        registration_lock.check_reregistration(existing, pin, users=users, limits=limits, now=now)
    phone = otp.use_code(checked, otps=otps, limiter=limiter)
    device_id = new_device_id()
    user_id = existing
    created = False
    if user_id is None:
        candidate = new_user_id()
        user_id = users.create_user(candidate, phone, now=now)
        # False when a concurrent sign-up of the number won: this one moves it here
        created = user_id == candidate
    if not created:
        move_account(
            user_id, device_id, users=users, connections=connections, gateway=gateway, now=now
        )
    principal = Caller(user_id=user_id, device_id=device_id)
    users.add_device(user_id, device_id, now, role="primary", key_index=0)
    pair = tokens.sign_in_device(
        principal, keys=keys, tokens=refresh_tokens, limits=limits, now=now
    )
    return pair, created


def move_account(
    user_id: str,
    new_device_id: str,
    *,
    users: UsersStore,
    connections: ConnectionsPort,
    gateway: NoticePort,
    now: float,
) -> None:
    """The account moves to `new_device_id` (not registered yet): its old devices' live
    connections are told (`devices_changed`, reason "reregistered", naming the new
    device), then every old device is signed out, then the account identity, the
    device list and the key indexes are forgotten and the time of the move is kept
    (ticks for what the old devices sent reach nobody after it). Safe to repeat."""
    devices.sign_out_all(
        user_id,
        now=now,
        users=users,
        connections=connections,
        gateway=gateway,
        reason="reregistered",
        device_id=new_device_id,
    )
    users.reset_devices(user_id, now)
