"""The live side of an open client: its WebSocket transport, the background
tasks (prekey upkeep, relisting this account's devices) and what waits on
them (synced, outbox answered).

The connection keeps itself up (`parley.transport`); this module starts and
stops it, and runs prekey upkeep once caught up after connecting, then again
whenever first messages consumed prekeys (at most every MAINTENANCE_INTERVAL_S), or
at once when the service says few are left (`prekeys_low`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from parley.errors import ParleyClientError
from parley.keys import Maintenance
from parley.models import Connected, Disconnected, Event
from parley.protocol import Protocol, ProtocolEvent
from parley.transport import Backoff, Transport

__all__ = ["MAINTENANCE_INTERVAL_S", "Connection"]

log = logging.getLogger("parley.client")

# Prekey upkeep runs at start and again after first messages used up prekeys,
# at most this often.
MAINTENANCE_INTERVAL_S = 60.0


class Connection:
    """One client's transport and background tasks around its `Protocol`."""

    def __init__(self, protocol: Protocol, emit: Callable[[Event], None]) -> None:
        self.protocol = protocol
        self._emit = emit
        self.transport: Transport | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self._relisting: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()
        self.outbox_changed = asyncio.Event()
        self.maintenance_due = asyncio.Event()
        # the service said claims left few one-time prekeys: upkeep runs now, not
        # after the rest of its interval
        self.top_up = asyncio.Event()

    def start(
        self,
        ws_url: str,
        *,
        token: Callable[[], Awaitable[str]],
        refresh_token: Callable[[], Awaitable[object]],
        on_event: Callable[[ProtocolEvent], Awaitable[None]],
        maintain: Callable[[], Awaitable[Maintenance]],
        backoff: Backoff | None,
    ) -> None:
        """Connect (and keep connecting) in the background; prekey upkeep alongside."""
        self.transport = Transport(
            ws_url,
            self.protocol,
            token=token,
            refresh_token=refresh_token,
            on_event=on_event,
            on_connection=self._on_connection,
            backoff=backoff,
        )
        self.tasks.append(asyncio.create_task(self.transport.run(), name="parley-transport"))
        self.tasks.append(asyncio.create_task(self._maintenance(maintain), name="parley-keys"))

    async def stop(self) -> None:
        """Close the WebSocket and do not dial again."""
        if self.transport is not None:
            await self.transport.stop()

    async def close(self, *others: asyncio.Task[None]) -> None:
        """Stop the transport and every background task (and `others`)."""
        await self.stop()
        background = [*self.tasks, *others]
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()

    def flush(self) -> None:
        """Write what the protocol has queued now."""
        if self.transport is not None:
            self.transport.flush()

    async def _on_connection(self, connected: bool, reason: str) -> None:
        if connected:
            self._emit(Connected())
        else:
            self.synced.clear()
            self._emit(Disconnected(reason))

    def relist_soon(self, relist: Callable[[], Awaitable[object]]) -> None:
        """After each (re)connect: which devices this account has now, in the background."""
        if self._relisting is not None and not self._relisting.done():
            return

        async def run() -> None:
            try:
                await relist()
            except ParleyClientError as exc:
                log.warning("could not list this account's devices: %s", exc)

        self._relisting = asyncio.create_task(run(), name="parley-own-devices")
        self.tasks = [task for task in self.tasks if not task.done()]
        self.tasks.append(self._relisting)

    async def wait_outbox_empty(self) -> None:
        """Until the server has answered every queued message (accepted or refused)."""
        while self.protocol.pending():
            self.outbox_changed.clear()
            await self.outbox_changed.wait()

    def top_up_now(self) -> None:
        """The service says this device has few one-time prekeys left (`prekeys_low`):
        run prekey upkeep at once."""
        self.maintenance_due.set()
        self.top_up.set()

    async def _maintenance(self, maintain: Callable[[], Awaitable[Maintenance]]) -> None:
        """Prekey upkeep: once caught up after connecting, then whenever first
        messages consumed prekeys (at most every MAINTENANCE_INTERVAL_S), and at once
        when the service says few are left."""
        await self.synced.wait()
        while True:
            self.top_up.clear()
            try:
                result = await maintain()
                if result.uploaded or result.rotated:
                    log.info("keys: %s", result)
            except ParleyClientError as exc:
                log.warning("prekey upkeep failed (will retry): %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.top_up.wait(), MAINTENANCE_INTERVAL_S)
            await self.maintenance_due.wait()
            self.maintenance_due.clear()
