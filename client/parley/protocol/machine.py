"""`Protocol`: the state machine of one device's WebSocket session.

The outbox (FIFO per conversation, the head in flight, resends with the same
client id), deduplication and acks of incoming events, sync, and fragments.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar

from parley.protocol.events import (
    RECEIPT_STATUSES,
    DevicesMismatched,
    GroupStale,
    IncomingMessage,
    IncomingReceipt,
    ProtocolEvent,
    SendAccepted,
    SendRejected,
    ServerError,
    SyncComplete,
    as_str,
    event_id,
    is_device_list,
    is_int,
    is_number,
    parse_devices_changed,
    parse_message,
    parse_prekeys_low,
    parse_receipt,
    parse_typing,
)
from parley.protocol.frames import (
    FRAGMENT_BYTES,
    MAX_MESSAGES_PER_SEND,
    OutboxEntry,
    check_size,
    fragment,
)

log = logging.getLogger("parley.protocol")

_E = TypeVar("_E", IncomingMessage, IncomingReceipt)

# How long a send may stay unanswered on a live connection before it is sent again.
SEND_TIMEOUT_S = 30.0
# Ids acknowledged in one `ack` frame (keeps each frame far below the limits).
ACK_BATCH = 100
# How long an ack may wait for others to share its frame, as TCP delays its acks: what
# arrives together (a sync page, a burst) is acked in one frame, one Lambda
# invocation and one read of the envelopes, not one each. The sender's tick comes at
# most this much later; a connection lost meanwhile delivers those messages again,
# and they are acked as the copies they are.
ACK_DELAY_S = 0.2
# Longer, and a device online all along would look offline to its senders for that long.
MAX_ACK_DELAY_S = 10.0
# How long the ack of a receipt may wait. No tick hangs on it (it only clears the
# receipt from the mailbox), so it rides in the next ack frame that goes anyway: in a
# conversation, the one that acks the reply. A connection lost meanwhile gets the
# receipt again in its next sync, and applying it twice changes nothing.
RECEIPT_ACK_DELAY_S = 300.0
# Longer, and a receipt left unacked by a device online all along stays that long.
MAX_RECEIPT_ACK_DELAY_S = 3600.0
# (sender, client id) pairs remembered in memory on top of the caller's store.
SEEN_MEMORY = 10_000


def _sync_frame(after: str | None = None) -> dict[str, Any]:
    """`sync`, asking for the page in `batch` events (a few posts, not one an event)."""
    frame: dict[str, Any] = {"action": "sync", "batch": True}
    if after is not None:
        frame["after"] = after
    return frame


@dataclass
class _Flight:
    entry: OutboxEntry
    in_flight_since: float | None = None  # None: not on the wire
    mismatched: bool = False  # waiting for replace_payloads
    not_before: float = 0.0  # rate limited until
    expires: float = 0.0  # an ephemeral entry not on the wire by then is dropped
    # the entries on the wire in this (head's) frame's `more`, in order
    batch: tuple[_Flight, ...] = ()
    solo: bool = False  # refused in company: goes alone, to learn which entry it was

    def land(self) -> None:
        """Off the wire (answered with an error, unanswered, or the connection lost),
        with the entries that went in its frame."""
        for flight in (self, *self.batch):
            flight.in_flight_since = None
        self.batch = ()


class Protocol:
    """Sans-I/O state machine of one device's WebSocket session (across reconnects)."""

    def __init__(
        self,
        *,
        is_seen: Callable[[str, str], bool] | None = None,
        ticks: Callable[[IncomingMessage], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        send_timeout: float = SEND_TIMEOUT_S,
        fragment_bytes: int = FRAGMENT_BYTES,
        ack_delay: float = ACK_DELAY_S,
        receipt_ack_delay: float = RECEIPT_ACK_DELAY_S,
    ) -> None:
        self._is_seen_store = is_seen or (lambda _sender, _cid: False)
        # whether acking this message tells its sender `delivered` (the app's say,
        # parley.relationships: by default nobody learns anything from an ack)
        self._ticks = ticks or (lambda _message: False)
        self._clock = clock
        self._send_timeout = send_timeout
        if not 0 <= ack_delay <= MAX_ACK_DELAY_S:
            raise ValueError(f"ack_delay must be 0 to {MAX_ACK_DELAY_S} s, not {ack_delay!r}")
        self._ack_delay = ack_delay
        if not ack_delay <= receipt_ack_delay <= MAX_RECEIPT_ACK_DELAY_S:
            raise ValueError(
                f"receipt_ack_delay must be ack_delay ({ack_delay}) to "
                f"{MAX_RECEIPT_ACK_DELAY_S} s, not {receipt_ack_delay!r}"
            )
        self._receipt_ack_delay = receipt_ack_delay
        self._fragment_bytes = fragment_bytes
        # messages per `send` frame: the service's limit, lower if it says so
        self._max_batch = MAX_MESSAGES_PER_SEND
        self.connected = False
        self.synced = False
        self._queues: dict[str, deque[_Flight]] = {}
        self._by_client_id: dict[str, _Flight] = {}
        self._control: list[dict[str, Any]] = []  # sync/receipt/typing frames
        self._acks: list[str] = []
        self._ticked: set[str] = set()  # of _acks, those whose sender gets `delivered`
        self._acks_due: float | None = None  # when the first waiting ack must go
        self._out: list[list[str]] = []
        self._events: list[ProtocolEvent] = []
        # (sender, client id) handed to the caller and not yet resolved -> duplicate server ids
        self._surfaced: dict[tuple[str, str], set[str]] = {}
        self._seen: dict[tuple[str, str], None] = {}  # insertion-ordered LRU

    # --- connection lifecycle ------------------------------------------------

    def connection_made(self) -> None:
        """A connection is open: sync, then (re)send every conversation's head."""
        self.connected = True
        self.synced = False
        self._control = [_sync_frame()] + [f for f in self._control if f["action"] == "receipt"]
        self._flush()
        for queue in self._queues.values():
            self._launch(queue)

    def connection_lost(self) -> None:
        """The connection is gone: whatever was in flight is sent again on the next one."""
        self.connected = False
        self.synced = False
        for queue in self._queues.values():
            for flight in queue:
                flight.land()
        # typing is ephemeral and a sync is issued on the next connect
        self._control = [f for f in self._control if f["action"] == "receipt"]
        self._out.clear()

    # --- calls from the application --------------------------------------------

    def send(self, entry: OutboxEntry) -> None:
        """Queue a message; it goes out when everything before it in its conversation has."""
        if entry.client_id in self._by_client_id:
            return  # already queued (e.g. restored from the store twice)
        check_size(entry)
        flight = _Flight(entry)
        if entry.ephemeral and entry.ttl:
            flight.expires = self._clock() + entry.ttl
        queue = self._queues.setdefault(entry.conversation, deque())
        queue.append(flight)
        self._by_client_id[entry.client_id] = flight
        self._launch(queue)
        self._flush()

    def replace_payloads(self, client_id: str, payloads: dict[str, str]) -> None:
        """Give a mismatched entry its re-encrypted payloads and send it again."""
        flight = self._by_client_id.get(client_id)
        if flight is not None:
            self._resend(flight, replace(flight.entry, payloads=dict(payloads)))

    def replace_group_body(
        self, client_id: str, body: str, version: int, after: Iterable[str] = ()
    ) -> None:
        """Give a stale group entry its re-encrypted body (and the sender keys it now
        waits for) and send it again, with the same client id."""
        flight = self._by_client_id.get(client_id)
        if flight is not None:
            entry = replace(flight.entry, body=body, version=version, after=tuple(after))
            self._resend(flight, entry)

    def _resend(self, flight: _Flight, entry: OutboxEntry) -> None:
        """Put `entry` (the flight's, re-encrypted) back on the wire, same client id."""
        check_size(entry)
        flight.entry = entry
        flight.mismatched = False
        self._ground(flight)
        self._launch(self._queues[entry.conversation])
        self._flush()

    def cancel(self, client_id: str) -> OutboxEntry | None:
        """Give up on an entry (the caller marks its message failed)."""
        flight = self._by_client_id.get(client_id)
        if flight is None:
            return None
        self._ground(flight)
        self._pop(flight)
        self._flush()
        return flight.entry

    def _ground(self, flight: _Flight) -> None:
        """Take `flight` off the wire, with its frame's company; or, if it went in
        another's frame, take that whole frame off (its answer may no longer match
        what is queued: the entries go again, and the server keeps each once)."""
        for head in (q[0] for q in self._queues.values()):
            if flight in head.batch:
                head.land()
        flight.land()

    def pending(self) -> list[OutboxEntry]:
        """Every entry not yet accepted by the server, in per-conversation order."""
        return [f.entry for queue in self._queues.values() for f in queue]

    def message_stored(self, message: IncomingMessage) -> None:
        """The message is durably stored: acknowledge it (and any copy of it)."""
        self._resolve(message, remember=True)

    def message_dropped(self, message: IncomingMessage) -> None:
        """The message was rejected for good (logged by the caller): acknowledge it so
        the server stops delivering it. Its (sender, client id) is NOT remembered: a
        forged envelope must not be able to suppress the real message."""
        self._resolve(message, remember=False)

    def receipt_stored(self, receipt: IncomingReceipt) -> None:
        """The receipt is applied: acknowledge it, in the next ack frame that goes
        (at the latest `receipt_ack_delay` from now)."""
        self._queue_ack(receipt.server_id, delay=self._receipt_ack_delay)
        self._flush()

    def send_receipt(
        self,
        to: str,
        client_ids: Iterable[str],
        status: str = "read",
        sent: Iterable[int] | None = None,
    ) -> None:
        """Tell `to` that these of their messages were read. Kept across reconnects.

        `sent`: each message's `ts` (the server's time, ms), in the order of
        `client_ids`. The service then tells nobody of what was sent before `to`'s
        number moved to a new phone (its new owner must not learn who wrote with
        the old one)."""
        ids = list(client_ids)
        times = None if sent is None else list(sent)
        if times is not None and len(times) != len(ids):
            raise ValueError("`sent` must give one time per client id")
        if status not in RECEIPT_STATUSES:
            raise ValueError(f"unknown receipt status {status!r}")
        when: dict[str, int] = {}
        for client_id, ts in zip(ids, times or (), strict=False):
            when.setdefault(client_id, ts)
        ids = list(dict.fromkeys(ids))
        for start in range(0, len(ids), ACK_BATCH):
            batch = ids[start : start + ACK_BATCH]
            frame: dict[str, Any] = {"action": "receipt", "to": to, "status": status, "ids": batch}
            if times is not None:
                frame["sent"] = [when[i] for i in batch]
            self._control.append(frame)
        if ids:
            self._flush()

    def send_typing(self, to: str, typing: bool) -> None:
        """Typing state is never stored: dropped while offline."""
        if not self.connected:
            return
        self._control.append({"action": "typing", "to": to, "state": "on" if typing else "off"})
        self._flush()

    def request_sync(self) -> None:
        self._control.append(_sync_frame())
        self._flush()

    def _sync_again(self) -> None:
        if _sync_frame() not in self._control:
            self._control.append(_sync_frame())

    # --- time ----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `handle_timeout` has something to do (clock time), if ever."""
        deadlines: list[float] = [
            f.expires
            for queue in self._queues.values()
            for f in queue
            if f.expires and f.in_flight_since is None
        ]
        for queue in self._queues.values():
            head = queue[0]
            if head.in_flight_since is not None:
                deadlines.append(head.in_flight_since + self._send_timeout)
            elif head.not_before and not head.mismatched:
                deadlines.append(head.not_before)
        if self.connected and self._acks_due is not None:
            deadlines.append(self._acks_due)
        return min(deadlines) if deadlines else None

    def handle_timeout(self) -> None:
        """Resend heads unanswered for too long; release heads whose back-off ended;
        drop ephemeral entries whose time ran out before they went."""
        now = self._clock()
        self._expire(now)
        for queue in self._queues.values():
            head = queue[0]
            if head.in_flight_since is not None and now >= head.in_flight_since + (
                self._send_timeout
            ):
                log.info("send %s unanswered; sending it again", head.entry.client_id)
                head.land()
            self._launch(queue)
        self._flush()

    # --- input ---------------------------------------------------------------

    def receive_data(self, text: str | bytes) -> None:
        """Parse one message from the server. Malformed input is logged and ignored."""
        try:
            raw = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            log.warning("ignored a frame that is not JSON (%d bytes)", len(text))
            return
        self._dispatch(raw)
        self._flush()

    def _dispatch(self, raw: object) -> None:
        if not isinstance(raw, dict) or not isinstance(raw.get("event"), str):
            log.warning("ignored a frame without an event name")
            return
        handler = self._handlers.get(raw["event"])
        if handler is None:
            log.warning("ignored an unknown event %r", raw["event"][:40])
            return
        handler(self, raw)

    def events_received(self) -> list[ProtocolEvent]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[list[str]]:
        """Frames to write, in order; each is a list of fragments of one message."""
        out, self._out = self._out, []
        return out

    # --- event handlers ------------------------------------------------------

    def _on_message(self, raw: dict[str, Any]) -> None:
        message = self._parsed(raw, "a message", parse_message)
        if message is None:
            return
        key = (message.sender, message.client_id)
        if key in self._surfaced:
            self._surfaced[key].add(message.server_id)  # acked with the first copy
            return
        if key in self._seen or self._is_seen_store(*key):
            log.debug("duplicate message %s from %s", message.client_id, message.sender)
            self._remember(key)
            # a copy of what was stored: ticked as the first was (its ack may have failed)
            self._queue_ack(message.server_id, tick=self._ticks(message))
            return
        self._surfaced[key] = {message.server_id}
        self._events.append(message)

    def _on_receipt(self, raw: dict[str, Any]) -> None:
        receipt = self._parsed(raw, "a receipt", parse_receipt)
        if receipt is not None:
            self._events.append(receipt)

    def _parsed(
        self, raw: dict[str, Any], what: str, parse: Callable[[dict[str, Any], str], _E | None]
    ) -> _E | None:
        """The event `raw` holds, or None: one with an id but unusable fields is acked."""
        server_id = event_id(raw, what)
        if server_id is None:
            return None
        event = parse(raw, server_id)
        if event is None:
            self._queue_ack(server_id)
        return event

    def _on_sent(self, raw: dict[str, Any]) -> None:
        flight = self._in_flight(raw.get("id"))
        if flight is None:
            log.info("ignored `sent` for no pending send")
            return
        accepted = [(flight, raw.get("ts"))]
        company = {other.entry.client_id: other for other in flight.batch}
        more = raw.get("more")
        for item in more if isinstance(more, list) else ():
            # each entry of the frame the service says it stored; one it left out
            # (none should be) stays queued and goes again
            if isinstance(item, dict) and as_str(item.get("id")) in company:
                other = company.pop(item["id"])
                if self._by_client_id.get(other.entry.client_id) is other:  # still queued
                    accepted.append((other, item.get("ts")))
        flight.land()
        for done, ts in accepted:
            self._unqueue(done)
            self._events.append(SendAccepted(done.entry, int(ts) if is_int(ts) else 0))
        self._launch_all()

    def _on_error(self, raw: dict[str, Any]) -> None:
        code = as_str(raw.get("code")) or "unknown"
        message = as_str(raw.get("message"))
        details = {k: v for k, v in raw.items() if k not in {"event", "ref", "code", "message"}}
        flight = self._in_flight(raw.get("ref"))
        if flight is None:
            if raw.get("ref") is None and code in {"service_unavailable", "internal_error"}:
                # A frame without a client id (an ack, a sync) failed and changed
                # nothing: sync again, which hands back whatever still waits (the
                # copies are dropped and acked), so no tick waits for a reconnect.
                self._sync_again()
            self._events.append(ServerError(code, message, details))
            return
        entry = flight.entry
        company = flight.batch
        flight.land()
        if code == "mismatched_devices":
            missing, extra = raw.get("missing"), raw.get("extra")
            if is_device_list(missing) and is_device_list(extra) and (missing or extra):
                # the frame's entries were all encrypted for the same devices
                for each in (flight, *company):
                    each.mismatched = True
                    self._events.append(DevicesMismatched(each.entry, tuple(missing), tuple(extra)))
                return
            log.warning("mismatched_devices for %s without usable device lists", entry.client_id)
        if code == "stale_group" and entry.group_id is not None:
            version = raw.get("version")
            if is_int(version) and version >= 1:
                flight.mismatched = True
                self._events.append(GroupStale(entry, version))
                return
            log.warning("stale_group for %s without a usable version", entry.client_id)
        retry_after = raw.get("retry_after")
        if code in {"rate_limited", "service_unavailable", "internal_error"}:
            delay = float(retry_after) if is_number(retry_after) else 1.0
            delay = min(max(delay, 0.1), 300.0)
            flight.not_before = self._clock() + delay
            self._events.append(SendRejected(entry, code, message, delay, details))
            return
        limit = raw.get("limit")
        if company and code == "payload_too_large" and raw.get("field") == "more" and is_int(limit):
            # this service takes fewer messages in one frame: send smaller ones
            self._max_batch = max(1, min(self._max_batch, limit))
            self._launch_all()
            return
        if company:
            # refused for good, but for which entry? Each goes alone until it is known
            log.info(
                "send %s refused (%s) with %d more; sending it alone",
                entry.client_id,
                code,
                len(company),
            )
            flight.solo = True
            self._launch_all()
            return
        self._pop(flight)
        self._events.append(SendRejected(entry, code, message, None, details))

    def _on_batch(self, raw: dict[str, Any]) -> None:
        """Several events in one post (a sync page, a frame's messages): each as if it
        came alone, in order."""
        events = raw.get("events")
        if not isinstance(events, list):
            log.warning("ignored a batch without a list of events")
            return
        for event in events:
            if isinstance(event, dict) and event.get("event") == "batch":
                log.warning("ignored a batch inside a batch")
                continue
            self._dispatch(event)

    def _on_synced(self, raw: dict[str, Any]) -> None:
        more, cursor = raw.get("more"), raw.get("cursor")
        if more is True and isinstance(cursor, str) and cursor:
            self._control.append(_sync_frame(cursor))
            return
        if more is True:
            log.warning("server said more events wait but gave no cursor; sync stops here")
        self.synced = True
        self._events.append(SyncComplete())

    def _on_typing(self, raw: dict[str, Any]) -> None:
        typing = parse_typing(raw)
        if typing is not None:
            self._events.append(typing)

    def _on_devices_changed(self, raw: dict[str, Any]) -> None:
        notice = parse_devices_changed(raw)
        if notice is not None:
            self._events.append(notice)

    def _on_prekeys_low(self, raw: dict[str, Any]) -> None:
        self._events.append(parse_prekeys_low(raw))

    _handlers: ClassVar[dict[str, Callable[[Protocol, dict[str, Any]], None]]] = {
        "message": _on_message,
        "receipt": _on_receipt,
        "sent": _on_sent,
        "error": _on_error,
        "synced": _on_synced,
        "batch": _on_batch,
        "typing": _on_typing,
        "devices_changed": _on_devices_changed,
        "prekeys_low": _on_prekeys_low,
    }

    # --- internals -----------------------------------------------------------

    def _in_flight(self, client_id: object) -> _Flight | None:
        if not isinstance(client_id, str):
            return None
        flight = self._by_client_id.get(client_id)
        if flight is None or flight.in_flight_since is None:
            return None
        return flight

    def _pop(self, flight: _Flight) -> None:
        self._unqueue(flight)
        self._launch_all()  # its own queue, and whatever waited for it

    def _unqueue(self, flight: _Flight) -> None:
        conversation = flight.entry.conversation
        queue = self._queues[conversation]
        queue.remove(flight)
        del self._by_client_id[flight.entry.client_id]
        if not queue:
            del self._queues[conversation]

    def _expire(self, now: float) -> None:
        """Drop ephemeral entries not on the wire whose time ran out (the caller hears
        `SendRejected` with code "expired"): a call offer must not ring a minute late."""
        expired = [
            f
            for queue in self._queues.values()
            for f in queue
            if f.expires and now >= f.expires and f.in_flight_since is None
        ]
        for flight in expired:
            self._unqueue(flight)
            log.info("ephemeral send %s expired before it went", flight.entry.client_id)
            self._events.append(
                SendRejected(flight.entry, "expired", "its time ran out before it went", None, {})
            )

    def _launch_all(self) -> None:
        for queue in self._queues.values():
            self._launch(queue)

    def _launch(self, queue: deque[_Flight]) -> None:
        """Put the head of a conversation on the wire if it may go now."""
        if not self.connected or not queue:
            return
        head = queue[0]
        if head.in_flight_since is not None or head.mismatched:
            return
        if any(other in self._by_client_id for other in head.entry.after):
            return  # what it needs is not stored by the server yet
        now = self._clock()
        if head.not_before > now or (head.expires and now >= head.expires):
            return  # waits out its back-off; or it expired (handle_timeout drops it)
        head.not_before = 0.0
        head.in_flight_since = now
        frame = head.entry.frame()
        head.batch = self._company(head, queue, len(json.dumps(frame, separators=(",", ":"))))
        if head.batch:
            frame["more"] = [flight.entry.following() for flight in head.batch]
            for flight in head.batch:
                flight.in_flight_since = now
        self._out.append(self._encode(frame))

    def _company(self, head: _Flight, queue: deque[_Flight], size: int) -> tuple[_Flight, ...]:
        """The entries after `head` that go in its frame: those queued behind it that
        may (OutboxEntry.joins), while the frame stays one WebSocket frame."""
        if head.solo:
            return ()
        size += len(',"more":[]')
        company: list[_Flight] = []
        for flight in list(queue)[1 : self._max_batch]:
            if (
                flight.in_flight_since is not None
                or flight.mismatched
                or flight.solo
                or flight.not_before
                or flight.expires
                or not flight.entry.joins(head.entry)
            ):
                break
            size += len(json.dumps(flight.entry.following(), separators=(",", ":"))) + 1
            if size > self._fragment_bytes:
                break
            company.append(flight)
        return tuple(company)

    def _resolve(self, message: IncomingMessage, *, remember: bool) -> None:
        key = (message.sender, message.client_id)
        ids = self._surfaced.pop(key, set()) | {message.server_id}
        # a message dropped for good (forged, undecryptable) is acked without a tick
        tick = remember and self._ticks(message)
        if remember:
            self._remember(key)
        for server_id in sorted(ids):
            self._queue_ack(server_id, tick=tick)
        self._flush()

    def _remember(self, key: tuple[str, str]) -> None:
        self._seen.pop(key, None)
        self._seen[key] = None
        if len(self._seen) > SEEN_MEMORY:
            self._seen.pop(next(iter(self._seen)))

    def _queue_ack(self, server_id: str, *, tick: bool = False, delay: float | None = None) -> None:
        """Hold an ack for `server_id` (by default up to `ack_delay`): every waiting
        ack goes in one frame when the first of them is due."""
        if server_id not in self._acks:
            self._acks.append(server_id)
        if tick:
            self._ticked.add(server_id)
        due = self._clock() + (self._ack_delay if delay is None else delay)
        if self._acks_due is None or due < self._acks_due:
            self._acks_due = due

    def flush_acks(self) -> None:
        """Put every waiting ack on the wire now (before a close)."""
        self._acks_due = self._clock()
        self._flush()

    def _flush(self) -> None:
        if not self.connected:
            return
        for frame in self._control:
            self._out.append(self._encode(frame))
        self._control.clear()
        if not self._acks:
            self._acks_due = None
            return
        due = self._acks_due is None or self._clock() >= self._acks_due
        if not due and len(self._acks) < ACK_BATCH:
            return  # waits for company (next_deadline says until when)
        self._acks_due = None
        while self._acks:
            batch, self._acks = self._acks[:ACK_BATCH], self._acks[ACK_BATCH:]
            ack: dict[str, Any] = {"action": "ack", "ids": batch}
            ticked = [server_id for server_id in batch if server_id in self._ticked]
            if ticked:
                ack["delivered"] = ticked
            self._ticked.difference_update(batch)
            self._out.append(self._encode(ack))

    def _encode(self, frame: dict[str, Any]) -> list[str]:
        text = json.dumps(frame, separators=(",", ":"))
        return fragment(text, self._fragment_bytes)
