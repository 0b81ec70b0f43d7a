"""Registering a device: a sign-up code texted to a number, then this device's
identity and prekeys published into a new profile.

    await request_code("+15551230001")
    await sign_up("alice", "+15551230001", code, passphrase=secret)
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

from parley import keys
from parley.api import ApiClient
from parley.crypto import IdentityKeyPair
from parley.devices.lists import ListedDevice, sign_list
from parley.endpoints import Endpoints
from parley.errors import ParleyClientError
from parley.models import Account
from parley.profiles import profile_dir
from parley.service import remember_service
from parley.store import DB_FILE, Store
from parley.store.vault import KeyringLike

__all__ = ["KeyringChoice", "NewProfile", "new_profile", "open_store", "request_code", "sign_up"]

KeyringChoice = KeyringLike | Literal["auto"] | None


def open_store(
    profile: str,
    home: Path | None,
    passphrase: str | None,
    keyring: KeyringChoice,
    allow_plaintext: bool,
    *,
    create: bool,
) -> Store:
    """The profile's store, unlocked (`create`: a new profile may be made)."""
    return Store.open(
        profile_dir(profile, home),
        passphrase=passphrase,
        keyring=keyring,
        allow_plaintext=allow_plaintext,
        create=create,
    )


@dataclass
class NewProfile:
    """A new profile's unlocked store; set `kept` once its account exists."""

    directory: Path
    store: Store
    kept: bool = False


@contextmanager
def new_profile(
    profile: str,
    home: Path | None,
    passphrase: str | None,
    keyring: KeyringChoice,
    allow_plaintext: bool,
) -> Iterator[NewProfile]:
    """Open (creating it) a profile that must not have an account yet; on the way
    out close its store and, if the profile was new and not `kept`, remove it (a
    failed signup or link leaves nothing behind)."""
    directory = profile_dir(profile, home)
    is_new = not (directory / DB_FILE).exists()
    new = NewProfile(
        directory, open_store(profile, home, passphrase, keyring, allow_plaintext, create=True)
    )
    try:
        if new.store.accounts.get() is not None:
            raise ParleyClientError(f"profile {profile!r} already has an account")
        yield new
    finally:
        new.store.close()
        if is_new and not new.kept:
            shutil.rmtree(directory, ignore_errors=True)


async def request_code(phone: str, *, endpoints: Endpoints | None = None) -> dict[str, Any]:
    """Ask the service to text a sign-up code to `phone` (E.164, e.g. +15551234567)."""
    endpoints = endpoints or Endpoints.local()
    async with aiohttp.ClientSession() as http:
        return await ApiClient(endpoints.http_url, http).request_code(phone)


async def sign_up(
    profile: str,
    phone: str,
    code: str,
    *,
    endpoints: Endpoints | None = None,
    home: Path | None = None,
    passphrase: str | None = None,
    keyring: KeyringChoice = "auto",
    allow_plaintext: bool = False,
    clock: Callable[[], float] = time.time,
    pin: str | None = None,
) -> Account:
    """Verify `code`, create this device's identity and publish its prekeys and the
    account's signed device list (version 1: this device, the primary).

    The profile must be new (one profile = one account on one device). A number
    whose account has a registration lock needs its `pin`: without it (or with a
    wrong one) RegistrationLocked (`retry_after`, `attempts_left`), after too many
    wrong ones PinBackoff; the code stays usable until it expires.
    """
    endpoints = endpoints or Endpoints.local()
    with new_profile(profile, home, passphrase, keyring, allow_plaintext) as new:
        store = new.store
        async with aiohttp.ClientSession() as http:
            api = ApiClient(endpoints.http_url, http, clock=clock)
            result = await api.verify(phone, code, pin)
            account = Account(result.user_id, result.device_id, phone, "primary", 0)
            identity = IdentityKeyPair.generate()
            with store.transaction():
                store.accounts.save(account, identity)
                store.accounts.set_role("primary", 0, identity.public_key)
                store.accounts.save_tokens(result.tokens)
            new.kept = True
            remember_service(new.directory, endpoints)  # the service this account lives on
            api.use_tokens(store.accounts)
            # if this fails the account stands; the client publishes keys when it connects
            await keys.publish_initial_keys(api, store, clock())
            # the account's first device list: this device alone (the client publishes
            # it when it connects if this fails)
            first = sign_list(
                identity,
                account.user_id,
                1,
                [ListedDevice(account.device_id, 0, identity.public_key)],
                int(clock() * 1000),
            )
            await api.publish_device_list(first.wire())
            store.device_lists.save(
                account.user_id, identity.public_key, 1, first.body, first.signature
            )
        return account
