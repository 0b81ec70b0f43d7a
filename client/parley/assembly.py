"""Putting an open client together, and taking a deleted profile apart.

`open_registered` unlocks a profile's store (it must hold an account),
`service_api` checks the endpoints belong to the profile's service and gives
the HTTP client for them, `build_slices` composes the messaging and group
slices over the store with the protocol restored from the outbox, and
`forget_profile` wipes a deleted account's profile from this machine.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import aiohttp

from parley import relationships
from parley.answers import KeyBundles
from parley.api import ApiClient
from parley.connection import Connection
from parley.endpoints import Endpoints
from parley.engine import Engine
from parley.errors import ConfigurationError, NotRegistered, ParleyClientError
from parley.groups.membership import Membership
from parley.inbound import Inbound
from parley.models import Event
from parley.protocol import ACK_DELAY_S, RECEIPT_ACK_DELAY_S, Protocol
from parley.service import account_gone, check_service
from parley.signup import KeyringChoice, open_store
from parley.store import Store
from parley.store.vault import KEYRING_SERVICE, system_keyring

__all__ = [
    "ServiceAccess",
    "Slices",
    "build_slices",
    "forget_profile",
    "open_registered",
    "service_api",
]


@dataclass(frozen=True)
class ServiceAccess:
    """The HTTP client for a profile's service, or why there is none."""

    api: ApiClient | None
    wrong_service: ParleyClientError | None = None  # see parley.service

    def require(self) -> ApiClient:
        """The API, or the reason there is none raised."""
        if self.api is None:
            if self.wrong_service is not None:
                raise self.wrong_service
            raise ConfigurationError("no service endpoints: start the local stack or use --aws")
        return self.api


@dataclass(frozen=True)
class Slices:
    """The messaging and group slices of one open client, and where events go."""

    engine: Engine
    membership: Membership
    inbound: Inbound


def open_registered(
    profile: str,
    home: Path | None,
    passphrase: str | None,
    keyring: KeyringChoice,
    allow_plaintext: bool,
) -> Store:
    """The profile's store, unlocked; NotRegistered (store closed) if it has no account."""
    store = open_store(profile, home, passphrase, keyring, allow_plaintext, create=False)
    try:
        store.accounts.require()
    except NotRegistered:
        store.close()
        raise
    return store


def service_api(
    store: Store,
    endpoints: Endpoints | None,
    profile: str,
    http: aiohttp.ClientSession,
    *,
    connect: bool,
    clock: Callable[[], float] = time.time,
) -> ServiceAccess:
    """The API of `endpoints` for this profile. Endpoints of another service raise
    when connecting; offline, the history stays readable and the first call to the
    service says why not (`wrong_service`)."""
    if endpoints is None:
        return ServiceAccess(None)
    directory = store.path.parent
    try:
        check_service(directory, endpoints, profile)
    except ParleyClientError as wrong_service:
        if connect:
            raise
        return ServiceAccess(None, wrong_service)
    explain = partial(account_gone, profile=profile, directory=directory)
    api = ApiClient(endpoints.http_url, http, store.accounts, clock=clock, explain=explain)
    return ServiceAccess(api)


def build_slices(
    store: Store,
    api: Callable[[], ApiClient],
    live: Connection,
    emit: Callable[[Event], None],
    relist: Callable[[], Awaitable[object]],
    devices_changed: Callable[[str, str], Awaitable[None]] | None = None,
    *,
    has_service: bool,
    clock: Callable[[], float] = time.time,
    ack_delay: float = ACK_DELAY_S,
    receipt_ack_delay: float = RECEIPT_ACK_DELAY_S,
) -> Slices:
    """The slices over `store`; `live` gets a protocol holding the stored outbox."""

    async def fetch_bundles(user_id: str) -> KeyBundles:
        return await api().key_bundles(user_id)

    engine = Engine(store, fetch_bundles, clock=clock)
    membership = Membership(
        store,
        api,
        emit,
        ticks=lambda: engine.ticks,
        has_service=lambda: has_service,
        sealer=lambda: engine.sealer,
        clock=clock,
    )
    live.protocol = Protocol(
        is_seen=store.seen.contains,
        ticks=partial(relationships.ticks, store),
        ack_delay=ack_delay,
        receipt_ack_delay=receipt_ack_delay,
    )
    # call signalling left from before a restart belongs to a call that is over
    store.outbox.drop_ephemeral()
    for item in store.outbox.items():
        live.protocol.send(item.entry)
    inbound = Inbound(store, engine, membership, live, emit, relist, devices_changed)
    return Slices(engine, membership, inbound)


def forget_profile(directory: Path, keyring_name: str | None, keyring: KeyringChoice) -> None:
    """Remove a profile's directory and its key in the OS keyring."""
    shutil.rmtree(directory, ignore_errors=True)
    ring = system_keyring() if keyring == "auto" else keyring
    forget = getattr(ring, "delete_password", None)
    if keyring_name is not None and callable(forget):
        with contextlib.suppress(Exception):  # the store it opened is gone anyway
            forget(KEYRING_SERVICE, keyring_name)
