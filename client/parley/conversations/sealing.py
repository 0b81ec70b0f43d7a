"""Sealing one plaintext for every device of a user, over the pairwise sessions.

Every pairwise send goes through here: a message to a contact, the copy for
this account's other devices, a group sender key handed to a member, and the
re-encryption of a send refused for mismatched devices. `seal` encrypts for
each session (starting sessions by X3DH from freshly fetched key bundles where
there are none); `commit` then saves the advanced sessions and adds the outbox
entry in one transaction.

Every account's devices are vouched for by its signed device list
(`parley.devices.lists`), which comes with its key bundles: the list is verified
here, its account identity pinned on first sight, a rollback refused, and only
devices on the list (with the identity key the list names) get a session. A
device the service offers that is not on the list is skipped and logged (logger
`parley.devices`); if the service then insists on it, the send fails
(`UnlistedDevice`, code "unlisted_device").

No network: key bundles come from an injected async fetcher.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from parley.answers import KeyBundles, b64
from parley.crypto import CryptoError, IdentityKeyPair, Session
from parley.devices.lists import DeviceList, verify_list
from parley.errors import ContactNotFound, DeviceListError, MessageTooLarge, UnlistedDevice
from parley.models import Account, Contact, DevicesChanged, Event, IdentityChanged
from parley.protocol import FrameTooLarge, OutboxEntry, check_size
from parley.store import Store

__all__ = ["BundleFetcher", "Sealed", "Sealer", "check_entry_size", "new_client_id"]

log = logging.getLogger("parley.conversations")
devices_log = logging.getLogger("parley.devices")

# GET /v1/keys/{user_id}: the bundles and the signed device list
BundleFetcher = Callable[[str], Awaitable[KeyBundles]]


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
        self._lists: dict[str, DeviceList] = {}  # verified lists read from the store
        self._asked: set[tuple[str, str]] = set()  # unknown devices looked up already
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
            if self.verified_list(uid) is None and self.store.sessions.for_user(uid):
                # sessions but no verified list yet (they wrote first): verify it now
                events += await self.refresh_list(contact)
            sessions = self.listed_sessions(uid)
            if not sessions:
                sessions, more = await self.start_sessions(contact)
                events += more
        return self._encrypt(uid, sessions, plaintext, events)

    def seal_existing(self, user_id: str, plaintext: bytes) -> Sealed | None:
        """Encrypt for the sessions already held with `user_id`'s listed devices (None
        if there are none)."""
        sessions = self.listed_sessions(user_id)
        return self._encrypt(user_id, sessions, plaintext, []) if sessions else None

    def listed_sessions(self, user_id: str) -> dict[str, Session]:
        """The sessions held with devices on `user_id`'s verified list (none without one)."""
        listed = self.verified_list(user_id)
        if listed is None:
            return {}
        ids = listed.device_ids - {self.account.device_id}
        return {d: s for d, s in self.store.sessions.for_user(user_id).items() if d in ids}

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
        """Start sessions with `contact`'s listed devices now if there are none (e.g. to
        show a safety number before the first message, or to hand out a sender key);
        the fetched prekeys are not wasted. Sessions held without a verified device
        list (they wrote first) are kept once their list is verified."""
        uid = contact.user_id
        async with self.lock(uid):
            events: list[Event] = []
            if self.verified_list(uid) is None and self.store.sessions.for_user(uid):
                events += await self.refresh_list(contact)
            if self.listed_sessions(uid):
                return events
            sessions, more = await self.start_sessions(contact)
            sealed = Sealed(uid, {}, sessions, more)
            with self.store.transaction():
                self.save(sealed, self.clock())
        return events + more

    async def start_sessions(
        self, contact: Contact, only: set[str] | None = None
    ) -> tuple[dict[str, Session], list[Event]]:
        """X3DH with each (wanted) device from freshly fetched key bundles, for the
        devices on the account's verified device list alone."""
        uid = contact.user_id
        answer = await self._fetch(uid)
        listed, events = self.check_list(contact, answer.device_list)
        sessions: dict[str, Session] = {}
        mine = uid == self.account.user_id
        offered: set[str] = set()
        for device in answer.devices:
            did = device.device_id
            if only is not None and did not in only:
                continue
            if mine and did == self.account.device_id:
                continue  # this device itself
            identity = listed.identity_of(did)
            if identity is None:
                devices_log.warning("device %s of %s is not on their signed device list", did, uid)
                continue
            if identity != device.bundle.identity_key:
                devices_log.warning(
                    "device %s of %s offers another identity key than their signed device"
                    " list names",
                    did,
                    uid,
                )
                continue
            try:
                session = Session.initiate(self.identity, device.bundle)
            except CryptoError as exc:
                log.warning("ignored a bad key bundle of %s/%s: %s", uid, did, exc)
                continue
            offered.add(did)
            if mine:
                self.own_devices |= {did}
            else:
                # the list vouches for it: a linked device is no identity change
                self.store.contacts.record_identity(uid, did, identity, vouched=True)
            sessions[did] = session
        if only is not None:
            unlisted = tuple(sorted(only - offered - {self.account.device_id}))
            if unlisted and any(listed.identity_of(d) is None for d in unlisted):
                raise UnlistedDevice(uid, unlisted)
        if not sessions:
            raise ContactNotFound(f"{contact.display_name} has no device with usable keys")
        return sessions, events

    # --- device lists ----------------------------------------------------------------------

    def verified_list(self, user_id: str) -> DeviceList | None:
        """`user_id`'s device list as last verified here (None if none yet)."""
        cached = self._lists.get(user_id)
        if cached is not None:
            return cached
        stored = self.store.device_lists.get(user_id)
        if stored is None:
            return None
        try:
            listed = verify_list(
                stored.wire(), user_id=user_id, account_identity=stored.account_identity
            )
        except DeviceListError as exc:  # damaged on disk: start over from the service
            devices_log.warning("forgot a stored device list of %s: %s", user_id, exc)
            self.store.device_lists.forget(user_id)
            return None
        self._lists[user_id] = listed
        return listed

    async def refresh_list(self, contact: Contact) -> list[Event]:
        """Fetch and verify `contact`'s device list now (claims a prekey per device)."""
        answer = await self._fetch(contact.user_id)
        _, events = self.check_list(contact, answer.device_list)
        return events

    def check_list(
        self, contact: Contact, wire: dict[str, object] | None
    ) -> tuple[DeviceList, list[Event]]:
        """Verify a device list the service sent for `contact`, pin its account identity
        on first sight, refuse a rollback, keep it if newer; what changed, as events.
        DeviceListError if it cannot be trusted (nothing is kept then)."""
        uid = contact.user_id
        mine = uid == self.account.user_id
        if wire is None:
            raise ContactNotFound(f"{contact.display_name} has no signed device list yet")
        before = self.verified_list(uid)
        try:
            listed = verify_list(wire, user_id=uid)
            if before is not None and listed.account_identity == before.account_identity:
                if listed.version < before.version:
                    raise DeviceListError(
                        f"device list version {listed.version} is older than version"
                        f" {before.version} already seen (a rollback)"
                    )
                if listed.version == before.version and listed.body != before.body:
                    raise DeviceListError(
                        f"two different device lists claim version {listed.version}"
                    )
            if mine:
                pinned = self.pinned_own_identity()
                if pinned is not None and listed.account_identity != pinned:
                    raise DeviceListError(
                        "this account's device list is signed by another account identity"
                    )
        except DeviceListError as exc:
            devices_log.warning("refused the device list of %s: %s", uid, exc)
            raise
        if before is not None and before.body == listed.body:
            return before, []
        return listed, self._keep_list(contact, before, listed)

    def pinned_own_identity(self) -> bytes | None:
        """This account's identity: the primary's key (this device's, on the primary)."""
        if self.account.role == "primary":
            return self.identity.public_key
        return self.store.accounts.account_identity()

    def _keep_list(
        self, contact: Contact, before: DeviceList | None, listed: DeviceList
    ) -> list[Event]:
        uid = contact.user_id
        mine = uid == self.account.user_id
        events: list[Event] = []
        with self.store.transaction():
            self.store.device_lists.save(
                uid, listed.account_identity, listed.version, listed.body, listed.signature
            )
            self._lists[uid] = listed
            if before is None:
                return events
            if listed.account_identity != before.account_identity:
                # a new primary (the number moved to a new phone): a new chain of lists
                self.store.contacts.mark_identity_changed(uid)
                for did in before.device_ids:
                    self.store.contacts.forget_device(uid, did)
                self.store.sender_keys.forget_distribution(uid)
                devices_log.warning("account identity of %s changed", contact.display_name)
                changed = self.store.contacts.get(uid) or contact
                events.append(IdentityChanged(changed, None))
                return events
            added = tuple(sorted(listed.device_ids - before.device_ids))
            removed = tuple(sorted(before.device_ids - listed.device_ids))
            for did in removed:
                self.store.contacts.forget_device(uid, did)
            if added:
                # our group sender keys go to the new devices with the next message
                self.store.sender_keys.forget_distribution(uid)
            if mine:
                self.own_devices = (self.own_devices - set(removed)) & (
                    listed.device_ids - {self.account.device_id}
                )
            if added or removed:
                who = self.me() if mine else (self.store.contacts.get(uid) or contact)
                events.append(DevicesChanged(who, added, removed))
        return events

    def sender_refused(self, user_id: str, device_id: str, identity: bytes) -> str | None:
        """Why an envelope from `user_id`'s `device_id` (with this identity key) is not
        accepted, or None: our own devices must be on our verified list; a contact's
        must be on their last verified list (when one is known)."""
        listed = self.verified_list(user_id)
        mine = user_id == self.account.user_id
        if listed is None:
            return "this account's device list is not known yet" if mine else None
        expected = listed.identity_of(device_id)
        if expected is None:
            return f"device {device_id} is not on the signed device list of {user_id}"
        if expected != identity:
            return f"device {device_id} of {user_id} has another identity than listed"
        return None

    async def learn_device(self, user_id: str, device_id: str) -> list[Event]:
        """Before opening an envelope from a device not on the sender's verified list
        (a companion linked since): fetch and verify their list again, once per device."""
        listed = self.verified_list(user_id)
        mine = user_id == self.account.user_id
        if listed is None and not mine:
            return []
        if listed is not None and device_id in listed.device_ids:
            return []
        if (user_id, device_id) in self._asked:
            return []
        self._asked.add((user_id, device_id))
        contact = self.me() if mine else self.store.contacts.get(user_id)
        if contact is None:
            contact = Contact(user_id, None, None)
        try:
            return await self.refresh_list(contact)
        except ContactNotFound as exc:
            devices_log.warning("could not check the device list of %s: %s", user_id, exc)
            return []

    def identity_changed(self, uid: str, device_id: str) -> IdentityChanged:
        contact = self.store.contacts.get(uid) or Contact(uid, None, None, identity_changed=True)
        log.warning("identity key of %s changed (device %s)", contact.display_name, device_id)
        return IdentityChanged(contact, device_id)
