"""Accounts: sign-in (a proved phone number becomes a user and a new device) and
the device's push registration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley_server.ids import new_device_id, new_user_id
from parley_server.logic import otp, tokens
from parley_server.logic.ports import Caller
from parley_server.logic.tokens import TokenPair
from parley_server.models.errors import BadRequest, Unauthorized
from parley_server.store.push import PLATFORMS

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.logic.tokens import Keys
    from parley_server.store.otp import OtpStore
    from parley_server.store.push import PushNotifier
    from parley_server.store.tokens import RefreshStore
    from parley_server.store.users import UsersStore

__all__ = ["MAX_PUSH_TOKEN_CHARS", "register_push", "sign_in"]

# FCM registration tokens are ~160 characters and APNs device tokens 64 hex; leave room.
MAX_PUSH_TOKEN_CHARS = 4096


def sign_in(
    raw_phone: str,
    code: str,
    *,
    keys: Keys,
    otps: OtpStore,
    users: UsersStore,
    refresh_tokens: RefreshStore,
    limits: Limits,
    now: float,
) -> tuple[TokenPair, bool]:
    """Verify the code, then create the user (or find them) and register a new device.

    Returns the tokens and whether the user was created by this call. Every
    sign-in is a new device: the app stores its device id and keys, and a
    reinstall signs in again as a new device with new keys.
    """
    phone = otp.verify_code(raw_phone, code, keys=keys, otps=otps, limits=limits, now=now)
    user_id = users.user_by_phone(phone)
    created = False
    if user_id is None:
        candidate = new_user_id()
        user_id = users.create_user(candidate, phone, now=now)
        created = user_id == candidate
    principal = Caller(user_id=user_id, device_id=new_device_id())
    users.add_device(principal.user_id, principal.device_id, now=now)
    pair = tokens.sign_in_device(
        principal, keys=keys, tokens=refresh_tokens, limits=limits, now=now
    )
    return pair, created


def register_push(
    caller: Caller, platform: str, token: str, *, users: UsersStore, notifier: PushNotifier
) -> None:
    """Record the caller's device's push token (creating its SNS endpoint when configured)."""
    if platform not in PLATFORMS:
        raise BadRequest(f"platform must be one of {', '.join(PLATFORMS)}", field="platform")
    if (
        not token
        or len(token) > MAX_PUSH_TOKEN_CHARS
        or not token.isprintable()
        or token.strip() != token
    ):
        raise BadRequest("token must be the platform's push token", field="token")
    device = users.device(caller.user_id, caller.device_id)
    if device is None:
        raise Unauthorized("this device has been signed out")
    endpoint = notifier.endpoint_for(platform, token, existing=device.push_endpoint)
    users.set_push(caller.user_id, caller.device_id, platform, token, endpoint)
