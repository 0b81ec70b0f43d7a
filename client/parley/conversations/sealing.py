"""Sealing one plaintext for every device of a user, over the pairwise sessions.

Every pairwise send goes through here: a message to a contact, the copy for
this account's other devices, a group sender key handed to a member, and the
re-encryption of a send refused for mismatched devices. `seal` encrypts for
each session (starting sessions by X3DH from freshly fetched key bundles where
there are none); `commit` then saves the advanced sessions and adds the outbox
entry in one transaction.

No network: key bundles come from an injected async fetcher.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from parley.answers import DeviceBundle, b64
from parley.crypto import CryptoError, IdentityKeyPair, Session
from parley.errors import ContactNotFound, MessageTooLarge
from parley.models import Account, Contact, Event, IdentityChanged
from parley.protocol import FrameTooLarge, OutboxEntry, check_size
from parley.store import Store

__all__ = ["BundleFetcher", "Sealed", "Sealer", "check_entry_size", "new_client_id"]

log = logging.getLogger("parley.conversations")

BundleFetcher = Callable[[str], Awaitable[list[DeviceBundle]]]


def new_client_id() -> str:
    """Unique per sender; the server and the recipient dedupe on it."""
    return secrets.token_hex(16)


def check_entry_size(entry: OutboxEntry) -> None:
    """MessageTooLarge if the entry's frame would exceed the service's message limit."""
    try:
        check_size(entry)
    except FrameTooLarge as exc:
        raise MessageTooLarge(str(exc)) from exc


@dataclass
class Sealed:
    """One plaintext encrypted for a user's devices: the payloads to send, the
    sessions they advanced (not yet saved) and what starting sessions showed."""

    user_id: str
    payloads: dict[str, str]
    sessions: dict[str, Session]
    events: list[Event] = field(default_factory=list)


class Sealer:
    """The pairwise sessions of one device: started, used and saved here."""

    def __init__(
        self,
        store: Store,
        fetch_bundles: BundleFetcher,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._fetch = fetch_bundles
        self.clock = clock
        self.account: Account = store.accounts.require()
        self.identity: IdentityKeyPair = store.accounts.identity()
        self._locks: dict[str, asyncio.Lock] = {}
        # this account's other devices that can receive (see set_own_devices): what
        # this one sends goes to them too, and its group sender keys
        self.own_devices: frozenset[str] = frozenset()

    def set_own_devices(self, device_ids: Iterable[str]) -> None:
        """This account's other devices, as the service lists them."""
        self.own_devices = frozenset(d for d in device_ids if d != self.account.device_id)

    def me(self) -> Contact:
        """This account, as the contact its other devices are."""
        return Contact(self.account.user_id, "you", self.account.phone)

    def lock(self, key: str) -> asyncio.Lock:
        """One send at a time per conversation (a user id or a group's address)."""
        return self._locks.setdefault(key, asyncio.Lock())

    # --- sealing -------------------------------------------------------------------------

    async def seal(
        self, contact: Contact, plaintext: bytes, *, only: Iterable[str] | None = None
    ) -> Sealed:
        """Encrypt `plaintext` for every device of `contact`, starting sessions if there
        are none (ContactNotFound if no device has usable keys). With `only`: for those
        devices alone, with sessions started afresh (devices the service says are new)."""
        uid = contact.user_id
        events: list[Event] = []
        if only is not None:
            sessions, events = await self.start_sessions(contact, set(only))
        else:
            sessions = self.store.sessions.for_user(uid)
            if not sessions:
                sessions, events = await self.start_sessions(contact)
        return self._encrypt(uid, sessions, plaintext, events)

    def seal_existing(self, user_id: str, plaintext: bytes) -> Sealed | None:
        """Encrypt for the sessions already held with `user_id` (None if there are none)."""
        sessions = self.store.sessions.for_user(user_id)
        return self._encrypt(user_id, sessions, plaintext, []) if sessions else None

    def save(self, sealed: Sealed, now: float) -> None:
        """Keep the sessions a seal advanced (call inside a transaction)."""
        for did, session in sealed.sessions.items():
            self.store.sessions.save(sealed.user_id, did, session, now)

    def commit(self, sealed: Sealed, entry: OutboxEntry, plaintext: bytes, now: float) -> None:
        """Save the advanced sessions and queue `entry` in the outbox, all or nothing."""
        with self.store.transaction():
            self.save(sealed, now)
            self.store.outbox.add(entry, plaintext, now)

    @staticmethod
    def _encrypt(
        uid: str, sessions: dict[str, Session], plaintext: bytes, events: list[Event]
    ) -> Sealed:
        payloads = {did: b64(s.encrypt(plaintext)) for did, s in sessions.items()}
        return Sealed(uid, payloads, sessions, events)

    # --- sessions ------------------------------------------------------------------------

    async def ensure_sessions(self, contact: Contact) -> list[Event]:
        """Start sessions with `contact`'s devices now if there are none (e.g. to show a
        safety number before the first message); the fetched prekeys are not wasted."""
        uid = contact.user_id
        async with self.lock(uid):
            if self.store.sessions.for_user(uid):
                return []
            sessions, events = await self.start_sessions(contact)
            sealed = Sealed(uid, {}, sessions, events)
            with self.store.transaction():
                self.save(sealed, self.clock())
        return events

    async def start_sessions(
        self, contact: Contact, only: set[str] | None = None
    ) -> tuple[dict[str, Session], list[Event]]:
        """X3DH with each (wanted) device from freshly fetched key bundles."""
        uid = contact.user_id
        bundles = await self._fetch(uid)
        sessions: dict[str, Session] = {}
        events: list[Event] = []
        mine = uid == self.account.user_id
        for device in bundles:
            if only is not None and device.device_id not in only:
                continue
            if mine and device.device_id == self.account.device_id:
                continue  # this device itself
            try:
                session = Session.initiate(self.identity, device.bundle)
            except CryptoError as exc:
                log.warning("ignored a bad key bundle of %s/%s: %s", uid, device.device_id, exc)
                continue
            if mine:
                self.own_devices |= {device.device_id}
            elif self.store.contacts.record_identity(
                uid, device.device_id, device.bundle.identity_key
            ):
                events.append(self.identity_changed(uid, device.device_id))
            sessions[device.device_id] = session
        if not sessions:
            raise ContactNotFound(f"{contact.display_name} has no device with usable keys")
        return sessions, events

    def identity_changed(self, uid: str, device_id: str) -> IdentityChanged:
        contact = self.store.contacts.get(uid) or Contact(uid, None, None, identity_changed=True)
        log.warning("identity key of %s changed (device %s)", contact.display_name, device_id)
        return IdentityChanged(contact, device_id)
