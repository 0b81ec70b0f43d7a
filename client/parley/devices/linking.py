"""Linking a companion device to an account, both sides.

The new device (`link`, exported as `parley.link`) makes its identity key and a
16-byte secret, asks the service for a pairing and shows a link code (QR and
text: `parley.devices.adv.LinkCode`). The primary scans it (`Client.link_device`
→ `approve_link`): it signs the companion's details (account signature), proves
it holds the code's secret (HMAC) and signs the account's new device list, and
the service stores the approval. The new device, polling, checks the HMAC with
its secret, the account signature and that the details name it, counter-signs
(device signature) and completes the pairing with its prekeys: the service
registers it (role companion) and installs the approved list.

    account = await parley.link("laptop", on_code=print, passphrase=secret)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from parley import keys
from parley.answers import unb64
from parley.api import ApiClient, keys_body
from parley.crypto import IdentityKeyPair, OneTimePreKey, SignedPreKey
from parley.devices.adv import (
    SECRET_LEN,
    Details,
    LinkCode,
    account_signature,
    device_signature,
    pairing_hmac,
    verify_account_signature,
    verify_hmac,
)
from parley.devices.lists import DeviceList, ListedDevice, sign_list, verify_list
from parley.endpoints import Endpoints
from parley.errors import (
    ApiError,
    AuthenticationError,
    DeviceListError,
    LinkExpired,
    LinkRefused,
    LinkSignatureError,
    NotFound,
    ParleyClientError,
)
from parley.models import Account
from parley.service import remember_service
from parley.signup import KeyringChoice, new_profile
from parley.store import Store

__all__ = ["DEFAULT_POLL_S", "approve_link", "link"]

log = logging.getLogger("parley.devices")

DEFAULT_POLL_S = 1.5
_USED = frozenset({"pairing_used"})
_REFUSED = frozenset({"forbidden", "too_many_devices"})

CodeCallback = Callable[[str], Awaitable[object] | object]


def _link_error(exc: ApiError) -> ParleyClientError:
    """What a refusal of the service means for the link."""
    if isinstance(exc, NotFound):
        return LinkExpired("the pairing is gone (expired or unknown): start linking again")
    if exc.code in _USED:
        return LinkExpired("this pairing was already used: start linking again")
    if exc.code in _REFUSED or isinstance(exc, AuthenticationError):
        return LinkRefused(f"the service refused the link: {exc.message}")
    return exc


# --- the primary's side --------------------------------------------------------------


async def approve_link(
    api: ApiClient,
    store: Store,
    identity: IdentityKeyPair,
    current: DeviceList,
    code: str | LinkCode,
    *,
    now_ms: int,
) -> str:
    """Approve the device showing `code`: sign its details and the account's next
    device list (the current one plus it, at a key index never used before), and
    send both with the HMAC under the code's secret. Returns its device id."""
    link_code = code if isinstance(code, LinkCode) else LinkCode.parse(code)
    account = store.accounts.require()
    if link_code.device_id in current.device_ids:
        raise LinkRefused(f"device {link_code.device_id} is already linked")
    key_index = max(current.max_key_index, store.accounts.max_key_index()) + 1
    details = Details(
        account.user_id, link_code.device_id, key_index, link_code.identity, now_ms
    ).to_bytes()
    account_sig = account_signature(identity, details)
    mac = pairing_hmac(link_code.secret, details, account_sig)
    companion = ListedDevice(link_code.device_id, key_index, link_code.identity)
    new_list = sign_list(
        identity, account.user_id, current.version + 1, [*current.devices, companion], now_ms
    )
    store.accounts.note_key_index(key_index)  # never handed out again, linked or not
    try:
        await api.approve_pairing(link_code.ref, details, account_sig, mac, new_list.wire())
    except ApiError as exc:
        raise _link_error(exc) from exc
    return link_code.device_id


# --- the new device's side -----------------------------------------------------------


class _KeyCollector:
    """Takes the keys `keys.publish_initial_keys` would upload, for the pairing's
    completion instead (they go with it, in one request)."""

    def __init__(self) -> None:
        self.body: dict[str, Any] | None = None

    async def upload_keys(
        self,
        identity_key: bytes,
        signed_prekey: SignedPreKey,
        one_time_prekeys: list[OneTimePreKey],
    ) -> None:
        self.body = keys_body(identity_key, signed_prekey, one_time_prekeys)

    async def key_count(self) -> int:
        return 0


async def link(
    profile: str,
    *,
    endpoints: Endpoints | None = None,
    on_code: CodeCallback,
    home: Path | None = None,
    passphrase: str | None = None,
    keyring: KeyringChoice = "auto",
    allow_plaintext: bool = False,
    timeout: float = 300.0,  # noqa: ASYNC109 (the pairing's own lifetime bounds it too)
    poll_interval: float = DEFAULT_POLL_S,
    clock: Callable[[], float] = time.time,
) -> Account:
    """Make this profile a companion device of an account: show a link code
    (`on_code(code)`, e.g. print it and its QR code), wait for the account's primary
    to link it (`Client.link_device(code)`), then join with fresh prekeys.

    The profile must be new. Raises LinkExpired (nobody linked it in time),
    LinkRefused, LinkSignatureError (an approval that does not verify: nothing is
    joined) and the API's errors; a failed link leaves no profile behind.
    """
    endpoints = endpoints or Endpoints.local()
    with new_profile(profile, home, passphrase, keyring, allow_plaintext) as new:
        store = new.store
        async with aiohttp.ClientSession() as http:
            api = ApiClient(endpoints.http_url, http, clock=clock)
            account = await _join(api, store, on_code, timeout, poll_interval, clock)
            new.kept = True
            remember_service(new.directory, endpoints)
            api.use_tokens(store.accounts)
            try:
                await _pin_own_list(api, store, account)
            except (ApiError, DeviceListError) as exc:
                # the client verifies it again when it connects
                log.warning("could not read this account's device list yet: %s", exc)
        return account


async def _join(
    api: ApiClient,
    store: Store,
    on_code: CodeCallback,
    wait_s: float,
    poll_interval: float,
    clock: Callable[[], float],
) -> Account:
    identity = IdentityKeyPair.generate()
    secret = secrets.token_bytes(SECRET_LEN)
    pairing = await api.create_pairing(identity.public_key)
    code = LinkCode(pairing["ref"], pairing["device_id"], identity.public_key, secret)
    claim = str(pairing["claim"])
    shown = on_code(str(code))
    if inspect.isawaitable(shown):
        await shown
    deadline = clock() + min(float(wait_s), float(pairing["expires_in"]))
    status = await _wait_for_approval(api, code.ref, claim, deadline, poll_interval, clock)
    try:
        user_id = status["user_id"]
        details = unb64(status["details"])
        account_sig = unb64(status["account_signature"], 64)
        mac = unb64(status["hmac"], 32)
        account_identity = unb64(status["account_identity"], 32)
    except (KeyError, ValueError) as exc:
        raise LinkSignatureError(f"the approval is malformed: {exc}") from exc
    verify_hmac(secret, details, account_sig, mac)
    verify_account_signature(account_identity, details, account_sig)
    approved = Details.parse(details)
    if approved.identity != identity.public_key:
        raise LinkSignatureError("the approval names another identity than this device's")
    if approved.device_id != code.device_id or approved.user_id != user_id:
        raise LinkSignatureError("the approval names another device or account")
    consent = device_signature(identity, details, account_sig, account_identity)
    now = clock()
    collector = _KeyCollector()
    account = Account(user_id, code.device_id, "", "companion", approved.key_index)
    with store.transaction():
        store.accounts.save(account, identity)
        store.accounts.set_role("companion", approved.key_index, account_identity)
        await keys.publish_initial_keys(collector, store, now)
    assert collector.body is not None
    try:
        result = await api.complete_pairing(code.ref, claim, consent, collector.body)
    except ApiError as exc:
        raise _link_error(exc) from exc
    if (result.user_id, result.device_id) != (user_id, code.device_id):
        raise LinkSignatureError("the service joined this device to another account or id")
    store.accounts.save_tokens(result.tokens)
    log.info("linked to account %s as device %s", user_id, code.device_id)
    return account


async def _wait_for_approval(
    api: ApiClient,
    ref: str,
    claim: str,
    deadline: float,
    poll_interval: float,
    clock: Callable[[], float],
) -> dict[str, Any]:
    while True:
        try:
            status = await api.pairing_status(ref, claim)
        except ApiError as exc:
            raise _link_error(exc) from exc
        if status.get("state") == "approved":
            return status
        if clock() + poll_interval > deadline:
            raise LinkExpired("nobody linked this device in time: start linking again")
        await asyncio.sleep(poll_interval)


async def _pin_own_list(api: ApiClient, store: Store, account: Account) -> None:
    """Keep the account's device list (it must list this device) under the pinned
    account identity."""
    pinned = store.accounts.account_identity()
    answer = await api.own_devices()
    if answer.device_list is None:
        raise DeviceListError("the service holds no device list for this account")
    listed = verify_list(answer.device_list, user_id=account.user_id, account_identity=pinned)
    if account.device_id not in listed.device_ids:
        raise DeviceListError("this account's device list does not list this device yet")
    store.device_lists.save(
        account.user_id, listed.account_identity, listed.version, listed.body, listed.signature
    )
