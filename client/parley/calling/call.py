"""`Call`: one call as an application holds it (its state, its media, its end)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from parley.content.calls import CallSignal
from parley.errors import ParleyClientError
from parley.models import CallRecord, CallState, CallStats, Contact, Direction

if TYPE_CHECKING:
    from parley.calling.manager import Calls
    from parley.calling.media import MediaSession

__all__ = ["Call", "CallRefused", "CallsUnavailable"]


class CallRefused(ParleyClientError):
    """This call cannot be placed or answered now (the reason says why)."""


class CallsUnavailable(ParleyClientError):
    """Calls need the calls extra: pip install './client[calls]'."""


class Call:
    """A call on this device. Outgoing from `Client.call`; incoming from the
    `IncomingCall` event. The state moves forward only (`parley.models.CallState`);
    `wait_ended()` returns the call's log entry, with its reason and duration."""

    def __init__(
        self,
        manager: Calls,
        call_id: str,
        contact: Contact,
        direction: Direction,
        *,
        video: bool,
        state: CallState,
        offer: CallSignal | None = None,
        peer_device: str | None = None,
    ) -> None:
        self._manager = manager
        self._call_id = call_id
        self._contact = contact
        self.direction = direction
        self._video = video
        self._state = state
        self.offer = offer  # incoming: the caller's offer
        # incoming: the caller's device; outgoing: the callee's device that answered
        self.peer_device = peer_device
        self.media: MediaSession | None = None
        self.sinks: dict[str, Any] = {}  # what the application passed in, by kind
        self._changed = asyncio.Condition()
        self.ended = asyncio.Event()
        self.reason: str | None = None

    def __repr__(self) -> str:
        return f"<Call {self._call_id[:8]} {self.direction} {self._contact.name} {self._state}>"

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def contact(self) -> Contact:
        return self._contact

    @property
    def video(self) -> bool:
        return self._video

    @property
    def state(self) -> CallState:
        return self._state

    @property
    def record(self) -> CallRecord | None:
        """What the call log says of this call."""
        return self._manager.record(self._call_id)

    async def set_state(self, state: CallState) -> None:
        async with self._changed:
            self._state = state
            self._changed.notify_all()

    # --- what the application does ------------------------------------------------------

    async def accept(
        self,
        *,
        audio: Any = None,
        sink: Any = None,
        video_source: Any = None,
        video_sink: Any = None,
        relay_only: bool | None = None,
    ) -> None:
        """Answer a ringing incoming call here: `audio` is what it plays (a track:
        `parley.calling.audio`; silence by default), `sink` where what it hears goes.
        Every other device of this account stops ringing. `relay_only` (None: when
        the caller is someone the user does not know) keeps this device's addresses
        from the caller: media goes through the service's TURN relay."""
        await self._manager.accept(self, audio, sink, video_source, video_sink, relay_only)

    async def decline(self) -> None:
        """Refuse a ringing incoming call (on every device of this account)."""
        await self._manager.decline(self)

    async def hangup(self) -> None:
        """End the call (cancel it if it has not been answered yet)."""
        await self._manager.hangup(self)

    async def stats(self) -> CallStats | None:
        """Round-trip time, packet loss and bitrates now (None without media)."""
        return None if self.media is None else await self.media.stats()

    async def wait_state(self, *states: CallState) -> CallState:
        """Wait until the call is in one of `states` (or ended); the state it is in
        (bound the wait with `asyncio.timeout`)."""

        def reached() -> bool:
            return self._state in states or self._state is CallState.ENDED

        async def wait() -> CallState:
            async with self._changed:
                await self._changed.wait_for(reached)
                return self._state

        return await wait()

    async def wait_ended(self) -> CallRecord:
        """Wait for the call to end; its log entry (outcome, reason, duration)."""
        await self.ended.wait()
        record = self.record
        assert record is not None  # every call is logged when it starts
        return record
