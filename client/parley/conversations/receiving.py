"""Receiving over the pairwise sessions: decrypt, store, and show what arrived
(a message, a copy of what another device of ours sent, or a member's group
sender key, handed to the groups slice); receipts and reading for one person.

Runs inside the caller's store transaction: the message, the session it
advanced, the one-time prekey it consumed and its (sender, client id) pair are
all stored, or nothing is. Forged input raises CryptoError or `Rejected`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from parley import relationships
from parley.content.calls import CallSignal
from parley.conversations import actions, payload
from parley.conversations.actions import ACTIONS_NOT_SHOWN
from parley.conversations.sealing import Sealer
from parley.crypto import (
    DecryptionError,
    ReplayError,
    Session,
    UnsupportedVersion,
    is_prekey_message,
)
from parley.crypto.wire import VERSION as WIRE_VERSION
from parley.models import (
    Contact,
    Direction,
    Event,
    Message,
    MessageReceived,
    MessageSent,
    MessageState,
    ReceiptUpdate,
)
from parley.protocol import IncomingMessage, IncomingReceipt

__all__ = ["Incoming", "Receiving", "Rejected", "SenderKeyHandler"]

log = logging.getLogger("parley.conversations")
devices_log = logging.getLogger("parley.devices")


class Rejected(Exception):
    """An envelope that is dropped (with a warning), e.g. from an unknown sender."""


@dataclass
class Incoming:
    """What became of an incoming envelope."""

    stored: bool  # True: ack it as stored; False: ack it as dropped (or held for a key)
    events: list[Event] = field(default_factory=list)
    consumed_prekey: bool = False
    refresh_groups: set[str] = field(default_factory=set)  # to read again from the service
    # the history our primary hands this new companion, to fetch and import after
    # this transaction (parley.devices.history)
    history: payload.HistoryPayload | None = None
    # a call signal, for the calls slice (parley.calls); nothing is stored for it
    call: CallSignal | None = None


# (sender, sender device, the key) -> its events and the groups to read again
SenderKeyHandler = Callable[[str, str, payload.SenderKeyPayload], tuple[list[Event], set[str]]]


class Receiving:
    """The incoming half of one device's conversations."""

    def __init__(self, sealer: Sealer, on_sender_key: SenderKeyHandler) -> None:
        self.sealer = sealer
        self.store = sealer.store
        self.account = sealer.account
        self._on_sender_key = on_sender_key

    def receive(self, message: IncomingMessage, body: bytes, label: str) -> Incoming:
        """Open a pairwise envelope and store what it carries."""
        sender, device = message.sender, message.sender_device
        now = self.sealer.clock()
        session, plaintext, consumed = self._open(sender, device, body, now)
        # only devices the sender's signed device list vouches for (ours: always listed)
        refused = self.sealer.sender_refused(sender, device, session.remote_identity_key)
        if refused is not None:
            devices_log.warning("dropped %s: %s", label, refused)
            raise Rejected(refused)  # the caller's transaction undoes the session step
        events: list[Event] = []
        mine = sender == self.account.user_id
        listed = self.sealer.verified_list(sender) is not None
        if mine:
            self.sealer.own_devices |= {device}  # it proved itself: it holds a session with us
        elif self.store.contacts.record_identity(
            sender, device, session.remote_identity_key, vouched=listed
        ):
            events.append(self.sealer.identity_changed(sender, device))
        self.store.sessions.save(sender, device, session, now)
        self.store.seen.add(sender, message.client_id, now)
        done = Incoming(stored=True, events=events, consumed_prekey=consumed)
        try:
            content = payload.decode_any(plaintext)
        except payload.UnsupportedContent as exc:
            # authentic but not understood: the session still advances, nothing is shown
            log.warning("dropped %s: %s", label, exc)
            return done
        if isinstance(content, payload.HistoryPayload):
            done.history = self._history(content, mine, label)
        elif isinstance(content, payload.SenderKeyPayload):
            shown, refresh = self._on_sender_key(sender, device, content)
            done.events += shown
            done.refresh_groups = refresh
        elif isinstance(content, CallSignal):
            # to our own devices a signal names the other party; to anyone else it may not
            if mine != (content.peer is not None) or content.peer == self.account.user_id:
                log.warning("dropped %s: a call signal with the wrong peer", label)
            else:
                done.call = content
        elif isinstance(content, payload.SentCopy) != mine:
            # copies come only from our own devices, and our devices send us only copies
            log.warning("dropped %s: %s", label, "not a copy" if mine else "a copy from another")
        elif isinstance(content, payload.SentCopy):
            done.events += self._store_copy(content, message.ts)
        else:
            done.events += self._store_message(sender, message, content)
        return done

    # --- history for a new companion ---------------------------------------------------

    def _history(
        self, history: payload.HistoryPayload, mine: bool, label: str
    ) -> payload.HistoryPayload | None:
        """Where the history is, if it came from our own account and is for this
        device (the service routes a message to oneself to every other device)."""
        if not mine:
            log.warning("dropped %s: history from another account", label)
            return None
        if history.device != self.account.device_id:
            log.info("skipped %s: history for another of our devices", label)
            return None
        return history

    def _store_message(
        self, sender: str, message: IncomingMessage, content: payload.Content
    ) -> list[Event]:
        contact = self.store.contacts.get(sender) or self.store.contacts.add(sender, None, None)
        stored = self.store.messages.add(
            peer=sender,
            direction=Direction.IN,
            sender=sender,
            client_id=message.client_id,
            text=payload.describe(content),
            ts=message.ts,
            state=MessageState.RECEIVED,
            content=content,
        )
        if stored is None:
            return []
        done = actions.on_stored(self.store, self.account.user_id, stored, now=self.sealer.clock())
        if stored.content is not None and stored.content.kind in ACTIONS_NOT_SHOWN:
            return done
        return [MessageReceived(stored, contact), *done]

    def _store_copy(self, copy: payload.SentCopy, ts: int) -> list[Event]:
        """What another of our devices sent to `copy.to`, as sent from here."""
        if copy.to == self.account.user_id:
            log.warning("dropped a copy of a message to ourselves")
            return []
        # another of our devices wrote to them: this user knows them
        relationships.accept(self.store, copy.to)
        stored = self.store.messages.add(
            peer=copy.to,
            direction=Direction.OUT,
            sender=self.account.user_id,
            client_id=copy.client_id,
            text=payload.describe(copy.content),
            ts=ts,
            state=MessageState.SENT,
            content=copy.content,
        )
        if stored is None:
            return []
        done = actions.on_stored(self.store, self.account.user_id, stored, now=self.sealer.clock())
        if stored.content is not None and stored.content.kind in ACTIONS_NOT_SHOWN:
            return done
        return [MessageSent(stored), *done]

    def _open(
        self, sender: str, device: str, body: bytes, now: float
    ) -> tuple[Session, bytes, bool]:
        """Decrypt with the right session: the current one, an archived one (both sides
        started a session at once), or a new one from a prekey message. Returns the
        session (to save), the plaintext, and whether a one-time prekey was used."""
        sessions = self.store.sessions
        current = sessions.get(sender, device)
        if is_prekey_message(body) and not (current is not None and current.started_by(body)):
            for seq, old in sessions.old(sender, device):
                if old.started_by(body):
                    plaintext = old.decrypt(body, now=now)
                    sessions.promote(sender, device, seq, old, now)
                    return old, plaintext, False
            session, plaintext = Session.accept(
                self.sealer.identity, self.store.prekeys, body, now=now
            )
            sessions.archive(sender, device)
            return session, plaintext, True
        if current is None:
            if body[:1] != bytes([WIRE_VERSION]):
                raise UnsupportedVersion(f"message version {body[:1].hex() or 'missing'}")
            raise Rejected("unknown sender: no session with this device")
        try:
            return current, current.decrypt(body, now=now), False
        except ReplayError:
            raise
        except DecryptionError:
            for seq, old in sessions.old(sender, device):
                try:
                    plaintext = old.decrypt(body, now=now)
                except DecryptionError:
                    continue
                sessions.promote(sender, device, seq, old, now)
                return old, plaintext, False
            raise

    # --- receipts and reading ------------------------------------------------------------

    def receipt(self, receipt: IncomingReceipt, client_ids: list[str]) -> list[Event]:
        """Move our messages to `receipt.sender` to delivered/read (never backwards)."""
        contact = self.store.contacts.get(receipt.sender)
        if contact is None:
            log.warning("ignored a receipt from unknown user %s", receipt.sender)
            return []
        state = MessageState.READ if receipt.status == "read" else MessageState.DELIVERED
        moved = self.store.messages.advance(self.account.user_id, receipt.sender, client_ids, state)
        return [ReceiptUpdate(contact, state, tuple(moved))] if moved else []

    def mark_read(self, contact: Contact) -> list[Message]:
        """Every unread incoming message of the conversation becomes read."""
        unread = self.store.messages.unread(contact.user_id)
        read = self.store.messages.advance(
            contact.user_id, contact.user_id, [m.client_id for m in unread], MessageState.READ
        )
        actions.start_read(self.store, read, now=self.sealer.clock())
        return read
