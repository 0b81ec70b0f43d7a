"""Sending call signals: sealed with the Double Ratchet like any message, for every
device of the other party (or of this account), and queued as ephemeral sends.

An ephemeral entry (`OutboxEntry.ephemeral`) is kept by the service only `ttl`
seconds, and by this device's outbox only as long: if it has not gone by then
(no connection), it is dropped, since a call offer must not ring a minute late.
A hang-up that must still be learned later (the caller gave up: the callee's
devices log a missed call when they next connect) goes as an ordinary message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from parley.content.calls import CallSignal
from parley.conversations.sealing import Sealer, check_entry_size, new_client_id
from parley.errors import ContactNotFound
from parley.models import Contact
from parley.protocol import OutboxEntry

__all__ = ["MAX_EPHEMERAL_TTL_S", "Signaller"]

log = logging.getLogger("parley.calling")

# The service keeps an ephemeral send at most this long (docs/PROTOCOL.md).
MAX_EPHEMERAL_TTL_S = 300


class Signaller:
    """Seals and queues call signals; remembers which outbox entries are its own."""

    def __init__(self, sealer: Sealer, queue: Callable[[OutboxEntry], None]) -> None:
        self.sealer = sealer
        self._queue = queue
        # signals the service has not answered yet: client id -> (call id, signal type)
        self.sent: dict[str, tuple[str, str]] = {}

    async def send(
        self, contact: Contact, signal: CallSignal, *, ttl: int | None, ring: bool = False
    ) -> str:
        """Seal `signal` for every device of `contact` and queue it; its client id.
        `ttl` None: an ordinary message (kept up to 30 days); else ephemeral."""
        if ttl is not None and not 0 < ttl <= MAX_EPHEMERAL_TTL_S:
            raise ValueError(f"an ephemeral signal lives 1 to {MAX_EPHEMERAL_TTL_S} seconds")
        plaintext = signal.encode()
        uid = contact.user_id
        async with self.sealer.lock(uid):
            sealed = await self.sealer.seal(contact, plaintext)
            entry = OutboxEntry(
                client_id=new_client_id(),
                to=uid,
                payloads=sealed.payloads,
                ttl=ttl,
                ephemeral=ttl is not None,
                ring=ring,
            )
            check_entry_size(entry)
            self.sealer.commit(sealed, entry, plaintext, self.sealer.clock())
        self.sent[entry.client_id] = (signal.call, signal.type)
        self._queue(entry)
        return entry.client_id

    async def send_own(self, signal: CallSignal, *, ttl: int | None) -> str | None:
        """The same to this account's other devices (`signal.peer` names the other
        party); None when there are none."""
        if not self.sealer.own_devices:
            return None
        try:
            return await self.send(self.sealer.me(), signal, ttl=ttl)
        except ContactNotFound as exc:
            log.info("no call signal for this account's other devices: %s", exc)
            self.sealer.own_devices = frozenset()
            return None
