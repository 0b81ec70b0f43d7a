"""What the protocol hands in, to the slice that handles it: one handler per
protocol event type (`Inbound.handlers`), so a new kind of event is one line
there and a handler in its slice.

Incoming envelopes and receipts go to the messaging slices (`parley.engine`);
refused sends are repaired (new devices, a group that moved on) or marked
failed; groups new to this profile or changed are read in the background
(`parley.groups.membership`). Everything shown goes out as `parley.models`
events.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from parley import relationships
from parley.connection import Connection
from parley.content.calls import CallSignal
from parley.conversations.payload import HistoryPayload
from parley.engine import Engine
from parley.errors import ParleyClientError, UnlistedDevice
from parley.groups.membership import Membership
from parley.groups.sending import GroupResend
from parley.models import Contact, Event, Synced, Typing
from parley.protocol import (
    DevicesChangedNotice,
    DevicesMismatched,
    GroupStale,
    IncomingMessage,
    IncomingReceipt,
    OutboxEntry,
    PrekeysLow,
    Protocol,
    ProtocolEvent,
    SendAccepted,
    SendRejected,
    ServerError,
    SyncComplete,
    TypingChanged,
)
from parley.store import Store

__all__ = ["REGROUP_TRIES", "Inbound"]

log = logging.getLogger("parley.client")

# Tries at reading a group again when the server said a group send was stale.
REGROUP_TRIES = 3
# Refusals of a group send that mean this account may no longer be in the group.
_NOT_IN_GROUP = frozenset({"forbidden", "not_found"})


class Inbound:
    """The protocol events of one open client, each to its handler."""

    def __init__(
        self,
        store: Store,
        engine: Engine,
        groups: Membership,
        live: Connection,
        emit: Callable[[Event], None],
        relist: Callable[[], Awaitable[object]],
        devices_changed: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.groups = groups
        self.live = live
        self._emit = emit
        self._relist = relist
        self._devices_changed = devices_changed
        # fetches and imports the history our primary handed this new companion (set
        # by the facade, which holds the HTTP session; parley.devices.history)
        self.on_history: Callable[[HistoryPayload], None] | None = None
        # call signals go to the calls slice (parley.calling), which also says which
        # outbox entries are its signals (set by the facade)
        self.on_call: Callable[[str, str, CallSignal, int], None] | None = None
        self.signal_done: Callable[[OutboxEntry, str | None], bool] | None = None
        self.handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            IncomingMessage: self._on_message,
            IncomingReceipt: self._on_receipt,
            SendAccepted: self._on_sent,
            SendRejected: self._on_rejected,
            DevicesMismatched: self._on_mismatched,
            GroupStale: self._on_stale,
            SyncComplete: self._on_synced,
            TypingChanged: self._on_typing,
            ServerError: self._on_server_error,
            DevicesChangedNotice: self._on_devices_changed,
            PrekeysLow: self._on_prekeys_low,
        }

    @property
    def protocol(self) -> Protocol:
        return self.live.protocol

    async def handle(self, event: ProtocolEvent) -> None:
        await self.handlers[type(event)](event)

    def _emit_all(self, events: Sequence[Event | None]) -> None:
        for event in events:
            if event is not None:
                self._emit(event)

    async def _on_message(self, event: IncomingMessage) -> None:
        if event.group is None:
            # a device not on the sender's verified list: their list may be newer
            try:
                self._emit_all(
                    await self.engine.sealer.learn_device(event.sender, event.sender_device)
                )
            except ParleyClientError as exc:
                log.warning("could not check the devices of %s: %s", event.sender, exc)
        result = self.engine.receive(event)
        if result.stored:
            self.protocol.message_stored(event)
        else:
            self.protocol.message_dropped(event)
        if result.consumed_prekey:
            self.live.maintenance_due.set()
        self._emit_all(result.events)
        if result.refresh_groups:
            self.groups.refresh_soon(result.refresh_groups)
        if result.history is not None and self.on_history is not None:
            self.on_history(result.history)
        if result.call is not None and self.on_call is not None:
            self.on_call(event.sender, event.sender_device, result.call, event.ts)

    async def _on_prekeys_low(self, event: PrekeysLow) -> None:
        log.info("the service has %d one-time prekeys of this device left", event.left)
        self.live.top_up_now()

    async def _on_receipt(self, event: IncomingReceipt) -> None:
        events = self.engine.receipt(event)
        self.protocol.receipt_stored(event)
        self._emit_all(events)

    async def _on_sent(self, event: SendAccepted) -> None:
        if self.signal_done is not None:
            self.signal_done(event.entry, None)
        self._emit_all(self.engine.sent(event.entry, event.ts))
        self.live.outbox_changed.set()

    async def _on_rejected(self, event: SendRejected) -> None:
        entry = event.entry
        if event.retry_after is not None:
            log.info("send %s waits %.1fs: %s", entry.client_id, event.retry_after, event.code)
            return
        if self.signal_done is not None and self.signal_done(entry, event.code):
            self.store.outbox.remove(entry.client_id)  # a call signal: nothing to mark failed
            self.live.outbox_changed.set()
            return
        self._emit_all([self.engine.failed(entry, event.code, event.message)])
        if entry.group_id is not None and event.code in _NOT_IN_GROUP:
            # perhaps removed: the service says (a 404 marks the group left)
            self.groups.refresh_soon([entry.group_id])
        self.live.outbox_changed.set()

    async def _on_mismatched(self, event: DevicesMismatched) -> None:
        entry = event.entry
        try:
            payloads, events = await self.engine.repair(entry, event.missing, event.extra)
        except UnlistedDevice as exc:
            log.warning("refused to send %s: %s", entry.client_id, exc)
            self._give_up(entry.client_id, "unlisted_device", str(exc))
            self.live.flush()
            return
        except ParleyClientError as exc:
            log.warning("could not fetch keys to repair %s: %s", entry.client_id, exc)
            payloads, events = None, []
        self._emit_all(events)
        if payloads is None:
            self._give_up(entry.client_id, "mismatched_devices", "no usable devices")
        else:
            self.protocol.replace_payloads(entry.client_id, payloads)
        self.live.flush()

    async def _on_stale(self, event: GroupStale) -> None:
        """The group moved on under a send: read it again, rotate and hand out our
        sender key, re-encrypt, and send again with the same client id."""
        entry = event.entry
        assert entry.group_id is not None  # the protocol says so of group sends only
        group = await self.groups.catch_up(entry.group_id, REGROUP_TRIES)
        resend: GroupResend | None = None
        events: list[Event] = []
        if group is not None and group.active:
            try:
                resend, events = await self.engine.regroup(entry, group)
            except ParleyClientError as exc:
                log.warning("could not hand out a new sender key for %s: %s", group.group_id, exc)
        self._emit_all(events)
        if resend is None:
            reason = "the group changed and could not be caught up with"
            self._give_up(entry.client_id, "stale_group", reason)
        else:
            for distribution in resend.distributions:
                self.protocol.send(distribution)
            after = [d.client_id for d in resend.distributions]
            self.protocol.replace_group_body(entry.client_id, resend.body, resend.version, after)
        self.live.flush()

    def _give_up(self, client_id: str, code: str, reason: str) -> None:
        entry = self.protocol.cancel(client_id)
        if entry is not None and self.signal_done is not None and self.signal_done(entry, code):
            self.store.outbox.remove(client_id)  # a call signal: nothing to mark failed
        elif entry is not None:
            self._emit_all([self.engine.failed(entry, code, reason)])
        self.live.outbox_changed.set()

    async def _on_synced(self, event: SyncComplete) -> None:
        self.live.synced.set()
        self._emit(Synced())
        self.live.relist_soon(self._relist)
        self.groups.refresh_soon(self.store.groups.stale())

    async def _on_typing(self, event: TypingChanged) -> None:
        if event.group is None:
            # the typing of someone this user does not know (a message request) is
            # not shown: relationships.knows
            contact = self.store.contacts.get(event.sender)
            if contact is not None and relationships.knows(self.store, event.sender):
                self._emit(Typing(contact, event.typing))
            return
        group = self.store.groups.get(event.group)
        if group is None or not group.active or event.sender not in group.members:
            return
        if event.sender == self.engine.account.user_id:
            return
        contact = self.store.contacts.get(event.sender) or Contact(event.sender, None, None)
        self._emit(Typing(contact, event.typing, group))

    async def _on_devices_changed(self, event: DevicesChangedNotice) -> None:
        """A device of this account was linked or unlinked, or the number moved to
        another phone: relist (DeviceLinked / DeviceUnlinked) or stop (AccountMoved)."""
        if self._devices_changed is not None:
            await self._devices_changed(event.reason, event.device_id)

    async def _on_server_error(self, event: ServerError) -> None:
        log.warning("server error: %s %s", event.code, event.message)
