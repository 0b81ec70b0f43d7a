"""HTTP client for the Parley API (aiohttp), with access-token refresh.

Tokens come from and go back to a `TokenKeeper` (the profile store). An access
token is refreshed shortly before it expires and once more if the server still
answers 401; refresh tokens rotate on every use, so the new pair is saved
before anything else happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from parley.answers import (
    DeviceBundle,
    GroupSummary,
    KeyBundles,
    b64,
    parse_bundle,
    parse_device,
    parse_device_list,
    parse_group,
    parse_lines,
    parse_summary,
)
from parley.crypto import OneTimePreKey, SignedPreKey
from parley.errors import (
    ApiError,
    AuthenticationError,
    NotFound,
    NotRegistered,
    ParleyClientError,
    PinBackoff,
    RateLimited,
    RegistrationLocked,
    ServiceUnavailable,
)
from parley.ids import is_device_id, is_group_id, is_media_id, is_user_id
from parley.models import Group, LinkedDevice
from parley.store import Tokens

__all__ = [
    "MAX_IDS_PER_GROUP_CHANGE",
    "ApiClient",
    "AuthResult",
    "OwnDevices",
    "PushRegistration",
    "TokenKeeper",
    "keys_body",
]

log = logging.getLogger("parley.api")

# Refresh this long before the access token's expiry, so a request never races it.
REFRESH_MARGIN_S = 60.0
REQUEST_TIMEOUT_S = 20.0
# Attempts for an idempotent request that met a 5xx or no answer.
RETRIES = 3
_RETRYABLE = frozenset({"GET", "PUT"})
# One membership change is one DynamoDB transaction of at most 100 items: the group,
# the change's entry in its chain, the creator and at most this many others.
MAX_IDS_PER_GROUP_CHANGE = 97


class TokenKeeper(Protocol):
    def tokens(self) -> Tokens | None: ...

    def save_tokens(self, tokens: Tokens) -> None: ...


@dataclass(frozen=True)
class OwnDevices:
    """GET /v1/devices: the account's devices and its signed list as sent (unverified)."""

    devices: list[LinkedDevice]
    device_list: dict[str, Any] | None


def keys_body(
    identity_key: bytes, signed_prekey: SignedPreKey, one_time_prekeys: list[OneTimePreKey]
) -> dict[str, Any]:
    """The body of PUT /v1/keys (also the `keys` of completing a pairing)."""
    return {
        "identity_key": b64(identity_key),
        "signed_prekey": {
            "key_id": signed_prekey.key_id,
            "public_key": b64(signed_prekey.public_key),
            "signature": b64(signed_prekey.signature),
        },
        "one_time_prekeys": [
            {"key_id": k.key_id, "public_key": b64(k.public_key)} for k in one_time_prekeys
        ],
    }


@dataclass(frozen=True)
class PushRegistration:
    """PUT /v1/push's answer: the token waits for its challenge until `expires_at`
    (Unix time); `challenge_sent` is False on a stack with no push application for
    the platform (nothing can be pushed there)."""

    challenge_sent: bool
    expires_at: int


@dataclass(frozen=True)
class AuthResult:
    user_id: str
    device_id: str
    tokens: Tokens


class ApiClient:
    """One client per profile; `tokens` is None until signup has verified a code."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        tokens: TokenKeeper | None = None,
        *,
        clock: Callable[[], float] = time.time,
        explain: Callable[[AuthenticationError], AuthenticationError] | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._http = session
        self._keeper = tokens
        self._clock = clock
        # turns a refused refresh token into what it means for the profile (parley.service)
        self._explain = explain
        self._refresh_lock = asyncio.Lock()

    def use_tokens(self, keeper: TokenKeeper) -> None:
        self._keeper = keeper

    # --- signup and tokens -----------------------------------------------------------

    async def request_code(self, phone: str, purpose: str = "sign_in") -> dict[str, Any]:
        """POST /v1/auth/otp: the service texts a 6-digit code to `phone`, good only for
        `purpose` ("sign_in", or "delete_account" for `delete_account`)."""
        body = {"phone": phone} if purpose == "sign_in" else {"phone": phone, "purpose": purpose}
        return await self._call("POST", "/v1/auth/otp", body=body, auth=False)

    async def verify(self, phone: str, code: str, pin: str | None = None) -> AuthResult:
        """POST /v1/auth/verify: exchange the code for a new device and its tokens
        (`pin`: the registration lock's, when the number's account has one)."""
        body = {"phone": phone, "code": code}
        if pin is not None:
            body["pin"] = pin
        answer = await self._call("POST", "/v1/auth/verify", body=body, auth=False)
        return self._auth_result(answer)

    async def access_token(self) -> str:
        """A valid access token, refreshed first if it is about to expire."""
        tokens = self._current_tokens()
        if tokens.access_expires_at - REFRESH_MARGIN_S <= self._clock():
            tokens = await self.refresh(tokens)
        return tokens.access_token

    async def refresh(self, stale: Tokens | None = None) -> Tokens:
        """Swap the refresh token for a new pair (once, however many callers ask)."""
        async with self._refresh_lock:
            current = self._current_tokens()
            if stale is not None and current.refresh_token != stale.refresh_token:
                return current  # someone else refreshed while we waited
            try:
                answer = await self._call(
                    "POST",
                    "/v1/auth/refresh",
                    body={"refresh_token": current.refresh_token},
                    auth=False,
                )
            except AuthenticationError as refused:
                if self._explain is None:
                    raise
                raise self._explain(refused) from refused
            result = self._auth_result(answer, partial=True)
            assert self._keeper is not None
            self._keeper.save_tokens(result.tokens)
            return result.tokens

    # --- keys --------------------------------------------------------------------------

    async def upload_keys(
        self,
        identity_key: bytes,
        signed_prekey: SignedPreKey,
        one_time_prekeys: list[OneTimePreKey],
    ) -> None:
        """PUT /v1/keys: identity key, current signed prekey, new one-time prekeys."""
        await self._call(
            "PUT", "/v1/keys", body=keys_body(identity_key, signed_prekey, one_time_prekeys)
        )

    async def key_count(self) -> int:
        answer = await self._call("GET", "/v1/keys/count")
        count = answer.get("one_time_prekeys")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ApiError(200, "bad_answer", "key count is not a number")
        return count

    async def bundles(self, user_id: str) -> list[DeviceBundle]:
        """GET /v1/keys/{user_id}: one bundle per device (malformed ones are skipped)."""
        return (await self.key_bundles(user_id)).devices

    async def key_bundles(self, user_id: str) -> KeyBundles:
        """GET /v1/keys/{user_id}: the bundles and the account's signed device list."""
        answer = await self._call("GET", f"/v1/keys/{quote(user_id, safe='')}")
        return KeyBundles(
            parse_lines(answer, "devices", parse_bundle, "key bundle"), parse_device_list(answer)
        )

    # --- directory, presence, push ----------------------------------------------------

    async def lookup(self, phone: str) -> str:
        """GET /v1/users?phone=: the user id registered for `phone` (NotFound if none)."""
        answer = await self._call("GET", "/v1/users", params={"phone": phone})
        user_id = answer.get("user_id")
        if not is_user_id(user_id):
            raise ApiError(200, "bad_answer", "directory answer has no valid user id")
        return user_id

    async def devices(self) -> list[LinkedDevice]:
        """GET /v1/devices: this account's signed-in devices (malformed lines skipped)."""
        return (await self.own_devices()).devices

    async def own_devices(self) -> OwnDevices:
        """GET /v1/devices: this account's devices and its signed device list."""
        answer = await self._call("GET", "/v1/devices")
        return OwnDevices(
            parse_lines(answer, "devices", parse_device, "device"), parse_device_list(answer)
        )

    async def call_relays(self) -> dict[str, Any]:
        """GET /v1/calls/relays: STUN/TURN servers with short-lived credentials for a
        call (checked by parley.calling.relays)."""
        return await self._call("GET", "/v1/calls/relays")

    async def publish_device_list(self, device_list: dict[str, str]) -> None:
        """PUT /v1/devices/list (primary only): a new signed list ({"body", "signature"});
        devices left off it are signed out by the service."""
        await self._call("PUT", "/v1/devices/list", body=dict(device_list))

    # --- linking a device (parley.devices.linking) ------------------------------------

    async def create_pairing(self, identity_key: bytes) -> dict[str, Any]:
        """POST /v1/devices/pairings (no account yet): a pairing for a new device;
        {"ref", "device_id", "claim", "expires_in"}."""
        answer = await self._call(
            "POST", "/v1/devices/pairings", body={"identity_key": b64(identity_key)}, auth=False
        )
        ref, device_id = answer.get("ref"), answer.get("device_id")
        claim, expires_in = answer.get("claim"), answer.get("expires_in")
        if not (
            isinstance(ref, str)
            and is_user_id(ref)  # 32 lowercase hex, like a user id
            and is_device_id(device_id)
            and isinstance(claim, str)
            and isinstance(expires_in, int)
            and not isinstance(expires_in, bool)
            and expires_in > 0
        ):
            raise ApiError(200, "bad_answer", "pairing answer without ref, device id and claim")
        return answer

    async def approve_pairing(
        self,
        ref: str,
        details: bytes,
        account_signature: bytes,
        mac: bytes,
        device_list: dict[str, str],
    ) -> None:
        """POST /v1/devices/pairings/{ref}/approve (primary only)."""
        await self._call(
            "POST",
            f"/v1/devices/pairings/{_pairing_ref(ref)}/approve",
            body={
                "details": b64(details),
                "account_signature": b64(account_signature),
                "hmac": b64(mac),
                "device_list": dict(device_list),
            },
        )

    async def pairing_status(self, ref: str, claim: str) -> dict[str, Any]:
        """POST /v1/devices/pairings/{ref}/status (no account yet): {"state": "pending"}
        or the approval; NotFound once expired (or for a wrong claim)."""
        answer = await self._call(
            "POST",
            f"/v1/devices/pairings/{_pairing_ref(ref)}/status",
            body={"claim": claim},
            auth=False,
        )
        if answer.get("state") not in {"pending", "approved"}:
            raise ApiError(200, "bad_answer", "pairing status without a known state")
        return answer

    async def complete_pairing(
        self, ref: str, claim: str, device_signature: bytes, keys: dict[str, Any]
    ) -> AuthResult:
        """POST /v1/devices/pairings/{ref}/complete (no account yet): this device joins
        the account with its prekeys; its tokens."""
        answer = await self._call(
            "POST",
            f"/v1/devices/pairings/{_pairing_ref(ref)}/complete",
            body={"claim": claim, "device_signature": b64(device_signature), "keys": keys},
            auth=False,
        )
        return self._auth_result(answer)

    # --- registration lock -------------------------------------------------------------

    async def set_registration_lock(self, pin: str) -> None:
        """PUT /v1/account/registration-lock (primary only)."""
        await self._call("PUT", "/v1/account/registration-lock", body={"pin": pin})

    async def remove_registration_lock(self) -> None:
        """DELETE /v1/account/registration-lock (primary only)."""
        await self._call("DELETE", "/v1/account/registration-lock")

    async def remove_device(self, device_id: str) -> None:
        """DELETE /v1/devices/{id}: sign one of this account's devices out for good."""
        if not is_device_id(device_id):
            raise ValueError("a device id is 16 lowercase hex characters")
        await self._call("DELETE", f"/v1/devices/{device_id}")

    async def delete_account(self, code: str) -> None:
        """DELETE /v1/account: delete this account for good, with a code asked for with
        `request_code(phone, "delete_account")`. A deletion cut short (a 5xx, no
        answer) is asked again at once: the service finishes it without a new code."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._call("DELETE", "/v1/account", body={"code": code})
                return
            except ServiceUnavailable:
                if attempt >= RETRIES:
                    raise
            await asyncio.sleep(random.uniform(0.1, 0.4 * 2**attempt))

    async def save_contact(self, user_id: str) -> None:
        """PUT /v1/contacts/{id}: they see this user's last seen (setting `contacts`)."""
        await self._call("PUT", f"/v1/contacts/{quote(user_id, safe='')}")

    async def remove_contact(self, user_id: str) -> None:
        await self._call("DELETE", f"/v1/contacts/{quote(user_id, safe='')}")

    async def saved_contacts(self) -> list[str]:
        """GET /v1/contacts: the user ids this account's devices saved."""
        answer = await self._call("GET", "/v1/contacts")
        saved = answer.get("contacts")
        if not isinstance(saved, list) or not all(is_user_id(u) for u in saved):
            raise ParleyClientError("the service answered GET /v1/contacts without a list")
        return saved

    async def presence(self, user_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/presence/{quote(user_id, safe='')}")

    async def set_presence(self, last_seen: str) -> None:
        await self._call("PUT", "/v1/settings/presence", body={"last_seen": last_seen})

    async def register_push(self, platform: str, token: str) -> PushRegistration:
        """PUT /v1/push: the token is pending until `verify_push` sends back the
        challenge the service pushes through it (parley.push.challenge_of reads it)."""
        answer = await self._call("PUT", "/v1/push", body={"platform": platform, "token": token})
        sent, expires_at = answer.get("challenge_sent"), answer.get("expires_at")
        if not isinstance(sent, bool) or not isinstance(expires_at, int):
            raise ParleyClientError("the service answered PUT /v1/push without its fields")
        return PushRegistration(challenge_sent=sent, expires_at=expires_at)

    async def verify_push(self, challenge: str) -> None:
        """POST /v1/push/verify: from now on wake pushes go to the pending token."""
        await self._call("POST", "/v1/push/verify", body={"challenge": challenge})

    # --- media (parley.attachments.MediaApi) -------------------------------------------

    async def create_media(self, size: int) -> dict[str, Any]:
        """POST /v1/media: room for `size` encrypted bytes.

        Returns {"media_id", "upload": {"url", "fields"}, "expires_in"}: a
        presigned form that accepts exactly `size` bytes, shortly.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError("a media upload has a positive size in bytes")
        answer = await self._call("POST", "/v1/media", body={"size": size})
        upload = answer.get("upload")
        if not (
            is_media_id(answer.get("media_id"))
            and isinstance(upload, dict)
            and isinstance(upload.get("url"), str)
            and isinstance(upload.get("fields"), dict)
        ):
            raise ApiError(200, "bad_answer", "media answer without an upload form")
        return answer

    async def media_url(self, media_id: str) -> str:
        """GET /v1/media/{media_id}: a short-lived download link (NotFound if the
        media is unknown, expired or not uploaded yet)."""
        if not is_media_id(media_id):
            raise ValueError("a media id is 32 lowercase hex characters")
        answer = await self._call("GET", f"/v1/media/{media_id}")
        url = answer.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ApiError(200, "bad_answer", "media answer without a download link")
        return url

    async def delete_media(self, media_id: str) -> None:
        """DELETE /v1/media/{media_id}: an object this account uploaded, for good
        (NotFound if it is not ours, expired or gone already)."""
        if not is_media_id(media_id):
            raise ValueError("a media id is 32 lowercase hex characters")
        await self._call("DELETE", f"/v1/media/{media_id}")

    # --- groups ---------------------------------------------------------------------------

    async def create_group(self, change: dict[str, str]) -> Group:
        """POST /v1/groups: a new group, as this device's signed `create` change says
        (`parley.groups.chain.sign_change`)."""
        answer = await self._call("POST", "/v1/groups", body={"change": change})
        return parse_group(answer)

    async def groups(self) -> list[GroupSummary]:
        """GET /v1/groups: this account's groups (malformed lines are skipped)."""
        answer = await self._call("GET", "/v1/groups")
        return parse_lines(answer, "groups", parse_summary, "group summary")

    async def group(self, group_id: str) -> Group:
        """GET /v1/groups/{id}: members and admins now (NotFound if not a member)."""
        answer = await self._call("GET", _group_path(group_id))
        return parse_group(answer, group_id)

    async def group_changes(self, group_id: str, after: int) -> tuple[Group, list[Any], bool]:
        """GET /v1/groups/{id}?changes_after=N: the group, the entries of its signed
        chain after `after` (at most 100, unparsed) and whether more follow."""
        if after < 0:
            raise ValueError("changes_after is a count")
        answer = await self._call(
            "GET", _group_path(group_id), params={"changes_after": str(after)}
        )
        changes, more = answer.get("changes"), answer.get("more", False)
        if not isinstance(changes, list) or not isinstance(more, bool):
            raise ApiError(200, "bad_answer", "group answer without its changes")
        return parse_group(answer, group_id), changes, more

    async def change_group(self, group_id: str, change: dict[str, str]) -> Group | None:
        """POST /v1/groups/{id}/changes: apply a signed change (add, remove, leave,
        promote, dismiss, vouch). None when this account left or the group ended."""
        answer = await self._call("POST", _group_path(group_id, "changes"), body={"change": change})
        return parse_group(answer, group_id) if answer else None

    # --- plumbing ------------------------------------------------------------------------

    def _current_tokens(self) -> Tokens:
        tokens = self._keeper.tokens() if self._keeper is not None else None
        if tokens is None:
            raise NotRegistered("no tokens: sign up (or sign in) first")
        return tokens

    def _auth_result(self, answer: dict[str, Any], *, partial: bool = False) -> AuthResult:
        access, refresh = answer.get("access_token"), answer.get("refresh_token")
        expires_in = answer.get("expires_in")
        user_id, device_id = answer.get("user_id", ""), answer.get("device_id", "")
        if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh):
            raise ApiError(200, "bad_answer", "token answer without tokens")
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            expires_in = 300  # be conservative when the server does not say
        if not partial and not (is_user_id(user_id) and is_device_id(device_id)):
            raise ApiError(200, "bad_answer", "token answer without user and device ids")
        return AuthResult(
            str(user_id), str(device_id), Tokens(access, refresh, self._clock() + expires_in)
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        auth: bool = True,
    ) -> dict[str, Any]:
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            headers: dict[str, str] = {}
            if auth:
                headers["Authorization"] = f"Bearer {await self.access_token()}"
            try:
                status, answer, retry_after = await self._send(method, path, body, params, headers)
                # a wrong code is a 401 too, but not one a new token would change
                if status == 401 and auth and not refreshed and not _is_code_error(answer):
                    refreshed = True
                    await self.refresh(self._current_tokens())  # the server disagrees
                    continue
                if status < 400:
                    return answer
                raise _error(status, answer, retry_after)
            except ServiceUnavailable:
                # GET and PUT are safe to repeat; a POST (a code, a refresh token) is not
                if method not in _RETRYABLE or attempt >= RETRIES:
                    raise
            await asyncio.sleep(random.uniform(0.1, 0.4 * 2**attempt))

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        params: dict[str, str] | None,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any], str | None]:
        try:
            async with self._http.request(
                method,
                self._base + path,
                json=body,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            ) as response:
                text = await response.text()
                retry_after = response.headers.get("Retry-After")
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable(0, "unreachable", f"{method} {path}: {exc}") from exc
        if not text:
            return status, {}, retry_after
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = {}
        if not isinstance(parsed, dict):
            parsed = {}
        return status, parsed, retry_after


def _is_code_error(body: dict[str, Any]) -> bool:
    error = body.get("error")
    return isinstance(error, dict) and error.get("code") == "invalid_code"


def _error(status: int, body: dict[str, Any], retry_after_header: str | None) -> ApiError:
    raw_error = body.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    if message is None and isinstance(body.get("message"), str):
        message = body["message"]  # API Gateway's own answers: {"message": "Not Found"}
    details = {k: v for k, v in error.items() if k not in {"code", "message"}}
    code = code or f"http_{status}"
    message = message or f"HTTP {status}"
    if status == 423 or code == "registration_locked":
        wait = details.get("retry_after")
        left = details.get("attempts_left")
        return RegistrationLocked(
            status,
            code,
            message,
            details,
            _retry_after(wait, None) if wait is not None else None,
            left if isinstance(left, int) and not isinstance(left, bool) else None,
        )
    if status == 429:
        retry_after = _retry_after(details.get("retry_after"), retry_after_header)
        kind = PinBackoff if code == "pin_backoff" else RateLimited
        return kind(status, code, message, details, retry_after)
    if status in {401, 403}:
        return AuthenticationError(status, code, message, details)
    if status == 404:
        return NotFound(status, code, message, details)
    if status >= 500:
        return ServiceUnavailable(status, code, message, details)
    return ApiError(status, code, message, details)


def _retry_after(body_value: object, header: str | None) -> float:
    for candidate in (body_value, header):
        try:
            value = float(candidate)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if value >= 0:
            return value
    return 1.0


def _pairing_ref(ref: str) -> str:
    if not (isinstance(ref, str) and is_user_id(ref)):
        raise ValueError("a pairing ref is 32 lowercase hex characters")
    return ref


def _group_path(group_id: str, *rest: str) -> str:
    if not is_group_id(group_id):
        raise ValueError("a group id is 32 lowercase hex characters")
    return "/".join(["/v1/groups", group_id, *rest])
