"""`Calls`: every call of one device, driven by the signals that arrive and by what
the application does.

The rules (docs/PROTOCOL.md, "Calls"):

- The caller sends an **offer** to every device of the callee (ephemeral, with a
  ringing push for offline devices) and a copy to its own other devices, which
  show the call as taking place elsewhere. Each callee device that rings answers
  **ringing** (not to someone it does not know: that would tell a stranger it
  is online); one already in a call answers **busy**.
- The first device to **answer** wins: it tells its own siblings "answered
  elsewhere" (they stop ringing), and the caller sends "answered elsewhere" to
  any other device whose answer comes later. Declining on one device declines
  on all of them.
- A call nobody answers rings out after `ring_timeout`: the caller sends a
  **hang-up** with reason "timeout" as an ordinary (stored) message, so a device
  that was offline learns of the **missed call** when it next connects; a caller
  that gives up first sends "normal" the same way. Every other signal is
  ephemeral.
- The media connection is checked against the DTLS fingerprint the signals
  carried; if it fails (a wrong certificate, no route), the call ends "failed"
  on both sides.

Signals for a call are handled in the order they arrive, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from parley import relationships
from parley.calling.call import Call, CallRefused, CallsUnavailable
from parley.calling.relays import IceConfig
from parley.calling.signalling import Signaller
from parley.content.calls import CallSignal, HangupReason, fingerprint_of, new_call_id
from parley.errors import ParleyClientError
from parley.models import (
    Account,
    CallEnded,
    CallMissed,
    CallRecord,
    CallState,
    CallStateChanged,
    Contact,
    Direction,
    Event,
    IncomingCall,
)
from parley.protocol import OutboxEntry
from parley.store import Store

__all__ = [
    "CONNECT_TIMEOUT_S",
    "HANGUP_GRACE_S",
    "OFFER_TTL_S",
    "RING_TIMEOUT_S",
    "SIGNAL_TTL_S",
    "Calls",
]

log = logging.getLogger("parley.calling")

# How long a call rings before the caller gives up (WhatsApp's is about as long).
RING_TIMEOUT_S = 45.0
# How long the service keeps an offer: a device that connects within it still rings.
OFFER_TTL_S = 60
# How long the service keeps the other signals (answer, ringing, busy, hang-ups).
SIGNAL_TTL_S = 60
# How long an answered call may take to connect its media before it fails.
CONNECT_TIMEOUT_S = 30.0
# How long after the media connection closed the other side's hang-up may still come
# (it closes its media as it hangs up; the signal goes through the service).
HANGUP_GRACE_S = 5.0

_LIVE = (CallState.CALLING, CallState.RINGING, CallState.CONNECTING, CallState.CONNECTED)
_UNANSWERED = (CallState.CALLING, CallState.RINGING)


class Calls:
    """The calls of one open client."""

    def __init__(
        self,
        store: Store,
        account: Account,
        signaller: Signaller,
        relays: Callable[[], Awaitable[IceConfig]],
        emit: Callable[[Event], None],
        *,
        clock: Callable[[], float] = time.time,
        ring_timeout: float = RING_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.account = account
        self.signaller = signaller
        self._relays = relays
        self._emit = emit
        self._clock = clock
        self.ring_timeout = ring_timeout
        self.connect_timeout = CONNECT_TIMEOUT_S
        self.hangup_grace = HANGUP_GRACE_S
        self._calls: dict[str, Call] = {}
        self._inbox: asyncio.Queue[tuple[str, str, CallSignal, int]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- what the application sees -------------------------------------------------------

    def record(self, call_id: str) -> CallRecord | None:
        return self.store.calls.get(call_id)

    def current(self) -> Call | None:
        """The call this device is in or ringing for, if any."""
        return next((c for c in self._calls.values() if c.state in _LIVE), None)

    def busy(self) -> bool:
        """Whether a call is live here (ringing ones included): no call may be placed."""
        return self.current() is not None

    def in_call(self, besides: Call | None = None) -> bool:
        """Whether this device is in a call or placing one (a call that only rings
        here does not count: another may ring beside it)."""
        return any(
            c is not besides
            and (
                c.state in (CallState.CONNECTING, CallState.CONNECTED)
                or (c.direction is Direction.OUT and c.state in _UNANSWERED)
            )
            for c in self._calls.values()
        )

    def get(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    # --- placing a call ------------------------------------------------------------------

    async def place(
        self,
        contact: Contact,
        *,
        video: bool = False,
        audio: Any = None,
        sink: Any = None,
        video_source: Any = None,
        video_sink: Any = None,
        relay_only: bool | None = None,
    ) -> Call:
        """Call `contact`: every device of theirs rings. Returns at once with the
        call in state `calling`; `wait_state(CONNECTED)` or `wait_ended()` follow.
        `relay_only` (None: for people the user does not know) hides this device's
        addresses behind the service's TURN relay."""
        if contact.user_id == self.account.user_id:
            raise CallRefused("you cannot call yourself")
        if self.busy():
            raise CallRefused("this device is already in a call")
        media_module = _media()
        ice = await self._relays()
        call = Call(
            self, new_call_id(), contact, Direction.OUT, video=video, state=CallState.CALLING
        )
        call.media = media_module.MediaSession(
            ice,
            video=video,
            audio_source=audio,
            audio_sink=sink,
            video_source=video_source,
            video_sink=video_sink,
            on_state=lambda state: self._spawn(self._media_state(call, state)),
            relay_only=self._relay_only(contact, relay_only),
        )
        self._calls[call.call_id] = call
        self._log(call, started_at=self._clock())
        try:
            sdp = await call.media.offer()
            offer = CallSignal(
                "offer", call.call_id, sdp=sdp, fingerprint=fingerprint_of(sdp), video=video
            )
            await self.signaller.send(contact, offer, ttl=OFFER_TTL_S, ring=True)
        except Exception as exc:  # aiortc raises what it likes (assertions, its own errors)
            await self._end(call, "failed", "failed")
            raise CallRefused(f"could not place the call: {exc}") from exc
        await self._own(replace(offer, peer=contact.user_id), OFFER_TTL_S)
        self._emit(CallStateChanged(call, CallState.CALLING))
        self._spawn(self._ring_out(call))
        return call

    async def _ring_out(self, call: Call) -> None:
        await asyncio.sleep(self.ring_timeout)
        if call.state in _UNANSWERED:
            log.info("call %s was not answered", call.call_id)
            await self._tell(call, "timeout", stored=True)
            await self._end(call, "timeout", "no_answer")

    # --- answering -----------------------------------------------------------------------

    async def accept(
        self,
        call: Call,
        audio: Any,
        sink: Any,
        video_source: Any,
        video_sink: Any,
        relay_only: bool | None = None,
    ) -> None:
        if call.direction is not Direction.IN or call.state is not CallState.RINGING:
            raise CallRefused(f"a call that is {call.state} cannot be accepted")
        assert call.offer is not None
        assert call.offer.sdp is not None
        media_module = _media()
        await call.set_state(CallState.CONNECTING)
        self._emit(CallStateChanged(call, CallState.CONNECTING))
        # taking this call: any other that rings here is busy
        for other in list(self._calls.values()):
            ringing = other.direction is Direction.IN and other.state is CallState.RINGING
            if other is not call and ringing:
                await self._busy(other)
        try:
            ice = await self._relays()
            if _over(call):
                return  # the caller hung up meanwhile
            call.media = media_module.MediaSession(
                ice,
                video=call.video,
                audio_source=audio,
                audio_sink=sink,
                video_source=video_source,
                video_sink=video_sink,
                on_state=lambda state: self._spawn(self._media_state(call, state)),
                relay_only=self._relay_only(call.contact, relay_only),
            )
            sdp = await call.media.answer(call.offer.sdp)
            if _over(call):
                await call.media.close()  # the caller hung up meanwhile: nothing to answer
                return
            answer = CallSignal("answer", call.call_id, sdp=sdp, fingerprint=fingerprint_of(sdp))
            await self.signaller.send(call.contact, answer, ttl=SIGNAL_TTL_S)
        except Exception as exc:  # aiortc raises what it likes for an SDP it cannot use
            if _over(call):
                return
            log.warning("could not answer call %s: %s", call.call_id, type(exc).__name__)
            await self._tell(call, "failed")
            await self._end(call, "failed", "failed")
            raise CallRefused(f"could not answer the call: {type(exc).__name__}") from exc
        self._spawn(self._connect_deadline(call))
        hangup = CallSignal("hangup", call.call_id, reason="answered_elsewhere")
        await self._own(replace(hangup, peer=call.contact.user_id), SIGNAL_TTL_S)

    async def decline(self, call: Call) -> None:
        if call.direction is not Direction.IN or call.state is not CallState.RINGING:
            raise CallRefused(f"a call that is {call.state} cannot be declined")
        await self._tell(call, "declined")
        await self._end(call, "declined", "declined")

    async def hangup(self, call: Call) -> None:
        if call.state is CallState.ENDED:
            return
        if call.state is CallState.ELSEWHERE:
            raise CallRefused("the call is on another device of this account")
        if call.direction is Direction.IN and call.state is CallState.RINGING:
            await self.decline(call)
            return
        unanswered = call.state in _UNANSWERED
        # a caller that gives up: the callee's offline devices log it as missed
        await self._tell(call, "normal", stored=unanswered)
        await self._end(call, "normal", "answered" if self._connected(call) else "cancelled")

    # --- signals that arrive -------------------------------------------------------------

    def received(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        """A signal decrypted from `sender`'s `device` (server time `ts`, ms): handled in
        order, in the background."""
        self._inbox.put_nowait((sender, device, signal, ts))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="parley-calls")

    async def _work(self) -> None:
        while not self._inbox.empty():
            sender, device, signal, ts = self._inbox.get_nowait()
            try:
                await self._handle(sender, device, signal, ts)
            except Exception:  # one bad signal must not stop the calls of this device
                log.exception("call signal %s for %s failed", signal.type, signal.call)

    async def _handle(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        mine = sender == self.account.user_id
        handler = _OWN if mine else _THEIRS
        await handler[signal.type](self, sender, device, signal, ts)

    async def _their_offer(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        if signal.call in self._calls or self.record(signal.call) is not None:
            return  # seen already
        contact = self._contact(sender)
        age = self._clock() - ts / 1000
        if age > OFFER_TTL_S:
            log.info("call offer %s is %.0f s old: not ringing", signal.call, age)
            return
        call = Call(
            self,
            signal.call,
            contact,
            Direction.IN,
            video=signal.video,
            state=CallState.RINGING,
            offer=signal,
            peer_device=device,
        )
        self._calls[call.call_id] = call
        self._log(call, started_at=ts / 1000)
        if self.in_call(besides=call):
            await self._busy(call)
            return
        self._emit(IncomingCall(call))
        if relationships.knows(self.store, sender):
            await self._send(contact, CallSignal("ringing", call.call_id), SIGNAL_TTL_S)
        self._spawn(self._stop_ringing(call, ts / 1000 + self.ring_timeout + 15 - self._clock()))

    async def _busy(self, call: Call) -> None:
        """An incoming call this device cannot take: `busy` to the caller if we know
        them (a stranger learns nothing from us), then missed here."""
        if relationships.knows(self.store, call.contact.user_id):
            await self._send(call.contact, CallSignal("busy", call.call_id), SIGNAL_TTL_S)
        await self._end(call, "busy", "missed")

    async def _stop_ringing(self, call: Call, after: float) -> None:
        # the caller's hang-up normally ends it; this is for a caller that vanished
        await asyncio.sleep(max(0.0, after))
        if call.state is CallState.RINGING:
            await self._end(call, "timeout", "missed")

    async def _own_offer(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        """Another device of this account is calling `signal.peer`."""
        assert signal.peer is not None
        if signal.call in self._calls or self.record(signal.call) is not None:
            return
        call = Call(
            self,
            signal.call,
            self._contact(signal.peer),
            Direction.OUT,
            video=signal.video,
            state=CallState.ELSEWHERE,
        )
        self._calls[call.call_id] = call
        self._log(call, started_at=ts / 1000, elsewhere=True)
        self._emit(CallStateChanged(call, CallState.ELSEWHERE))

    async def _their_ringing(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        call = self._ours(signal, sender)
        if call is not None and call.state is CallState.CALLING:
            await call.set_state(CallState.RINGING)
            self._emit(CallStateChanged(call, CallState.RINGING))

    async def _their_busy(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        call = self._ours(signal, sender)
        if call is not None and call.state in _UNANSWERED:
            await self._tell(call, "busy")  # their other devices stop ringing
            await self._end(call, "busy", "busy")

    async def _their_answer(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        call = self._calls.get(signal.call)
        if call is None or call.contact.user_id != sender or call.direction is not Direction.OUT:
            return
        if call.state is CallState.ELSEWHERE:
            self._update(call, connected_at=ts / 1000, outcome="answered")
            return
        if call.peer_device is not None and device != call.peer_device:
            # a second device answered too late: it stops
            lost = CallSignal("hangup", call.call_id, reason="answered_elsewhere", device=device)
            await self._send(call.contact, lost, SIGNAL_TTL_S)
            return
        if call.state not in _UNANSWERED or call.media is None:
            return
        assert signal.sdp is not None
        call.peer_device = device
        await call.set_state(CallState.CONNECTING)
        self._emit(CallStateChanged(call, CallState.CONNECTING))
        self._spawn(self._connect_deadline(call))
        try:
            await call.media.accept(signal.sdp)
        except Exception as exc:  # aiortc raises what it likes for an SDP it cannot use
            log.warning("call %s: the answer is unusable: %s", call.call_id, type(exc).__name__)
            await self._tell(call, "failed")
            await self._end(call, "failed", "failed")

    async def _their_ice(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        call = self._calls.get(signal.call)
        if call is None or call.contact.user_id != sender or device != call.peer_device:
            return  # only the device on the other end of this call
        if call.media is None or call.state is CallState.ENDED:
            return
        try:
            await call.media.add_candidates(signal.candidates)
        except Exception as exc:  # aiortc's parser raises what it likes
            log.warning("call %s: unusable ICE candidates: %s", call.call_id, type(exc).__name__)

    async def _their_hangup(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        if signal.device is not None and signal.device != self.account.device_id:
            return  # meant for another device of this account
        assert signal.reason is not None
        call = self._calls.get(signal.call)
        if call is None:
            if signal.reason in ("timeout", "normal", "busy") and signal.device is None:
                self._missed_offline(sender, signal, ts)
            return
        if call.contact.user_id != sender or call.state is CallState.ENDED:
            return
        if call.state is CallState.ELSEWHERE:
            return  # our device in the call hears it and tells us
        if call.peer_device is not None and device != call.peer_device:
            return  # a device of theirs that is not in this call
        if self._connected(call):
            outcome = "answered"
        elif call.direction is Direction.IN:
            outcome = "answered_elsewhere" if signal.reason == "answered_elsewhere" else "missed"
        else:
            outcome = {"declined": "declined", "busy": "busy"}.get(signal.reason, "failed")
            if signal.reason == "declined":
                await self._tell(call, "declined")  # the rest of their devices stop too
        await self._end(call, signal.reason, outcome)

    def _missed_offline(self, sender: str, signal: CallSignal, ts: int) -> None:
        """A caller gave up before this device heard the offer (it was offline)."""
        if self.record(signal.call) is not None:
            return
        if not relationships.knows(self.store, sender):
            # a stranger could fill the log with calls that never rang
            log.info("ignored a missed call from someone this user does not know")
            return
        contact = self._contact(sender)
        record = CallRecord(
            call_id=signal.call,
            peer=sender,
            direction=Direction.IN,
            video=False,
            started_at=ts / 1000,
            outcome="missed",
            reason=signal.reason,
            ended_at=ts / 1000,
        )
        self.store.calls.save(record)
        self._emit(CallMissed(record, contact))

    async def _own_hangup(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        """Another device of this account answered, declined or ended a call."""
        assert signal.reason is not None
        call = self._calls.get(signal.call)
        if call is None or call.state is CallState.ENDED:
            return
        if call.contact.user_id != signal.peer:
            return
        if call.state is CallState.RINGING and call.direction is Direction.IN:
            outcome = "declined" if signal.reason == "declined" else "answered_elsewhere"
            self._update(call, elsewhere=True)
            await self._end(call, signal.reason, outcome)
        elif call.state is CallState.ELSEWHERE:
            # the calling device names the device of theirs that had answered, if one
            # did (their answer may reach us after this copy, or not at all)
            answered = signal.device is not None or self._connected(call)
            outcome = "answered" if answered else _OUTCOMES[signal.reason]
            await self._end(call, signal.reason, outcome)

    async def _ignore(self, sender: str, device: str, signal: CallSignal, ts: int) -> None:
        log.info("ignored a call %s from %s", signal.type, "us" if signal.peer else sender)

    # --- media ---------------------------------------------------------------------------

    async def _media_state(self, call: Call, state: str) -> None:
        if call.state is CallState.ENDED:
            return
        if state == "connected" and call.state is not CallState.CONNECTED:
            self._update(call, connected_at=self._clock(), outcome="answered")
            await call.set_state(CallState.CONNECTED)
            self._emit(CallStateChanged(call, CallState.CONNECTED))
        elif state == "closed":
            # the other side closed its media: its hang-up is on the way; or it went
            # away without a word (ICE consent ran out)
            self._spawn(self._closed(call))
        elif state == "failed":
            await self._fail(call, "the media connection failed")

    async def _closed(self, call: Call) -> None:
        await asyncio.sleep(self.hangup_grace)
        if call.state is not CallState.ENDED:
            await self._fail(call, "the media closed and no hang-up came")

    async def _connect_deadline(self, call: Call) -> None:
        await asyncio.sleep(self.connect_timeout)
        if call.state is CallState.CONNECTING:
            await self._fail(call, f"no media connection in {self.connect_timeout:.0f} s")

    async def _fail(self, call: Call, why: str) -> None:
        """End a call whose media failed, telling the other side (answered: it did connect)."""
        log.warning("call %s: %s", call.call_id, why)
        await self._tell(call, "failed")
        await self._end(call, "failed", "answered" if self._connected(call) else "failed")

    def _connected(self, call: Call) -> bool:
        """Whether the call's media ever connected (on this device or, logged, elsewhere)."""
        record = self.record(call.call_id)
        return record is not None and record.connected_at is not None

    # --- ending --------------------------------------------------------------------------

    async def _end(self, call: Call, reason: HangupReason, outcome: str) -> None:
        if call.state is CallState.ENDED:
            return
        await call.set_state(CallState.ENDED)
        call.reason = reason
        record = self._update(call, reason=reason, outcome=outcome, ended_at=self._clock())
        if call.media is not None:
            with contextlib.suppress(Exception):
                await call.media.close()
        call.ended.set()
        self._calls.pop(call.call_id, None)  # the log keeps it
        if record is None:
            return
        self._emit(CallEnded(call, record))
        if outcome == "missed":
            self._emit(CallMissed(record, call.contact))

    async def _tell(self, call: Call, reason: HangupReason, *, stored: bool = False) -> None:
        """Send the other party (every device) a hang-up, and our other devices a copy
        (naming the device of theirs that had answered our call, if one did)."""
        hangup = CallSignal("hangup", call.call_id, reason=reason)
        ttl = None if stored else SIGNAL_TTL_S
        await self._send(call.contact, hangup, ttl)
        answered_by = call.peer_device if call.direction is Direction.OUT else None
        copy = replace(hangup, peer=call.contact.user_id, device=answered_by)
        await self._own(copy, ttl)

    async def close(self) -> None:
        """The client closes: hang up what is live, stop the background work."""
        for call in list(self._calls.values()):
            if call.direction is Direction.IN and call.state is CallState.RINGING:
                await self._end(call, "normal", "missed")  # says nothing: others may answer
            elif call.state in _LIVE:
                with contextlib.suppress(ParleyClientError):
                    await self.hangup(call)
        for task in [*self._tasks, *([self._worker] if self._worker else [])]:
            task.cancel()
        for task in [*self._tasks, *([self._worker] if self._worker else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def signal_done(self, entry: OutboxEntry, code: str | None) -> bool:
        """The service took one of our signals (`code` None), or refused it or the
        outbox dropped it (`code`); whether it was one of ours. A call whose offer
        could not go ends "failed"."""
        sent = self.signaller.sent.pop(entry.client_id, None)
        if sent is None:
            return False
        call_id, kind = sent
        if code is None:
            return True
        log.warning("call %s to %s did not go: %s", kind, entry.to, code)
        call = self._calls.get(call_id)
        if kind == "offer" and call is not None and call.state is CallState.CALLING:
            self._spawn(self._end(call, "failed", "failed"))
        return True

    # --- helpers -------------------------------------------------------------------------

    async def _send(self, contact: Contact, signal: CallSignal, ttl: int | None) -> None:
        try:
            await self.signaller.send(contact, signal, ttl=ttl)
        except (ParleyClientError, ValueError) as exc:
            log.warning("could not send a call %s to %s: %s", signal.type, contact.user_id, exc)

    async def _own(self, signal: CallSignal, ttl: int | None) -> None:
        try:
            await self.signaller.send_own(signal, ttl=ttl)
        except (ParleyClientError, ValueError) as exc:
            log.warning("could not tell our other devices of a call %s: %s", signal.type, exc)

    def _ours(self, signal: CallSignal, sender: str) -> Call | None:
        call = self._calls.get(signal.call)
        if call is None or call.contact.user_id != sender or call.direction is not Direction.OUT:
            return None
        return call

    def _relay_only(self, contact: Contact, asked: bool | None) -> bool:
        """Whether this device's own addresses stay out of the call: if asked, else for
        someone the user does not know (an offer or answer shows them to every device
        it reaches)."""
        if asked is not None:
            return asked
        return not relationships.knows(self.store, contact.user_id)

    def _contact(self, user_id: str) -> Contact:
        return self.store.contacts.get(user_id) or self.store.contacts.add(user_id, None, None)

    def _log(self, call: Call, *, started_at: float, elsewhere: bool = False) -> None:
        self.store.calls.save(
            CallRecord(
                call_id=call.call_id,
                peer=call.contact.user_id,
                direction=call.direction,
                video=call.video,
                started_at=started_at,
                elsewhere=elsewhere,
            )
        )

    def _update(self, call: Call, **changes: Any) -> CallRecord | None:
        return self.store.calls.update(call.call_id, **changes)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _over(call: Call) -> bool:
    """Whether `call` has ended (read anew: an await may have ended it)."""
    return call.state is CallState.ENDED


def _media() -> Any:
    """parley.calling.media, or CallsUnavailable when the calls extra is missing."""
    try:
        from parley.calling import media
    except ImportError as exc:
        raise CallsUnavailable(
            f"calls need the calls extra ({exc.name} is missing): pip install './client[calls]'"
        ) from exc
    return media


_OUTCOMES: dict[str, str] = {
    "normal": "cancelled",
    "declined": "declined",
    "busy": "busy",
    "answered_elsewhere": "answered_elsewhere",
    "timeout": "no_answer",
    "failed": "failed",
}

_Handler = Callable[[Calls, str, str, CallSignal, int], Awaitable[None]]
_THEIRS: dict[str, _Handler] = {
    "offer": Calls._their_offer,
    "answer": Calls._their_answer,
    "ice": Calls._their_ice,
    "ringing": Calls._their_ringing,
    "busy": Calls._their_busy,
    "hangup": Calls._their_hangup,
}
_OWN: dict[str, _Handler] = {
    "offer": Calls._own_offer,
    "answer": Calls._ignore,
    "ice": Calls._ignore,
    "ringing": Calls._ignore,
    "busy": Calls._ignore,
    "hangup": Calls._own_hangup,
}
