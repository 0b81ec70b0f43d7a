"""Group messaging on one device: sender keys in and out, messages held for a
key, and the ticks of what we sent (Signal's and WhatsApp's group design).

Sending: this device has one sender key per group (`parley.crypto.sender_keys`),
made for the group's current `version`. When the version moves (anyone added,
removed or gone) a fresh key replaces it, so a removed member never gets the
key of what follows and an added one never gets the key of what came before.
The key goes to each member over the pairwise sessions as a `sender_key`
payload (`parley.payload.SenderKeyPayload`); the engine does that part, as it
owns the sessions.

Receiving: a member device's key is kept per (group, sender, sender device). A
group message whose key has not arrived yet is held (ciphertext only) and
opened when the key comes; held messages are dropped with a warning after
HELD_MAX_AGE_S, or beyond HELD_PER_SENDER per sender device. Nothing the server
or a member sends makes this raise: bad input is logged and dropped.

Everything here is synchronous and runs inside the caller's store transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from parley import payload
from parley.crypto import CryptoError
from parley.crypto.sender_keys import (
    NoSenderKey,
    SenderKey,
    SenderKeyDistribution,
    SenderKeyRecord,
)
from parley.errors import ParleyClientError
from parley.group_receipts import GroupReceipts, MemberReceipt
from parley.models import (
    Account,
    Contact,
    Direction,
    Event,
    Group,
    Message,
    MessageReceived,
    MessageSent,
    MessageState,
    ReceiptUpdate,
    group_conversation,
)
from parley.protocol import IncomingMessage, IncomingReceipt
from parley.storage import OwnSenderKey, Store

__all__ = [
    "HELD_MAX_AGE_S",
    "HELD_PER_SENDER",
    "GroupMessaging",
    "GroupOutcome",
    "MemberReceipt",
    "NotAGroupMember",
]

log = logging.getLogger("parley.groups")

# A held message whose key has not come in a week is not going to get one: the
# sender sends its key before its first message with it.
HELD_MAX_AGE_S = 7 * 24 * 3600.0
HELD_PER_SENDER = 200

_TICK_STATES = {"delivered": MessageState.DELIVERED, "read": MessageState.READ}
_SETTLED = frozenset({MessageState.READ, MessageState.FAILED})
# How far back a member leaving updates the ticks of our messages.
RECENT_TICKS = 200


class NotAGroupMember(ParleyClientError):
    """This account is not (or no longer) a member of the group."""


@dataclass
class GroupOutcome:
    """What became of an incoming group message or sender key."""

    stored: bool  # True: stored (ack and remember it); False: held or dropped (ack only)
    events: list[Event] = field(default_factory=list)
    refresh: set[str] = field(default_factory=set)  # group ids to read from the service


class GroupMessaging:
    """The group half of one device's messaging, over its store."""

    def __init__(self, store: Store, account: Account, clock: Callable[[], float]) -> None:
        self.store = store
        self.account = account
        self._clock = clock

    # --- sending -------------------------------------------------------------------------

    def sender_key(self, group: Group) -> OwnSenderKey:
        """Our sender key for the group's current version: the stored one, or a fresh
        one (not yet saved) if there is none or the membership moved since."""
        own = self.store.own_sender_key(group.group_id)
        if own is None or own.version != group.version:
            if own is not None:
                log.info(
                    "group %s moved from version %d to %d: new sender key",
                    group.group_id,
                    own.version,
                    group.version,
                )
            own = OwnSenderKey(SenderKey.generate(), group.version, frozenset())
        return own

    def needs_key(self, group: Group, own: OwnSenderKey, *, with_self: bool = False) -> list[str]:
        """Members (other than us) who have not been sent this sender key; and us
        (`with_self`: this account's other devices) if we have not been sent it."""
        me = self.account.user_id
        return [m for m in group.members if (m != me or with_self) and m not in own.distributed]

    @staticmethod
    def distribution(group: Group, own: OwnSenderKey) -> bytes:
        """The pairwise plaintext that gives a member our key from its current iteration."""
        return payload.encode_sender_key(
            payload.SenderKeyPayload(group.group_id, own.version, own.key.distribution().to_bytes())
        )

    def recipients(self, group: Group) -> dict[str, set[str]]:
        """Each other member's devices as we know them: whose acks make `delivered`."""
        me = self.account.user_id
        return {m: set(self.store.device_identities(m)) for m in group.members if m != me}

    def start_ticks(self, message: Message, group: Group) -> None:
        self.store.save_group_receipts(
            message.id, GroupReceipts(self.account.user_id, self.recipients(group))
        )

    # --- receiving -----------------------------------------------------------------------

    def receive(self, message: IncomingMessage, body: bytes, label: str) -> GroupOutcome:
        """Open a group message with its sender device's key, or hold it for the key.
        Raises CryptoError for one that is forged, tampered or replayed."""
        assert message.group is not None
        group_id, sender, device = message.group, message.sender, message.sender_device
        now = self._clock()
        record = self.store.sender_key_record(group_id, sender, device)
        try:
            if record is None:
                raise NoSenderKey("no sender key from this device for this group")
            plaintext = record.decrypt(body)
        except NoSenderKey:
            return self._hold(message, body, label, now)
        self.store.save_sender_key_record(group_id, sender, device, record, now)
        outcome = GroupOutcome(stored=True)
        outcome.events += self._store_message(
            group_id, sender, message.client_id, message.ts, plaintext, label, now
        )
        if self._needs_refresh(group_id):
            outcome.refresh.add(group_id)
        return outcome

    def accept_sender_key(
        self, sender: str, device: str, key: payload.SenderKeyPayload
    ) -> GroupOutcome:
        """A member device's sender key, from the pairwise session with it: keep it and
        open whatever waited for it. A malformed key is dropped with a warning."""
        now = self._clock()
        outcome = GroupOutcome(stored=True)
        try:
            distribution = SenderKeyDistribution.from_bytes(key.distribution)
        except CryptoError as exc:
            log.warning("dropped a sender key from %s/%s: %s", sender, device, exc)
            return outcome
        record = self.store.sender_key_record(key.group_id, sender, device) or SenderKeyRecord()
        record.add(distribution)
        self.store.save_sender_key_record(key.group_id, sender, device, record, now)
        group = self.store.group(key.group_id)
        if group is None or not group.active or key.version > group.version:
            # new to us, or it moved on: what we know of it is out of date
            self.store.note_group(key.group_id, now)
            outcome.refresh.add(key.group_id)
        outcome.events += self._release(key.group_id, sender, device, record, now)
        return outcome

    def prune(self) -> None:
        """Give up on held messages whose key never came."""
        now = self._clock()
        for held in self.store.prune_held(now - HELD_MAX_AGE_S, HELD_PER_SENDER):
            log.warning(
                "dropped group message %s from %s/%s in %s: its sender key never arrived",
                held.client_id,
                held.sender,
                held.device_id,
                held.group_id,
            )

    def _hold(self, message: IncomingMessage, body: bytes, label: str, now: float) -> GroupOutcome:
        assert message.group is not None
        if self.store.message(message.sender, message.client_id) is not None:
            return GroupOutcome(stored=False)  # a copy of one we already opened
        held = self.store.hold_group_message(
            message.group,
            message.sender,
            message.sender_device,
            message.client_id,
            body,
            message.ts,
            now,
        )
        if held:
            log.info("holding %s until its sender key arrives", label)
            self.prune()
        outcome = GroupOutcome(stored=False)
        if self._needs_refresh(message.group):
            self.store.note_group(message.group, now)
            outcome.refresh.add(message.group)
        return outcome

    def _release(
        self, group_id: str, sender: str, device: str, record: SenderKeyRecord, now: float
    ) -> list[Event]:
        events: list[Event] = []
        done: list[int] = []
        for held in self.store.held_group_messages(group_id, sender, device):
            label = f"{held.client_id} from {sender}/{device} (held)"
            try:
                plaintext = record.decrypt(held.body)
            except NoSenderKey:
                continue  # a key of theirs still to come
            except CryptoError as exc:
                log.warning("dropped %s: %s (%s)", label, type(exc).__name__, exc)
                done.append(held.seq)
                continue
            done.append(held.seq)
            events += self._store_message(
                group_id, sender, held.client_id, held.ts, plaintext, label, now
            )
        if done:
            self.store.release_held(done)
            self.store.save_sender_key_record(group_id, sender, device, record, now)
        return events

    def _store_message(
        self,
        group_id: str,
        sender: str,
        client_id: str,
        ts: int,
        plaintext: bytes,
        label: str,
        now: float,
    ) -> list[Event]:
        self.store.mark_seen(sender, client_id, now)
        try:
            content = payload.decode(plaintext)  # a sender key never rides in a group message
        except payload.UnsupportedContent as exc:
            log.warning("dropped %s: %s", label, exc)
            return []
        group = self.store.group(group_id)
        if group is None:
            self.store.note_group(group_id, now)
        if sender == self.account.user_id:  # from another of our devices
            return self._store_own(group_id, client_id, ts, content, group)
        contact = self.store.contact(sender) or self.store.add_contact(sender, None, None)
        stored = self.store.add_message(
            peer=group_conversation(group_id),
            direction=Direction.IN,
            sender=sender,
            client_id=client_id,
            text=payload.describe(content),
            ts=ts,
            state=MessageState.RECEIVED,
            content=content,
        )
        if stored is None:
            return []
        return [MessageReceived(stored, contact, self.store.group(group_id))]

    def _store_own(
        self, group_id: str, client_id: str, ts: int, content: payload.Content, group: Group | None
    ) -> list[Event]:
        """What another of our devices said in the group, as said from here (its ticks
        follow the members' receipts, which reach every device of ours)."""
        stored = self.store.add_message(
            peer=group_conversation(group_id),
            direction=Direction.OUT,
            sender=self.account.user_id,
            client_id=client_id,
            text=payload.describe(content),
            ts=ts,
            state=MessageState.SENT,
            content=content,
        )
        if stored is None:
            return []
        if group is not None and group.active:
            self.start_ticks(stored, group)
        return [MessageSent(stored)]

    def _needs_refresh(self, group_id: str) -> bool:
        group = self.store.group(group_id)
        return group is None or group.version == 0 or not group.active

    # --- ticks ---------------------------------------------------------------------------

    def receipt(self, receipt: IncomingReceipt, messages: Iterable[Message]) -> list[Event]:
        """A member's receipt for some of our group messages: per-member detail moves,
        and a message's state follows the whole group (every member device / member)."""
        moved: dict[tuple[str, MessageState], list[Message]] = {}
        for message in messages:
            ticks = self.store.group_receipts(message.id)
            if ticks is None:
                continue
            if receipt.status == "delivered" and receipt.sender_device is None:
                continue  # a delivery is counted per device
            device = receipt.sender_device or ""
            if not ticks.apply(receipt.sender, device, receipt.status, receipt.ts):
                continue
            self.store.save_group_receipts(message.id, ticks)
            state = _TICK_STATES.get(ticks.status)
            if state is None:
                continue
            for done in self.store.advance(
                self.account.user_id, message.peer, [message.client_id], state
            ):
                assert message.group_id is not None
                moved.setdefault((message.group_id, state), []).append(done)
        contact = self.store.contact(receipt.sender) or Contact(receipt.sender, None, None)
        return [
            ReceiptUpdate(contact, state, tuple(done), self.store.group(group_id))
            for (group_id, state), done in moved.items()
        ]

    def members_gone(self, group: Group, gone: Iterable[str]) -> list[ReceiptUpdate]:
        """Members left the group: their silence no longer holds back the ticks of
        our recent messages to it (WhatsApp counts the members still there)."""
        gone = set(gone)
        if not gone:
            return []
        moved: dict[MessageState, list[Message]] = {}
        for message in self.store.history(group.conversation, RECENT_TICKS):
            if not message.outgoing or message.state in _SETTLED:
                continue
            ticks = self.store.group_receipts(message.id)
            if ticks is None or not gone & {m.user_id for m in ticks.members()}:
                continue
            for user_id in gone:
                ticks.forget(user_id)
            self.store.save_group_receipts(message.id, ticks)
            state = _TICK_STATES.get(ticks.status)
            if state is not None:
                moved.setdefault(state, []).extend(
                    self.store.advance(
                        self.account.user_id, message.peer, [message.client_id], state
                    )
                )
        # the update names a member who left: it is their going that completed it
        who = self.store.contact(min(gone)) or Contact(min(gone), None, None)
        return [
            ReceiptUpdate(who, state, tuple(done), group) for state, done in moved.items() if done
        ]

    def ticks(self, message: Message) -> list[MemberReceipt]:
        """Per-member detail of one of our group messages."""
        if message.group_id is None or not message.outgoing:
            raise ParleyClientError("ticks per member exist only for group messages you sent")
        ticks = self.store.group_receipts(message.id)
        return ticks.members() if ticks is not None else []

    def unread_by_sender(self, group: Group) -> dict[str, list[Message]]:
        """The group's unread messages, per sender, now marked read."""
        by_sender: dict[str, list[str]] = {}
        for message in self.store.unread(group.conversation):
            by_sender.setdefault(message.sender, []).append(message.client_id)
        return {
            sender: self.store.advance(sender, group.conversation, ids, MessageState.READ)
            for sender, ids in by_sender.items()
        }

    @staticmethod
    def with_distributed(own: OwnSenderKey, members: Iterable[str]) -> OwnSenderKey:
        return replace(own, distributed=own.distributed | frozenset(members))
