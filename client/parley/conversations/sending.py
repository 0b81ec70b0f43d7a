"""Sending to one person: encrypt for every device of theirs, copy to this
account's other devices, repair a send the service refused for mismatched
devices, and settle the outbox when the service answers.

What is sent is stored first (message and outbox entry in one transaction), so
it survives a crash or a lost connection; the caller queues the entries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from parley.content import Content, Text
from parley.conversations import actions, payload
from parley.conversations.sealing import Sealed, Sealer, check_entry_size, new_client_id
from parley.errors import ContactNotFound, MessageTooLarge, UnlistedDevice
from parley.models import Contact, Direction, Event, Message, MessageSent, MessageState, SendFailed
from parley.protocol import OutboxEntry

__all__ = ["MAX_DEVICE_REPAIRS", "Outgoing", "Sending", "ttl_of"]

log = logging.getLogger("parley.conversations")

# A send refused for mismatched devices (or a stale group) this often in a row is given up.
MAX_DEVICE_REPAIRS = 3


def ttl_of(content: Content | None) -> int | None:
    """How long the service may keep a message: a disappearing one's timer."""
    ctx = getattr(content, "ctx", None)
    return ctx.timer if ctx is not None and ctx.timer else None


@dataclass
class Outgoing:
    """A message just stored, the outbox entries to queue (in order) and what
    starting sessions on the way showed."""

    message: Message
    entries: list[OutboxEntry]
    events: list[Event] = field(default_factory=list)


class Sending:
    """The outgoing half of one device's conversations."""

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self.store = sealer.store
        self.account = sealer.account
        self._repairs: dict[str, int] = {}
        # who is a group's admin, for our own deletes in groups (the engine sets it)
        self.admins: actions.AdminCheck = actions.nobody

    async def send(self, contact: Contact, content: str | Content) -> Outgoing:
        """Store and encrypt a message for `contact`, and its copy for this account's
        other devices: the copy leaves with it, so it is there before the recipient's
        receipts (which reach every device of ours) can be."""
        message, entry, events = await self.prepare(contact, content)
        copy, more = await self.own_copy(message)
        entries = [entry] if copy is None else [entry, copy]
        return Outgoing(message, entries, events + more)

    async def prepare(
        self, contact: Contact, content: str | Content
    ) -> tuple[Message, OutboxEntry, list[Event]]:
        """Encrypt a text (or any content kind) for every device of `contact`; store
        message and outbox entry."""
        if isinstance(content, str):
            content = Text(content)  # ValueError (ContentError) for an empty or huge text
        plaintext = payload.encode(content)
        uid = contact.user_id
        async with self.sealer.lock(uid):
            sealed = await self.sealer.seal(contact, plaintext)
            entry = OutboxEntry(
                client_id=new_client_id(), to=uid, payloads=sealed.payloads, ttl=ttl_of(content)
            )
            check_entry_size(entry)
            now = self.sealer.clock()
            with self.store.transaction():
                message = self.add_outgoing(uid, entry, content, now)
                assert message is not None  # a fresh random client id
                done = actions.on_stored(self.store, self.account.user_id, message, now=now)
                self.sealer.commit(sealed, entry, plaintext, now)
        return message, entry, sealed.events + done

    async def own_copy(self, message: Message) -> tuple[OutboxEntry | None, list[Event]]:
        """A copy of `message` (just prepared for a contact) for this account's other
        devices, stored in the outbox; None when there are none (or none usable)."""
        if not self.sealer.own_devices or message.content is None:
            return None, []
        me = self.account.user_id
        plaintext = payload.encode_sent_copy(
            payload.SentCopy(message.peer, message.client_id, message.content)
        )
        async with self.sealer.lock(me):
            try:
                sealed = await self.sealer.seal(self.sealer.me(), plaintext)
            except ContactNotFound as exc:
                # the list was out of date (a device signed out): none until relisted
                log.info("no copy for this account's other devices: %s", exc)
                self.sealer.own_devices = frozenset()
                return None, []
            entry = OutboxEntry(
                client_id=new_client_id(),
                to=me,
                payloads=sealed.payloads,
                ttl=ttl_of(message.content),
            )
            try:
                check_entry_size(entry)
            except MessageTooLarge:
                log.warning("message %s too large to copy to our other devices", message.client_id)
                return None, sealed.events
            self.sealer.commit(sealed, entry, plaintext, self.sealer.clock())
        return entry, sealed.events

    def add_outgoing(
        self, peer: str, entry: OutboxEntry, content: Content, now: float
    ) -> Message | None:
        """Our message that `entry` carries, pending, in the conversation `peer`."""
        return self.store.messages.add(
            peer=peer,
            direction=Direction.OUT,
            sender=self.account.user_id,
            client_id=entry.client_id,
            text=payload.describe(content),
            ts=int(now * 1000),
            state=MessageState.PENDING,
            content=content,
        )

    # --- answers from the service -------------------------------------------------------

    def attempt(self, client_id: str) -> int:
        """Count one more repair of a refused send; how many so far."""
        attempts = self._repairs.get(client_id, 0) + 1
        self._repairs[client_id] = attempts
        return attempts

    async def repair(
        self, entry: OutboxEntry, missing: tuple[str, ...], extra: tuple[str, ...]
    ) -> tuple[dict[str, str] | None, list[Event]]:
        """Re-encrypt an entry for the recipient's current devices. None: give up."""
        uid = entry.to
        attempts = self.attempt(entry.client_id)
        plaintext = self.store.outbox.plaintext(entry.client_id)
        mine = uid == self.account.user_id
        contact = self.sealer.me() if mine else self.store.contacts.get(uid)
        if attempts > MAX_DEVICE_REPAIRS or plaintext is None or contact is None:
            log.warning("giving up on %s after %d device repairs", entry.client_id, attempts - 1)
            return None, []
        async with self.sealer.lock(uid):
            if mine:
                self.sealer.own_devices = (self.sealer.own_devices - set(extra)) | set(missing)
            for device in extra:
                self.store.contacts.forget_device(uid, device)
            # their devices changed: our group sender keys go to them again next time
            self.store.sender_keys.forget_distribution(uid)
            payloads = {d: p for d, p in (entry.payloads or {}).items() if d not in extra}
            events: list[Event] = []
            listed = self.sealer.verified_list(uid)
            if listed is not None and listed.device_ids & set(extra):
                # devices their verified list names are gone: verify the list that drops
                # them now, so that the older list served again later is a rollback
                try:
                    events = await self.sealer.refresh_list(contact)
                except ContactNotFound as exc:
                    log.info("could not refresh the device list of %s: %s", uid, exc)
            sealed = Sealed(uid, {}, {})
            if missing:
                try:
                    sealed = await self.sealer.seal(contact, plaintext, only=missing)
                except UnlistedDevice:
                    raise  # the service insists on a device the list does not vouch for
                except ContactNotFound as exc:
                    log.info("could not seal %s for new devices: %s", entry.client_id, exc)
                payloads.update(sealed.payloads)
            if not payloads:
                return None, events + sealed.events
            with self.store.transaction():
                self.sealer.save(sealed, self.sealer.clock())
                self.store.outbox.update(entry.client_id, payloads)
        return payloads, events + sealed.events

    def sent(self, entry: OutboxEntry, ts: int) -> list[Event]:
        """The server stored the message: single tick, out of the outbox. An action of
        ours (an edit, a delete) takes effect here now, at the service's time, as on
        every other device; a reaction or timer change keeps the service's time."""
        self._repairs.pop(entry.client_id, None)
        with self.store.transaction():
            self.store.outbox.remove(entry.client_id)
            message = self.store.messages.get(self.account.user_id, entry.client_id)
            if message is None:
                return []
            if ts:
                self.store.messages.set_state(message.id, message.state, ts)
            moved = self.store.messages.advance(
                self.account.user_id, message.peer, [entry.client_id], MessageState.SENT
            )
            stamped = replace(message, ts=ts or message.ts, state=MessageState.SENT)
            done = actions.on_sent(
                self.store,
                self.account.user_id,
                stamped,
                now=self.sealer.clock(),
                admins=self.admins,
            )
        if not moved or message.kind in actions.ACTIONS_NOT_SHOWN:
            return done  # a receipt got here first, or an action: nothing to tick
        return [MessageSent(moved[0]), *done]

    def failed(self, entry: OutboxEntry, code: str, reason: str) -> SendFailed | None:
        """The server refused the message for good: failed, out of the outbox."""
        self._repairs.pop(entry.client_id, None)
        with self.store.transaction():
            self.store.outbox.remove(entry.client_id)
            message = self.store.messages.get(self.account.user_id, entry.client_id)
            if message is None:
                # a sender key that did not go: it goes again with the next group message
                if entry.group_id is None:
                    self.store.sender_keys.forget_distribution(entry.to)
                log.warning(
                    "could not send %s to %s: %s (%s)", entry.client_id, entry.to, code, reason
                )
                return None
            self.store.messages.set_state(message.id, MessageState.FAILED)
        log.warning("message %s failed: %s (%s)", entry.client_id, code, reason)
        return SendFailed(replace(message, state=MessageState.FAILED), code, reason)
