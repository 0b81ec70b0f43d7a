"""Access and refresh tokens.

Access tokens are short-lived JWTs (HS256, key = the signing secret) naming a
user and a device. Refresh tokens are opaque 256-bit random strings, stored only
as SHA-256 hashes, rotated on every use; presenting a spent one revokes its
whole family and signs the device out (someone else has a copy of it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jwt
import msgspec

from parley_server.ids import is_device_id, is_user_id
from parley_server.logic.ports import Caller
from parley_server.models.errors import DeviceSignedOut, InvalidToken, ReusedRefreshToken
from parley_server.store.tokens import RefreshRecord, SpentToken

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.store.tokens import RefreshStore
    from parley_server.store.users import UsersStore

__all__ = [
    "ALGORITHM",
    "AUDIENCE",
    "ISSUER",
    "Keys",
    "TokenPair",
    "authenticate",
    "derive_keys",
    "family_of",
    "issue_access_token",
    "read_access_token",
    "refresh",
    "sign_in_device",
]

ALGORITHM = "HS256"
ISSUER = "parley"
AUDIENCE = "parley"
# secrets.token_urlsafe(32): 43 characters of base64url
_REFRESH = re.compile(r"[A-Za-z0-9_-]{43}")
# generous enough for any token we issue, small enough to refuse junk before parsing it
_MAX_ACCESS_TOKEN = 1024


class Keys(msgspec.Struct, frozen=True):
    """Keys derived from the signing secret, one per purpose."""

    access: bytes  # the secret itself: the team's contract for access tokens
    otp: bytes  # HMAC key for one-time code hashes; never signs anything


def derive_keys(secret: bytes) -> Keys:
    """Separate keys for separate jobs, so one use can never stand in for another."""
    return Keys(access=secret, otp=hmac.new(secret, b"parley/otp-hash/v1", hashlib.sha256).digest())


class TokenPair(msgspec.Struct, frozen=True):
    """What a successful sign-in or refresh answers."""

    user_id: str
    device_id: str
    access_token: str
    refresh_token: str
    expires_in: int


def issue_access_token(keys: Keys, principal: Caller, *, now: float, ttl_s: int) -> str:
    """A signed access token for the principal, valid for `ttl_s` seconds."""
    issued = int(now)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal.user_id,
        "did": principal.device_id,
        "iat": issued,
        # the same time in ms, which `authenticate` compares with a device's renewal
        "ims": int(now * 1000),
        "exp": issued + ttl_s,
        "typ": "access",
    }
    return jwt.encode(claims, keys.access, algorithm=ALGORITHM)


def read_access_token(keys: Keys, token: str, *, now: float) -> Caller:
    """Verify signature, algorithm, issuer, audience, type and expiry; InvalidToken if any fails."""
    return _read(keys, token, now=now)[0]


def _read(keys: Keys, token: str, *, now: float) -> tuple[Caller, int]:
    """`read_access_token`, and when the token was issued (ms)."""
    if not token or len(token) > _MAX_ACCESS_TOKEN:
        raise InvalidToken("access token missing or malformed")
    try:
        # Only HS256 is accepted: "none" and asymmetric algorithms (key confusion) are refused.
        claims: dict[str, Any] = jwt.decode(
            token,
            keys.access,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "require": ["exp", "iat", "sub", "did", "typ", "iss", "aud"],
                # expiry is checked below against the caller's clock (`now`)
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken("access token is invalid") from exc
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int) or isinstance(exp, bool):
        raise InvalidToken("access token is invalid")
    if exp <= now:
        raise InvalidToken("access token has expired")
    # tokens issued before `ims` was a claim count from the start of their second
    issued_ms = claims.get("ims", iat * 1000)
    if not isinstance(issued_ms, int) or not iat * 1000 <= issued_ms < (iat + 1) * 1000:
        raise InvalidToken("access token is invalid")
    user_id, device_id = claims.get("sub"), claims.get("did")
    if (
        claims.get("typ") != "access"
        or not isinstance(user_id, str)
        or not isinstance(device_id, str)
        or not is_user_id(user_id)
        or not is_device_id(device_id)
    ):
        raise InvalidToken("access token is invalid")
    return Caller(user_id=user_id, device_id=device_id), issued_ms


def authenticate(
    token: str, *, keys: Keys, users: UsersStore, now: float, deleting: bool = False
) -> Caller:
    """A verified access token whose device is still signed in (the one check every caller uses).

    The devices of an account being deleted are refused too, except where `deleting`
    says the call is the account deletion itself (asked again to finish it). So is a
    token issued before its device's sign-in was renewed (a refresh answered again
    because its first answer was lost: whatever that answer held is worth nothing).
    """
    principal, issued_ms = _read(keys, token, now=now)
    device = users.device(principal.user_id, principal.device_id, deleting=deleting)
    if device is None:
        raise InvalidToken("this device has been signed out")
    if issued_ms < device.tokens_after_ms:
        raise InvalidToken("this access token was replaced")
    return principal


def _hash(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def family_of(user_id: str, device_id: str) -> str:
    """The id of a device's refresh token family: every sign-in is a new device, so a
    device has exactly one, and deleting the account finds it from the device alone."""
    return f"{user_id}{device_id}"


def sign_in_device(
    principal: Caller, *, keys: Keys, tokens: RefreshStore, limits: Limits, now: float
) -> TokenPair:
    """Tokens for a device that has just proved its phone number: a new token family."""
    refresh_token = secrets.token_urlsafe(32)
    record = RefreshRecord(
        family=family_of(principal.user_id, principal.device_id),
        user_id=principal.user_id,
        device_id=principal.device_id,
    )
    tokens.start_family(
        _hash(refresh_token), record, expires_at=int(now) + limits.refresh_token_ttl_s
    )
    return _pair(principal, refresh_token, keys=keys, limits=limits, now=now)


def _signed_out(reason: str | None) -> DeviceSignedOut:
    """The refusal of a signed-out device's refresh; one signed out because its
    number moved to a new phone is told so (`reason` "reregistered", as an open
    connection is told by `devices_changed`)."""
    if reason == "reregistered":
        return DeviceSignedOut(
            "this device has been signed out: the account's number was registered on another phone",
            reason=reason,
        )
    return DeviceSignedOut("this device has been signed out")


def refresh(
    refresh_token: str,
    *,
    keys: Keys,
    tokens: RefreshStore,
    users: UsersStore,
    limits: Limits,
    now: float,
    close: Callable[[str, str], object] | None = None,
) -> TokenPair:
    """Trade a refresh token for a new pair; the old one is spent.

    `close(user_id, device_id)` closes the device's open WebSocket connections: those
    opened with tokens this call makes worthless (a reuse signs the device out; an
    answer given again voids what the lost one held).

    A spent token presented again means two parties hold it: the family is
    revoked and the device signed out, so neither can go on. Unless the answer to
    its trade was lost: a token spent less than `refresh_reuse_grace_s` ago whose
    successor was never used is traded again (the successor is voided), as the
    device that never got its answer asks. So the rotation is the last thing that
    can fail: a write that failed after it (a throttle) would answer an error to a
    device whose token was spent.
    """
    if not _REFRESH.fullmatch(refresh_token):
        raise InvalidToken("refresh token is malformed")
    old_hash = _hash(refresh_token)
    try:
        found = tokens.find(old_hash, now=now)
        record = found.record if isinstance(found, SpentToken) else found
        lost = _lost_answer(found, limits=limits, now=now)
        principal = Caller(record.user_id, record.device_id)
        # a device whose account is being deleted may still refresh: its new tokens,
        # like its old ones, reach nothing but the deletion (authenticate refuses them)
        if users.device(record.user_id, record.device_id, deleting=True) is None:
            raise _signed_out(users.revoked_reason(record.user_id, record.device_id))
        # the account is in use: its registration lock stays armed
        # (logic/registration_lock.py); recorded before the rotation (see above)
        users.record_active(principal.user_id, now)
        new_token = secrets.token_urlsafe(32)
        expires_at = int(now) + limits.refresh_token_ttl_s
        if lost is None:
            try:
                tokens.rotate(old_hash, _hash(new_token), record, now=now, expires_at=expires_at)
            except ReusedRefreshToken:
                # spent since it was read: a first try of the device's, still running
                # when the device (its answer late) asked again, was faster
                lost = _lost_answer(tokens.find(old_hash, now=now), limits=limits, now=now)
        if lost is not None:
            # the access token lost with the answer is refused from now on (as is any
            # other issued before now): whoever may hold it is not the device. Before
            # the trade, which is the last thing that can fail (a retry renews again)
            users.renew_sign_in(record.user_id, record.device_id, int(now * 1000))
            if close is not None:
                close(record.user_id, record.device_id)  # the device dials again
            tokens.reissue(old_hash, lost, _hash(new_token), record, now=now, expires_at=expires_at)
    except ReusedRefreshToken as reused:
        tokens.revoke_family(reused.family, now=now)
        users.revoke_device(reused.user_id, reused.device_id, now=now)
        if close is not None:
            close(reused.user_id, reused.device_id)
        raise
    return _pair(principal, new_token, keys=keys, limits=limits, now=now)


def _lost_answer(found: RefreshRecord | SpentToken, *, limits: Limits, now: float) -> str | None:
    """For a spent token, the successor whose answer may have been lost (then it is
    traded again); a spent token past the grace, or not traded, is a reuse."""
    if not isinstance(found, SpentToken):
        return None
    if found.next is None or now - found.spent_at > limits.refresh_reuse_grace_s:
        raise ReusedRefreshToken(
            family=found.record.family,
            user_id=found.record.user_id,
            device_id=found.record.device_id,
        )
    return found.next


def _pair(
    principal: Caller, refresh_token: str, *, keys: Keys, limits: Limits, now: float
) -> TokenPair:
    """A fresh access token for `principal`, with the refresh token that goes with it."""
    return TokenPair(
        user_id=principal.user_id,
        device_id=principal.device_id,
        access_token=issue_access_token(keys, principal, now=now, ttl_s=limits.access_token_ttl_s),
        refresh_token=refresh_token,
        expires_in=limits.access_token_ttl_s,
    )
