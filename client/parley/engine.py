"""One device's messaging: the conversations and groups slices over one store,
and where each incoming envelope or receipt goes.

`Engine` builds the slices (`parley.conversations`: sealing, sending,
receiving; `parley.groups`: sender keys, group sending, ticks) and routes what
the protocol hands in. No network: key bundles come from an injected async
fetcher, so two engines can talk to each other in a unit test.

Every incoming envelope is handled in one store transaction: either the
message, the session it advanced, the one-time prekey it consumed and its
(sender, client id) pair are all stored, or nothing is. Malformed or forged
input is logged and dropped, never raised to the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial

from parley.answers import unb64
from parley.content import (
    Attachment,
    ContactCard,
    Content,
    Context,
    Location,
    Payment,
    PaymentStatus,
    Text,
    with_context,
)
from parley.conversations import (
    BundleFetcher,
    Incoming,
    Outgoing,
    Receiving,
    Rejected,
    Sealer,
    Sending,
    payload,
    safety_numbers,
)
from parley.crypto import CryptoError
from parley.groups.admins import signed_admin
from parley.groups.receipts import GroupTicks
from parley.groups.sender_keys import SenderKeys
from parley.groups.sending import GroupSending
from parley.models import Account, Contact, Event, Group, Message
from parley.protocol import IncomingMessage, IncomingReceipt
from parley.store import Store

__all__ = ["Engine"]

log = logging.getLogger("parley.engine")


class Engine:
    """The messaging slices of one device, composed."""

    def __init__(
        self,
        store: Store,
        fetch_bundles: BundleFetcher,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sealer = Sealer(store, fetch_bundles, clock=clock)
        self.account: Account = self.sealer.account
        self.sending = Sending(self.sealer)
        self.sending.admins = partial(signed_admin, store)
        self.ticks = GroupTicks(store, self.account)
        self.sender_keys = SenderKeys(store, self.account, self.ticks, clock)
        self.sender_keys.prune()
        self.receiving = Receiving(self.sealer, self._sender_key)
        self.group_sending = GroupSending(self.sealer, self.sending, self.sender_keys, self.ticks)
        # the steps callers use, by their names
        self.prepare = self.sending.prepare
        self.own_copy = self.sending.own_copy
        self.send = self.sending.send
        self.repair = self.sending.repair
        self.sent = self.sending.sent
        self.failed = self.sending.failed
        self.prepare_group = self.group_sending.prepare
        self.regroup = self.group_sending.regroup
        self.needs_new_key = self.group_sending.needs_new_key
        self.mark_read = self.receiving.mark_read
        self.mark_group_read = self.ticks.mark_read
        self.ensure_sessions = self.sealer.ensure_sessions

    @property
    def own_devices(self) -> frozenset[str]:
        """This account's other devices that can receive."""
        return self.sealer.own_devices

    @own_devices.setter
    def own_devices(self, devices: frozenset[str]) -> None:
        self.sealer.own_devices = devices

    def set_own_devices(self, device_ids: Iterable[str]) -> None:
        self.sealer.set_own_devices(device_ids)

    async def send_to(self, target: Contact | Group, content: str | Content) -> Outgoing:
        """Store and encrypt a message for a contact (and its copy for our other
        devices) or for a group (after the sender keys it needs). A shown message
        carries the conversation's disappearing timer."""
        content = self._timed(target, Text(content) if isinstance(content, str) else content)
        if isinstance(target, Group):
            message, entries, events = await self.group_sending.prepare(target, content)
            return Outgoing(message, entries, events)
        return await self.sending.send(target, content)

    def _timed(self, target: Contact | Group, content: Content) -> Content:
        if not isinstance(
            content, Text | Location | ContactCard | Attachment | Payment | PaymentStatus
        ):
            return content
        key = target.conversation if isinstance(target, Group) else target.user_id
        seconds = self.store.messages.timer_of(key)
        ctx = content.ctx or Context()
        if ctx.timer == seconds:
            return content
        return with_context(content, replace(ctx, timer=seconds))

    def safety_numbers(self, contact: Contact) -> dict[str, str]:
        """Device id -> the 60-digit safety number with that device's identity key."""
        return safety_numbers(self.sealer, contact)

    # --- incoming -----------------------------------------------------------------------

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
                if message.group is None:
                    return self.receiving.receive(message, body, label)
                return self.sender_keys.receive(message, body, label)
        except (CryptoError, Rejected) as exc:
            log.warning("dropped %s: %s (%s)", label, type(exc).__name__, exc)
            return Incoming(stored=False)

    def _sender_key(
        self, sender: str, device: str, key: payload.SenderKeyPayload
    ) -> tuple[list[Event], set[str]]:
        outcome = self.sender_keys.accept_sender_key(sender, device, key)
        return outcome.events, outcome.refresh_groups

    def receipt(self, receipt: IncomingReceipt) -> list[Event]:
        """Move our messages to `receipt.sender` to delivered/read (never backwards);
        for group messages, per member, and as a whole once every member is there."""
        me = self.account.user_id
        in_groups: list[Message] = []
        direct: list[str] = []
        for client_id in receipt.client_ids:
            mine = self.store.messages.get(me, client_id)
            if mine is not None and mine.group_id is not None:
                in_groups.append(mine)
            else:
                direct.append(client_id)
        events: list[Event] = []
        if in_groups:
            with self.store.transaction():
                events += self.ticks.receipt(receipt, in_groups)
        if direct:
            events += self.receiving.receipt(receipt, direct)
        return events
