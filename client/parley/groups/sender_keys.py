"""Sender keys on one device: ours for each group, and what members' devices
gave us; group messages opened with them or held until their key comes.

Sending: this device has one sender key per group (`parley.crypto.sender_keys`),
made for the group's current `version`. When the version moves (anyone added,
removed or gone) a fresh key replaces it, so a removed member never gets the
key of what follows and an added one never gets the key of what came before.
The key goes to each member over the pairwise sessions as a `sender_key`
payload (`parley.conversations.payload.SenderKeyPayload`; `sending.py`).

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
from dataclasses import replace
from functools import partial

from parley.conversations import Incoming, actions, payload
from parley.crypto import CryptoError
from parley.crypto.sender_keys import (
    NoSenderKey,
    SenderKey,
    SenderKeyDistribution,
    SenderKeyRecord,
)
from parley.devices.lists import verify_list
from parley.errors import DeviceListError
from parley.groups.admins import signed_admin
from parley.groups.receipts import GroupTicks
from parley.ids import group_address
from parley.models import (
    Account,
    Direction,
    Event,
    Group,
    MessageReceived,
    MessageSent,
    MessageState,
)
from parley.protocol import IncomingMessage
from parley.store import OwnSenderKey, Store

__all__ = ["HELD_MAX_AGE_S", "HELD_PER_SENDER", "SenderKeys"]

log = logging.getLogger("parley.groups")

# A held message whose key has not come in a week is not going to get one: the
# sender sends its key before its first message with it.
HELD_MAX_AGE_S = 7 * 24 * 3600.0
HELD_PER_SENDER = 200


class SenderKeys:
    """This device's sender keys and the ones members' devices gave it."""

    def __init__(
        self, store: Store, account: Account, ticks: GroupTicks, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.account = account
        self.ticks = ticks
        self._clock = clock

    # --- sending -------------------------------------------------------------------------

    def sender_key(self, group: Group) -> OwnSenderKey:
        """Our sender key for the group's current version: the stored one, or a fresh
        one (not yet saved) if there is none or the membership moved since."""
        own = self.store.sender_keys.own(group.group_id)
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
        return [
            m
            for m in group.members
            if (m != me or with_self) and m not in own.distributed and m not in group.unverified
        ]

    @staticmethod
    def distribution(group: Group, own: OwnSenderKey) -> bytes:
        """The pairwise plaintext that gives a member our key from its current iteration."""
        return payload.encode_sender_key(
            payload.SenderKeyPayload(group.group_id, own.version, own.key.distribution().to_bytes())
        )

    # --- receiving -----------------------------------------------------------------------

    def receive(self, message: IncomingMessage, body: bytes, label: str) -> Incoming:
        """Open a group message with its sender device's key, or hold it for the key.
        Raises CryptoError for one that is forged, tampered or replayed."""
        assert message.group is not None
        group_id, sender, device = message.group, message.sender, message.sender_device
        now = self._clock()
        record = self.store.sender_keys.record(group_id, sender, device)
        try:
            if record is None:
                raise NoSenderKey("no sender key from this device for this group")
            plaintext = record.decrypt(body)
        except NoSenderKey:
            return self._hold(message, body, label, now)
        self.store.sender_keys.save_record(group_id, sender, device, record, now)
        outcome = Incoming(stored=True)
        outcome.events += self._store_message(
            group_id, sender, message.client_id, message.ts, plaintext, label, now
        )
        if self._needs_refresh(group_id):
            outcome.refresh_groups.add(group_id)
        return outcome

    def accept_sender_key(
        self, sender: str, device: str, key: payload.SenderKeyPayload
    ) -> Incoming:
        """A member device's sender key, from the pairwise session with it: keep it and
        open whatever waited for it. A malformed key is dropped with a warning."""
        now = self._clock()
        outcome = Incoming(stored=True)
        if sender == self.account.user_id and not self._own_listed(device):
            log.warning("dropped a sender key from %s: not on this account's device list", device)
            return outcome
        try:
            distribution = SenderKeyDistribution.from_bytes(key.distribution)
        except CryptoError as exc:
            log.warning("dropped a sender key from %s/%s: %s", sender, device, exc)
            return outcome
        record = self.store.sender_keys.record(key.group_id, sender, device) or SenderKeyRecord()
        record.add(distribution)
        self.store.sender_keys.save_record(key.group_id, sender, device, record, now)
        group = self.store.groups.get(key.group_id)
        if group is None or not group.active or key.version > group.version:
            # new to us, or it moved on: what we know of it is out of date
            self.store.groups.note(key.group_id, now)
            outcome.refresh_groups.add(key.group_id)
        outcome.events += self._release(key.group_id, sender, device, record, now)
        return outcome

    def _own_listed(self, device: str) -> bool:
        """Whether `device` is on this account's signed device list as last verified."""
        stored = self.store.device_lists.get(self.account.user_id)
        if stored is None:
            return False
        try:
            listed = verify_list(
                stored.wire(), user_id=stored.user_id, account_identity=stored.account_identity
            )
        except DeviceListError:
            return False
        return device in listed.device_ids

    def prune(self) -> None:
        """Give up on held messages whose key never came."""
        now = self._clock()
        for held in self.store.sender_keys.prune_held(now - HELD_MAX_AGE_S, HELD_PER_SENDER):
            log.warning(
                "dropped group message %s from %s/%s in %s: its sender key never arrived",
                held.client_id,
                held.sender,
                held.device_id,
                held.group_id,
            )

    def _hold(self, message: IncomingMessage, body: bytes, label: str, now: float) -> Incoming:
        assert message.group is not None
        if self.store.messages.get(message.sender, message.client_id) is not None:
            return Incoming(stored=False)  # a copy of one we already opened
        held = self.store.sender_keys.hold(
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
        outcome = Incoming(stored=False)
        if self._needs_refresh(message.group):
            self.store.groups.note(message.group, now)
            outcome.refresh_groups.add(message.group)
        return outcome

    def _release(
        self, group_id: str, sender: str, device: str, record: SenderKeyRecord, now: float
    ) -> list[Event]:
        events: list[Event] = []
        done: list[int] = []
        for held in self.store.sender_keys.held(group_id, sender, device):
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
            self.store.sender_keys.release(done)
            self.store.sender_keys.save_record(group_id, sender, device, record, now)
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
        self.store.seen.add(sender, client_id, now)
        try:
            content = payload.decode(plaintext)  # a sender key never rides in a group message
        except payload.UnsupportedContent as exc:
            log.warning("dropped %s: %s", label, exc)
            return []
        group = self.store.groups.get(group_id)
        if group is None:
            self.store.groups.note(group_id, now)
        # from another of our devices: as said from here (its ticks follow the
        # members' receipts, which reach every device of ours)
        own = sender == self.account.user_id
        contact = None
        if not own:
            contact = self.store.contacts.get(sender) or self.store.contacts.add(sender, None, None)
        stored = self.store.messages.add(
            peer=group_address(group_id),
            direction=Direction.OUT if own else Direction.IN,
            sender=sender,
            client_id=client_id,
            text=payload.describe(content),
            ts=ts,
            state=MessageState.SENT if own else MessageState.RECEIVED,
            content=content,
        )
        if stored is None:
            return []
        done = actions.on_stored(
            self.store,
            self.account.user_id,
            stored,
            now=now,
            admins=partial(signed_admin, self.store),
        )
        if content.kind in actions.ACTIONS_NOT_SHOWN:
            return done
        if contact is None:
            if group is not None and group.active:
                self.ticks.start(stored, group)
            return [MessageSent(stored), *done]
        return [MessageReceived(stored, contact, self.store.groups.get(group_id)), *done]

    def _needs_refresh(self, group_id: str) -> bool:
        group = self.store.groups.get(group_id)
        return group is None or group.version == 0 or not group.active

    @staticmethod
    def with_distributed(own: OwnSenderKey, members: Iterable[str]) -> OwnSenderKey:
        return replace(own, distributed=own.distributed | frozenset(members))
