"""Push tokens: a device registers one, and it is used once the device proves it
holds it.

Anyone signed in can send any string as a push token, so a token is not taken on
the caller's word. `register` records it as *pending* on the caller's device and
pushes a random challenge through it; only the app that holds the token receives
that push. `verify` takes the challenge back (compared in constant time, before
it expires, in at most `push_challenge_max_attempts` tries): then, and only then,
the token gets its SNS endpoint and becomes the device's token for wake pushes.

Until then nothing else changes: the device's verified token keeps working, and a
token another device verified stays theirs (someone who registers Alice's token
never sees the challenge, so Alice's pushes go on). A device that does prove it
holds a token another device verified (the same phone signed in to another
account) takes it over, and the other device stops using it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

import msgspec

from parley_server.logic.ports import Caller
from parley_server.models.errors import BadRequest, Conflict, Unauthorized
from parley_server.store.push import PLATFORMS, ChallengeJob

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.store.push import ChallengeQueue, PushNotifier
    from parley_server.store.users import UsersStore

__all__ = ["MAX_PUSH_TOKEN_CHARS", "Challenged", "Verified", "register", "verify"]

# FCM registration tokens are ~160 characters and APNs device tokens 64 hex; leave room.
MAX_PUSH_TOKEN_CHARS = 4096
_CHALLENGE_BYTES = 24  # 32 URL-safe characters


class Challenged(msgspec.Struct, frozen=True):
    """A registration waiting for its challenge: whether the challenge could be
    pushed (not when the platform has no application on this stack) and until when
    it may come back."""

    sent: bool
    expires_at: int


class Verified(msgspec.Struct, frozen=True):
    """A token verified; `moved` when it was another device's until now."""

    platform: str
    moved: bool


def _hash(challenge: str) -> str:
    return hashlib.sha256(challenge.encode()).hexdigest()


def _check_token(platform: str, token: str) -> None:
    if platform not in PLATFORMS:
        raise BadRequest(f"platform must be one of {', '.join(PLATFORMS)}", field="platform")
    if (
        not token
        or len(token) > MAX_PUSH_TOKEN_CHARS
        or not token.isprintable()
        or token.strip() != token
    ):
        raise BadRequest("token must be the platform's push token", field="token")


def register(
    caller: Caller,
    platform: str,
    token: str,
    *,
    users: UsersStore,
    notifier: PushNotifier,
    challenges: ChallengeQueue,
    limits: Limits,
    now: float,
) -> Challenged:
    """Record `token` as pending on the caller's device (replacing any pending one)
    and queue a new challenge to push through it (GroupFanout pushes it). The
    device's verified token is untouched."""
    _check_token(platform, token)
    if users.push_state(caller.user_id, caller.device_id) is None:
        raise Unauthorized("this device has been signed out")
    challenge = secrets.token_urlsafe(_CHALLENGE_BYTES)
    expires_at = int(now) + limits.push_challenge_ttl_s
    # a token the platform refuses is refused here, before anything is recorded
    endpoint = notifier.challenge_endpoint(platform, token)
    # recorded before it is pushed: an app quick to answer finds it waiting. With no
    # platform application nothing can push it, so no challenge waits.
    users.set_push_pending(
        caller.user_id,
        caller.device_id,
        platform,
        token,
        _hash(challenge) if endpoint is not None else None,
        expires_at,
    )
    if endpoint is None:
        return Challenged(sent=False, expires_at=expires_at)
    challenges.enqueue(ChallengeJob(endpoint, platform, challenge))
    return Challenged(sent=True, expires_at=expires_at)


def verify(
    caller: Caller,
    challenge: str,
    *,
    users: UsersStore,
    notifier: PushNotifier,
    limits: Limits,
    now: float,
) -> Verified:
    """Make the caller's pending token its verified one if `challenge` is the one
    pushed through it.

    Refused, with nothing changed but the count of tries: no token waiting
    (Conflict no_push_challenge), the challenge expired (push_challenge_expired),
    or a wrong challenge (invalid_push_challenge, with `attempts_left`; the last
    wrong one drops the pending token).
    """
    state = users.push_state(caller.user_id, caller.device_id)
    if state is None:
        raise Unauthorized("this device has been signed out")
    if (
        state.challenge_hash is None
        or state.pending_platform is None
        or state.pending_token is None
        or state.challenge_attempts >= limits.push_challenge_max_attempts
    ):
        raise Conflict(
            "no push token is waiting for verification: register it again",
            code="no_push_challenge",
        )
    if now >= state.challenge_expires_at:
        raise BadRequest(
            "the push challenge has expired: register the token again",
            code="push_challenge_expired",
        )
    if not hmac.compare_digest(_hash(challenge), state.challenge_hash):
        tries = users.count_push_attempt(caller.user_id, caller.device_id, state.challenge_hash)
        if tries is None:  # replaced or verified meanwhile
            raise Conflict(
                "no push token is waiting for verification: register it again",
                code="no_push_challenge",
            )
        left = max(0, limits.push_challenge_max_attempts - tries)
        if left == 0:
            users.drop_push_pending(caller.user_id, caller.device_id, state.challenge_hash)
        raise BadRequest(
            "the push challenge does not match", code="invalid_push_challenge", attempts_left=left
        )
    platform, token = state.pending_platform, state.pending_token
    holder = users.push_claim(platform, token)
    moved = holder is not None and holder != (caller.user_id, caller.device_id)
    # the device's previous token: its endpoint goes with it, unless another device
    # verified that token since (the endpoint is theirs then)
    existing = state.endpoint
    if state.token is not None and state.platform is not None and state.token != token:
        released = users.release_push_claim(
            state.platform, state.token, caller.user_id, caller.device_id
        )
        if released == "other":
            existing = None
    endpoint = notifier.endpoint_for(platform, token, existing=existing)
    if not users.verify_push(
        caller.user_id, caller.device_id, state.challenge_hash, platform, token, endpoint
    ):
        raise Conflict(
            "no push token is waiting for verification: register it again",
            code="no_push_challenge",
        )
    if moved and holder is not None:
        users.drop_push(holder[0], holder[1], token)
    return Verified(platform=platform, moved=moved)
