"""The messaging use cases of one device, between the store and the crypto.

Encrypting a message for every device of a contact (starting sessions from
their key bundles on first contact), decrypting what arrives, applying
receipts, and repairing a send the server refused for mismatched devices.
No network: key bundles come from an injected async fetcher, so two engines
can talk to each other in a unit test.

Groups: a group message is encrypted once with this device's sender key
(`parley.groups`); the key goes first to every member over the pairwise
sessions, by the same path as any 1:1 message, and the group message waits
for those sends (`OutboxEntry.after`). When the group's version moves, the
next send makes a fresh key; when the server says the send is stale, the
caller refreshes the group and `regroup` rotates, redistributes and
re-encrypts under the same client id.

Every incoming envelope is handled in one store transaction: either the
message, the session it advanced, the one-time prekey it consumed and its
(sender, client id) pair are all stored, or nothing is. Malformed or forged
input is logged and dropped, never raised to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

from parley import payload
from parley.api import DeviceBundle, b64, unb64
from parley.crypto import (
    CryptoError,
    DecryptionError,
    IdentityKeyPair,
    ReplayError,
    Session,
    UnsupportedVersion,
    is_prekey_message,
    safety_number,
)
from parley.crypto.sender_keys import MAX_GROUP_PLAINTEXT_LEN
from parley.crypto.wire import VERSION as WIRE_VERSION
from parley.errors import ContactNotFound, MessageTooLarge
from parley.groups import GroupMessaging, NotAGroupMember
from parley.media import Content, Text
from parley.models import (
    Account,
    Contact,
    Direction,
    Event,
    Group,
    IdentityChanged,
    Message,
    MessageReceived,
    MessageSent,
    MessageState,
    ReceiptUpdate,
    SendFailed,
)
from parley.protocol import (
    FrameTooLarge,
    IncomingMessage,
    IncomingReceipt,
    OutboxEntry,
    check_size,
)
from parley.storage import OwnSenderKey, Store

__all__ = ["BundleFetcher", "Engine", "GroupResend", "Incoming", "new_client_id"]

log = logging.getLogger("parley.engine")

BundleFetcher = Callable[[str], Awaitable[list[DeviceBundle]]]
# A send refused for mismatched devices (or a stale group) this often in a row is given up.
MAX_DEVICE_REPAIRS = 3


def new_client_id() -> str:
    """Unique per sender; the server and the recipient dedupe on it."""
    return secrets.token_hex(16)


class _Rejected(Exception):
    """An envelope that is dropped (with a warning), e.g. from an unknown sender."""


@dataclass
class Incoming:
    """What became of an incoming envelope."""

    stored: bool  # True: ack it as stored; False: ack it as dropped (or held for a key)
    events: list[Event] = field(default_factory=list)
    consumed_prekey: bool = False
    refresh_groups: set[str] = field(default_factory=set)  # to read again from the service


@dataclass(frozen=True)
class GroupResend:
    """A stale group message re-encrypted for the group's current version, and the
    sender-key messages it must wait for (queue those first)."""

    body: str
    version: int
    distributions: list[OutboxEntry]


class Engine:
    def __init__(
        self,
        store: Store,
        fetch_bundles: BundleFetcher,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._fetch = fetch_bundles
        self._clock = clock
        self.account: Account = store.require_account()
        self._identity: IdentityKeyPair = store.identity()
        self._locks: dict[str, asyncio.Lock] = {}
        self._repairs: dict[str, int] = {}
        self.groups = GroupMessaging(store, self.account, clock)
        self.groups.prune()
        # this account's other devices that can receive (see set_own_devices): what
        # this one sends goes to them too, and its group sender keys
        self.own_devices: frozenset[str] = frozenset()

    def set_own_devices(self, device_ids: Iterable[str]) -> None:
        """This account's other devices, as the service lists them."""
        self.own_devices = frozenset(d for d in device_ids if d != self.account.device_id)

    def _me(self) -> Contact:
        return Contact(self.account.user_id, "you", self.account.phone)

    # --- sending ---------------------------------------------------------------------

    async def prepare(
        self, contact: Contact, content: str | Content
    ) -> tuple[Message, OutboxEntry, list[Event]]:
        """Encrypt a text (or any content kind) for every device of `contact`; store
        message and outbox entry."""
        if isinstance(content, str):
            content = Text(content)  # ValueError (ContentError) for an empty or huge text
        plaintext = payload.encode(content)
        uid = contact.user_id
        async with self._lock(uid):
            events: list[Event] = []
            sessions = self.store.sessions(uid)
            if not sessions:
                sessions, events = await self._start_sessions(contact)
            payloads = {did: b64(s.encrypt(plaintext)) for did, s in sessions.items()}
            entry = OutboxEntry(client_id=new_client_id(), to=uid, payloads=payloads)
            self._check_size(entry)
            now = self._clock()
            with self.store.transaction():
                for did, session in sessions.items():
                    self.store.save_session(uid, did, session, now)
                message = self._add_outgoing(uid, entry, content, now)
                self.store.outbox_add(entry, plaintext, now)
        assert message is not None  # a fresh random client id
        return message, entry, events

    async def own_copy(self, message: Message) -> tuple[OutboxEntry | None, list[Event]]:
        """A copy of `message` (just prepared for a contact) for this account's other
        devices, stored in the outbox; None when there are none (or none usable)."""
        if not self.own_devices or message.content is None:
            return None, []
        me = self.account.user_id
        plaintext = payload.encode_sent_copy(
            payload.SentCopy(message.peer, message.client_id, message.content)
        )
        async with self._lock(me):
            events: list[Event] = []
            sessions = self.store.sessions(me)
            if not sessions:
                try:
                    sessions, events = await self._start_sessions(self._me())
                except ContactNotFound as exc:
                    # the list was out of date (a device signed out): none until relisted
                    log.info("no copy for this account's other devices: %s", exc)
                    self.own_devices = frozenset()
                    return None, events
            entry = OutboxEntry(
                client_id=new_client_id(),
                to=me,
                payloads={did: b64(s.encrypt(plaintext)) for did, s in sessions.items()},
            )
            try:
                self._check_size(entry)
            except MessageTooLarge:
                log.warning("message %s too large to copy to our other devices", message.client_id)
                return None, events
            now = self._clock()
            with self.store.transaction():
                for did, session in sessions.items():
                    self.store.save_session(me, did, session, now)
                self.store.outbox_add(entry, plaintext, now)
        return entry, events

    async def repair(
        self, entry: OutboxEntry, missing: tuple[str, ...], extra: tuple[str, ...]
    ) -> tuple[dict[str, str] | None, list[Event]]:
        """Re-encrypt an entry for the recipient's current devices. None: give up."""
        uid = entry.to
        attempts = self._repairs.get(entry.client_id, 0) + 1
        self._repairs[entry.client_id] = attempts
        plaintext = self.store.outbox_plaintext(entry.client_id)
        contact = self._me() if uid == self.account.user_id else self.store.contact(uid)
        if attempts > MAX_DEVICE_REPAIRS or plaintext is None or contact is None:
            log.warning("giving up on %s after %d device repairs", entry.client_id, attempts - 1)
            return None, []
        async with self._lock(uid):
            if uid == self.account.user_id:
                self.own_devices = (self.own_devices - set(extra)) | set(missing)
            for device in extra:
                self.store.forget_device(uid, device)
            # their devices changed: our group sender keys go to them again next time
            self.store.forget_distribution(uid)
            payloads = {d: p for d, p in (entry.payloads or {}).items() if d not in extra}
            events: list[Event] = []
            new: dict[str, Session] = {}
            if missing:
                try:
                    new, events = await self._start_sessions(contact, only=set(missing))
                except ContactNotFound:
                    new = {}
                for did, session in new.items():
                    payloads[did] = b64(session.encrypt(plaintext))
            if not payloads:
                return None, events
            now = self._clock()
            with self.store.transaction():
                for did, session in new.items():
                    self.store.save_session(uid, did, session, now)
                self.store.outbox_update(entry.client_id, payloads)
        return payloads, events

    def sent(self, entry: OutboxEntry, ts: int) -> MessageSent | None:
        """The server stored the message: single tick, out of the outbox."""
        self._repairs.pop(entry.client_id, None)
        with self.store.transaction():
            self.store.outbox_remove(entry.client_id)
            message = self.store.message(self.account.user_id, entry.client_id)
            if message is None:
                return None
            if ts:
                self.store.set_message_state(message.id, message.state, ts)
            moved = self.store.advance(
                self.account.user_id, message.peer, [entry.client_id], MessageState.SENT
            )
        if not moved:
            return None  # a receipt got here first
        return MessageSent(moved[0])

    def failed(self, entry: OutboxEntry, code: str, reason: str) -> SendFailed | None:
        self._repairs.pop(entry.client_id, None)
        with self.store.transaction():
            self.store.outbox_remove(entry.client_id)
            message = self.store.message(self.account.user_id, entry.client_id)
            if message is None:
                # a sender key that did not go: it goes again with the next group message
                if not entry.is_group:
                    self.store.forget_distribution(entry.to)
                log.warning(
                    "could not send %s to %s: %s (%s)", entry.client_id, entry.to, code, reason
                )
                return None
            self.store.set_message_state(message.id, MessageState.FAILED)
        log.warning("message %s failed: %s (%s)", entry.client_id, code, reason)
        return SendFailed(replace(message, state=MessageState.FAILED), code, reason)

    # --- groups: sending ---------------------------------------------------------------

    async def prepare_group(
        self, group: Group, content: str | Content
    ) -> tuple[Message, list[OutboxEntry], list[Event]]:
        """Encrypt once with our sender key for the group (a fresh one if the group
        moved on), store message and outbox entries. Returns the message and the
        entries to queue in order: the sender-key messages first, then the message."""
        if isinstance(content, str):
            content = Text(content)
        self._check_member(group)
        plaintext = payload.encode(content)
        if len(plaintext) > MAX_GROUP_PLAINTEXT_LEN:
            raise MessageTooLarge(f"a group message holds at most {MAX_GROUP_PLAINTEXT_LEN} bytes")
        async with self._lock(group.conversation):
            events = await self._sessions_for_key(group)
            now = self._clock()
            with self.store.transaction():
                own, distributions = self._distribute(group, now)
                entry = OutboxEntry(
                    client_id=new_client_id(),
                    to=group.conversation,
                    body=b64(own.key.encrypt(plaintext)),
                    version=group.version,
                    after=tuple(d.client_id for d in distributions),
                )
                self._check_size(entry)
                self.store.save_own_sender_key(group.group_id, own, now)
                message = self._add_outgoing(group.conversation, entry, content, now)
                assert message is not None  # a fresh random client id
                self.groups.start_ticks(message, group)
                self.store.outbox_add(entry, plaintext, now)
        return message, [*distributions, entry], events

    async def regroup(
        self, entry: OutboxEntry, group: Group
    ) -> tuple[GroupResend | None, list[Event]]:
        """The server found `entry` encrypted for an old version of `group` (given here
        as just read from the service): rotate our sender key, send it to the members
        now in the group, re-encrypt. None: give up (not a member, or tried enough)."""
        attempts = self._repairs.get(entry.client_id, 0) + 1
        self._repairs[entry.client_id] = attempts
        plaintext = self.store.outbox_plaintext(entry.client_id)
        me = self.account.user_id
        if attempts > MAX_DEVICE_REPAIRS or plaintext is None or not group.is_member(me):
            log.warning("giving up on group message %s after %d tries", entry.client_id, attempts)
            return None, []
        async with self._lock(group.conversation):
            events = await self._sessions_for_key(group)
            now = self._clock()
            with self.store.transaction():
                own, distributions = self._distribute(group, now)
                body = b64(own.key.encrypt(plaintext))
                after = tuple(d.client_id for d in distributions)
                self._check_size(replace(entry, body=body, version=group.version, after=after))
                self.store.save_own_sender_key(group.group_id, own, now)
                self.store.outbox_update_group(entry.client_id, body, group.version, after)
                message = self.store.message(me, entry.client_id)
                if message is not None:
                    self.groups.start_ticks(message, group)  # it now goes to these members
        return GroupResend(body, group.version, distributions), events

    def needs_new_key(self, group: Group) -> bool:
        """Whether the next message to the group makes or hands out a sender key
        (first message, membership moved, or a member still lacks it)."""
        own = self.store.own_sender_key(group.group_id)
        if own is None or own.version != group.version:
            return True
        return bool(self._need_key(group, own))

    def _need_key(self, group: Group, own: OwnSenderKey) -> list[str]:
        """Who must be given our sender key: members who lack it, and this account
        itself (its other devices) when it has others."""
        return self.groups.needs_key(group, own, with_self=bool(self.own_devices))

    def _check_member(self, group: Group) -> None:
        if not group.active or not group.is_member(self.account.user_id):
            raise NotAGroupMember(f"you are not a member of {group.display_name}")

    def _add_outgoing(
        self, peer: str, entry: OutboxEntry, content: Content, now: float
    ) -> Message | None:
        """Our message that `entry` carries, pending, in the conversation with `peer`."""
        return self.store.add_message(
            peer=peer,
            direction=Direction.OUT,
            sender=self.account.user_id,
            client_id=entry.client_id,
            text=payload.describe(content),
            ts=int(now * 1000),
            state=MessageState.PENDING,
            content=content,
        )

    @staticmethod
    def _check_size(entry: OutboxEntry) -> None:
        try:
            check_size(entry)
        except FrameTooLarge as exc:
            raise MessageTooLarge(str(exc)) from exc

    async def _sessions_for_key(self, group: Group) -> list[Event]:
        """Pairwise sessions with every member our sender key must go to (X3DH with
        those we never wrote to). A member with no usable device is left out."""
        own = self.groups.sender_key(group)
        events: list[Event] = []
        for member in self._need_key(group, own):
            if member == self.account.user_id:
                contact = self._me()
            else:
                contact = self.store.contact(member) or Contact(member, None, None)
            try:
                events += await self.ensure_sessions(contact)
            except ContactNotFound as exc:
                log.warning("group %s: cannot give %s our key: %s", group.group_id, member, exc)
        return events

    def _distribute(self, group: Group, now: float) -> tuple[OwnSenderKey, list[OutboxEntry]]:
        """Our sender key for the group and the pairwise messages that give it to each
        member who lacks it (sessions advanced, entries in the outbox). Call inside a
        transaction, with the members' sessions started."""
        own = self.groups.sender_key(group)
        need = self._need_key(group, own)
        if not need:
            return own, []
        plaintext = self.groups.distribution(group, own)
        entries: list[OutboxEntry] = []
        given: list[str] = []
        for member in need:
            sessions = self.store.sessions(member)
            if not sessions:
                continue  # no usable device (warned when sessions were started)
            entry = OutboxEntry(
                client_id=new_client_id(),
                to=member,
                payloads={did: b64(s.encrypt(plaintext)) for did, s in sessions.items()},
            )
            for did, session in sessions.items():
                self.store.save_session(member, did, session, now)
            self.store.outbox_add(entry, plaintext, now)
            entries.append(entry)
            given.append(member)
        return self.groups.with_distributed(own, given), entries

    async def ensure_sessions(self, contact: Contact) -> list[Event]:
        """Start sessions with `contact`'s devices now if there are none (e.g. to show a
        safety number before the first message); the fetched prekeys are not wasted."""
        uid = contact.user_id
        async with self._lock(uid):
            if self.store.sessions(uid):
                return []
            sessions, events = await self._start_sessions(contact)
            now = self._clock()
            with self.store.transaction():
                for did, session in sessions.items():
                    self.store.save_session(uid, did, session, now)
        return events

    async def _start_sessions(
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
                session = Session.initiate(self._identity, device.bundle)
            except CryptoError as exc:
                log.warning("ignored a bad key bundle of %s/%s: %s", uid, device.device_id, exc)
                continue
            if mine:
                self.own_devices |= {device.device_id}
            elif self.store.record_identity(uid, device.device_id, device.bundle.identity_key):
                events.append(self._identity_changed(uid, device.device_id))
            sessions[device.device_id] = session
        if not sessions:
            raise ContactNotFound(f"{contact.display_name} has no device with usable keys")
        return sessions, events

    # --- receiving ---------------------------------------------------------------------

    def receive(self, message: IncomingMessage) -> Incoming:
        """Decrypt and store one envelope, or drop it with a warning. Never raises for
        anything the server (or an attacker) sent."""
        label = f"{message.client_id} from {message.sender}/{message.sender_device}"
        if message.group is not None:
            label += f" in group {message.group}"
        if (message.sender, message.sender_device) == (
            self.account.user_id,
            self.account.device_id,
        ):
            log.warning("dropped %s: this device's own message came back", label)
            return Incoming(stored=False)
        try:
            body = unb64(message.body)
        except ValueError:
            log.warning("dropped %s: body is not base64", label)
            return Incoming(stored=False)
        try:
            with self.store.transaction():
                if message.group is not None:
                    outcome = self.groups.receive(message, body, label)
                    return Incoming(
                        stored=outcome.stored, events=outcome.events, refresh_groups=outcome.refresh
                    )
                return self._open_and_store(message, body, label)
        except (CryptoError, _Rejected) as exc:
            log.warning("dropped %s: %s (%s)", label, type(exc).__name__, exc)
            return Incoming(stored=False)

    def _open_and_store(self, message: IncomingMessage, body: bytes, label: str) -> Incoming:
        sender, device = message.sender, message.sender_device
        now = self._clock()
        session, plaintext, consumed = self._open(sender, device, body, now)
        events: list[Event] = []
        mine = sender == self.account.user_id
        if mine:
            self.own_devices |= {device}  # it proved itself: it holds a session with us
        elif self.store.record_identity(sender, device, session.remote_identity_key):
            events.append(self._identity_changed(sender, device))
        self.store.save_session(sender, device, session, now)
        self.store.mark_seen(sender, message.client_id, now)
        try:
            content = payload.decode_any(plaintext)
        except payload.UnsupportedContent as exc:
            # authentic but not understood: the session still advances, nothing is shown
            log.warning("dropped %s: %s", label, exc)
            return Incoming(stored=True, events=events, consumed_prekey=consumed)
        if isinstance(content, payload.SenderKeyPayload):
            outcome = self.groups.accept_sender_key(sender, device, content)
            return Incoming(
                stored=True,
                events=events + outcome.events,
                consumed_prekey=consumed,
                refresh_groups=outcome.refresh,
            )
        if isinstance(content, payload.SentCopy) != mine:
            # copies come only from our own devices, and our devices send us only copies
            log.warning("dropped %s: %s", label, "not a copy" if mine else "a copy from another")
            return Incoming(stored=True, events=events, consumed_prekey=consumed)
        if isinstance(content, payload.SentCopy):
            return Incoming(
                stored=True,
                events=events + self._store_copy(content, message.ts),
                consumed_prekey=consumed,
            )
        contact = self.store.contact(sender) or self.store.add_contact(sender, None, None)
        stored = self.store.add_message(
            peer=sender,
            direction=Direction.IN,
            sender=sender,
            client_id=message.client_id,
            text=payload.describe(content),
            ts=message.ts,
            state=MessageState.RECEIVED,
            content=content,
        )
        if stored is not None:
            events.append(MessageReceived(stored, contact))
        return Incoming(stored=True, events=events, consumed_prekey=consumed)

    def _store_copy(self, copy: payload.SentCopy, ts: int) -> list[Event]:
        """What another of our devices sent to `copy.to`, as sent from here."""
        if copy.to == self.account.user_id:
            log.warning("dropped a copy of a message to ourselves")
            return []
        if self.store.contact(copy.to) is None:
            self.store.add_contact(copy.to, None, None)
        stored = self.store.add_message(
            peer=copy.to,
            direction=Direction.OUT,
            sender=self.account.user_id,
            client_id=copy.client_id,
            text=payload.describe(copy.content),
            ts=ts,
            state=MessageState.SENT,
            content=copy.content,
        )
        return [] if stored is None else [MessageSent(stored)]

    def _open(
        self, sender: str, device: str, body: bytes, now: float
    ) -> tuple[Session, bytes, bool]:
        """Decrypt with the right session: the current one, an archived one (both sides
        started a session at once), or a new one from a prekey message. Returns the
        session (to save), the plaintext, and whether a one-time prekey was used."""
        current = self.store.session(sender, device)
        if is_prekey_message(body) and not (current is not None and current.started_by(body)):
            for seq, old in self.store.old_sessions(sender, device):
                if old.started_by(body):
                    plaintext = old.decrypt(body)
                    self.store.promote_session(sender, device, seq, old, now)
                    return old, plaintext, False
            session, plaintext = Session.accept(self._identity, self.store, body)
            self.store.archive_session(sender, device)
            return session, plaintext, True
        if current is None:
            if body[:1] != bytes([WIRE_VERSION]):
                raise UnsupportedVersion(f"message version {body[:1].hex() or 'missing'}")
            raise _Rejected("unknown sender: no session with this device")
        try:
            return current, current.decrypt(body), False
        except ReplayError:
            raise
        except DecryptionError:
            for seq, old in self.store.old_sessions(sender, device):
                try:
                    plaintext = old.decrypt(body)
                except DecryptionError:
                    continue
                self.store.promote_session(sender, device, seq, old, now)
                return old, plaintext, False
            raise

    def receipt(self, receipt: IncomingReceipt) -> list[Event]:
        """Move our messages to `receipt.sender` to delivered/read (never backwards);
        for group messages, per member, and as a whole once every member is there."""
        me = self.account.user_id
        in_groups: list[Message] = []
        direct: list[str] = []
        for client_id in receipt.client_ids:
            mine = self.store.message(me, client_id)
            if mine is not None and mine.group_id is not None:
                in_groups.append(mine)
            else:
                direct.append(client_id)
        events: list[Event] = []
        if in_groups:
            with self.store.transaction():
                events += self.groups.receipt(receipt, in_groups)
        if not direct:
            return events
        contact = self.store.contact(receipt.sender)
        if contact is None:
            log.warning("ignored a receipt from unknown user %s", receipt.sender)
            return events
        state = MessageState.READ if receipt.status == "read" else MessageState.DELIVERED
        moved = self.store.advance(me, receipt.sender, direct, state)
        if moved:
            events.append(ReceiptUpdate(contact, state, tuple(moved)))
        return events

    def mark_read(self, contact: Contact) -> list[Message]:
        """Every unread incoming message of the conversation becomes read."""
        unread = self.store.unread(contact.user_id)
        return self.store.advance(
            contact.user_id, contact.user_id, [m.client_id for m in unread], MessageState.READ
        )

    def mark_group_read(self, group: Group) -> dict[str, list[Message]]:
        """Every unread message of the group becomes read; returned per sender (each
        of them is told, so that they see when every member has read it)."""
        with self.store.transaction():
            return self.groups.unread_by_sender(group)

    # --- identity ------------------------------------------------------------------------

    def safety_numbers(self, contact: Contact) -> dict[str, str]:
        """Device id -> the 60-digit safety number with that device's identity key."""
        local_id = bytes.fromhex(self.account.user_id)
        return {
            device: safety_number(
                local_id,
                self._identity.public_key,
                bytes.fromhex(contact.user_id),
                key,
            )
            for device, key in self.store.device_identities(contact.user_id).items()
        }

    def _identity_changed(self, uid: str, device_id: str) -> IdentityChanged:
        contact = self.store.contact(uid) or Contact(uid, None, None, identity_changed=True)
        log.warning("identity key of %s changed (device %s)", contact.display_name, device_id)
        return IdentityChanged(contact, device_id)

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())
