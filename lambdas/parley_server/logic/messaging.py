"""The messaging use cases: send, sync, typing, and delivery to live connections
(ack and receipts are in logic/receipts.py).

Plain Python over small ports (the store adapters satisfy them; tests hand in
fakes). Time comes in as `now` (epoch seconds). Nothing here reads the
environment or talks to AWS.

Why a sender's messages arrive in order: a client has one message per
conversation in flight and sends the next only after `sent`. `send` stamps `ord`
from the server clock, stores, delivers to live connections and only then
answers, so message n+1 is stamped after message n was stored and posted: live
delivery happens in order, and `sync` reads the mailbox by `ord`. docs/PROTOCOL.md
says what this asks of clients.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from parley_server.config import Limits
from parley_server.logic.ports import (
    Caller,
    ConnectionsPort,
    D,
    Directory,
    GatewayPort,
    LimiterPort,
    MailboxPort,
    Pusher,
)
from parley_server.models.errors import (
    BadRequest,
    DependencyUnavailable,
    MismatchedDevices,
    NotFound,
    ParleyError,
    PayloadTooLarge,
)
from parley_server.models.frames import (
    ACTIONS,
    DirectTypingFrame,
    Envelope,
    GroupSendFrame,
    MessageEnvelope,
    Position,
    PostOutcome,
    SendFrame,
    SyncFrame,
    batch_event,
    batches,
    encode_cursor,
    make_ord,
    sent_event,
    synced_event,
    typing_event,
)

__all__ = [
    "SYNC_PAGE",
    "DeliveryReport",
    "SendOutcome",
    "SyncOutcome",
    "deliver",
    "deliver_each",
    "events_by_device",
    "expiry",
    "limit_mail_from_sender",
    "limit_rings",
    "limit_send_rate",
    "limit_typing_rate",
    "refuse_unknown",
    "send",
    "sync",
    "typing",
]

# Events delivered by one sync invocation: far inside Lambda's time and
# API Gateway's limits even when every one is a 64 KiB message.
SYNC_PAGE = Limits().sync_page


# -- delivery ---------------------------------------------------------------------------


class DeliveryReport(msgspec.Struct, frozen=True):
    """What one fan-out to a user's connections did."""

    reached: frozenset[str]  # device ids with at least one connection that got the event
    posts: int
    gone: int


def deliver(
    user_id: str,
    event_for: Callable[[str], Mapping[str, Any] | None],
    *,
    now: float,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    skip: str | None = None,
) -> DeliveryReport:
    """Post each device's event to that device's live connections; forget the ones that
    are over (a 410 for one still opening is not the end of it: Connection.over)."""

    def events_for(device_id: str) -> Sequence[Mapping[str, Any]]:
        event = event_for(device_id)
        return () if event is None else (event,)

    return deliver_each(
        user_id, events_for, now=now, connections=connections, gateway=gateway, skip=skip
    )


def deliver_each(
    user_id: str,
    events_for: Callable[[str], Sequence[Mapping[str, Any]]],
    *,
    now: float,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    skip: str | None = None,
) -> DeliveryReport:
    """`deliver` of several events per device, in order, after one read of the user's
    connections. A device is reached when one of its connections got them all: a post
    that fails ends that connection's share (what follows would arrive out of order;
    the mailbox hands it all over at the next sync). A connection that reads `batch`
    events gets its share in as few posts of up to 32 KB as fit it."""
    reached: set[str] = set()
    posts = gone = 0
    for connection in connections.of_user(user_id, now=now):
        events = events_for(connection.device_id)
        if not events or connection.connection_id == skip:
            continue
        outcome = PostOutcome.DELIVERED
        for run in batches(events, together=connection.batch):
            posts += 1
            outcome = gateway.post(connection.connection_id, batch_event(run))
            if outcome is not PostOutcome.DELIVERED:
                break
        if outcome is PostOutcome.DELIVERED:
            reached.add(connection.device_id)
        elif outcome is PostOutcome.GONE:
            if connection.over(now):
                connections.remove(user_id, connection.connection_id)
            gone += 1
    return DeliveryReport(frozenset(reached), posts, gone)


def events_by_device(
    pending: Mapping[str, Envelope],
) -> Callable[[str], Mapping[str, Any] | None]:
    """`deliver`'s `event_for` over the envelope each device holds."""
    events = {device_id: envelope.event() for device_id, envelope in pending.items()}
    return events.get


def _nonce() -> str:
    return secrets.token_hex(4)


# -- send -------------------------------------------------------------------------------


class SendOutcome(msgspec.Struct, frozen=True):
    event: dict[str, Any]  # the `sent` answer
    devices: int  # fan-out size
    stored: int  # new envelopes
    duplicates: int  # envelopes already pending (a retried send)
    delivered: int  # connections that got the message now
    pushed: int  # pushes sent to devices not reached live, call pushes included
    gone: int
    call_pushes: int = 0  # of `pushed`, the high-priority call pushes (a ringing send)


def expiry(now: float, limits: Limits, ttl_s: int | None) -> int:
    """When a message's envelopes expire: after the mailbox's 30 days, or sooner when
    the send asked for less (a disappearing message's timer)."""
    return int(now) + (limits.mailbox_ttl_s if ttl_s is None else min(ttl_s, limits.mailbox_ttl_s))


def limit_send_rate(
    caller: Caller, *, limits: Limits, limiter: LimiterPort, now: float, messages: int = 1
) -> None:
    """Count the sends of the caller's device (one per message of the frame): one
    budget per second for 1:1 and group sends alike (RateLimited past it)."""
    limiter.hit(
        "send",
        f"{caller.user_id}#{caller.device_id}",
        limit=limits.send_rate_per_s,
        window_s=1,
        now=now,
        cost=messages,
    )


def limit_typing_rate(caller: Caller, *, limits: Limits, limiter: LimiterPort, now: float) -> None:
    """Count one typing frame of the caller's device, per second and per minute, to
    a user or a group alike (RateLimited past either)."""
    device = f"{caller.user_id}#{caller.device_id}"
    limiter.hit("typing-s", device, limit=limits.typing_per_s, window_s=1, now=now)
    limiter.hit("typing-min", device, limit=limits.typing_per_minute, window_s=60, now=now)


def limit_mail_from_sender(
    caller: Caller, to: str, *, limits: Limits, limiter: LimiterPort, now: float, messages: int = 1
) -> None:
    """Count the 1:1 messages from the caller's account to `to`'s (RateLimited past
    the hourly quota): however many devices and accounts a stranger has, each account
    fills another's mailbox only so fast. What one sends oneself is not counted."""
    if to == caller.user_id:
        return
    limiter.hit(
        "mail-to",
        f"{caller.user_id}:{to}",
        limit=limits.messages_to_user_per_hour,
        window_s=3600,
        now=now,
        cost=messages,
    )


def limit_rings(
    caller: Caller, to: str, *, limits: Limits, limiter: LimiterPort, now: float
) -> None:
    """Count one ringing send (a call offer) from the caller's account to `to`'s:
    each rings the callee's offline phones with a visible push, so a stranger may
    ring someone only a few times a minute and an hour (RateLimited past either)."""
    key = f"{caller.user_id}:{to}"
    limiter.hit("ring-min", key, limit=limits.rings_to_user_per_minute, window_s=60, now=now)
    limiter.hit("ring-hour", key, limit=limits.rings_to_user_per_hour, window_s=3600, now=now)


def send(
    frame: SendFrame,
    caller: Caller,
    *,
    now: float,
    limits: Limits,
    directory: Directory[D],
    mailbox: MailboxPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    pusher: Pusher[D],
    limiter: LimiterPort,
) -> SendOutcome:
    """Store one envelope per recipient device and message, deliver to live
    connections, answer `sent`.

    A frame's messages (the first and its `more`) are stamped in the frame's order,
    stored, then posted in that order after one read of the devices and one of the
    connections; each device not reached live gets one wake-up push. An ephemeral send
    (call signalling, stored for its short `ttl` only, always alone in its frame) gets
    no push, since what lives seconds must not wake a phone, unless it rings: then a
    high-priority call push that lives as long."""
    if isinstance(frame, GroupSendFrame):
        # group sends are logic.group_fanout.send's: the WebSocket handler routes them there
        raise BadRequest("group messages are not supported yet", code="not_supported")
    messages = frame.messages
    count = len(messages)
    if count > limits.send_rate_per_s:
        # more than a second's budget could ever take: refused as too large, not
        # rate limited (waiting would not help); the SDK sends smaller frames
        raise PayloadTooLarge(
            f"one send carries at most {limits.send_rate_per_s} messages here",
            field="more",
            limit=limits.send_rate_per_s,
        )
    limit_send_rate(caller, limits=limits, limiter=limiter, now=now, messages=count)
    devices = _recipient_devices(frame.to, [m.payloads for m in messages], directory, caller)
    limit_mail_from_sender(
        caller, frame.to, limits=limits, limiter=limiter, now=now, messages=count
    )
    if frame.ring:
        limit_rings(caller, frame.to, limits=limits, limiter=limiter, now=now)

    nonce = _nonce()
    pending: dict[str, list[Envelope]] = {}
    stamps: list[tuple[str, int]] = []
    stored = duplicates = 0
    for step, message in enumerate(messages):
        ord_ = make_ord(now, nonce, step)
        expires_at = expiry(now, limits, message.ttl_s)
        times = []
        for device_id, body in message.payloads.items():
            envelope = MessageEnvelope(
                recipient=frame.to,
                recipient_device=device_id,
                sender=caller.user_id,
                sender_device=caller.device_id,
                client_id=message.client_id,
                body=body,
                ord=ord_,
                expires_at=expires_at,
            )
            existing = mailbox.put(envelope, now=now)
            if existing is None:
                stored += 1
            else:
                duplicates += 1
            # a retry delivers the pending original again: the first attempt may
            # have stopped between storing and delivering
            held = existing or envelope
            pending.setdefault(device_id, []).append(held)
            times.append(held.ts)
        stamps.append((message.client_id, min(times)))

    events = {
        device_id: [envelope.event() for envelope in envelopes]
        for device_id, envelopes in pending.items()
    }
    report = deliver_each(
        frame.to,
        lambda device_id: events.get(device_id, ()),
        now=now,
        connections=connections,
        gateway=gateway,
    )
    ring_ttl = frame.ttl_s if frame.ring else None
    pushed = call_pushes = 0
    for device in devices:
        if device.device_id in report.reached:
            continue
        if ring_ttl is not None:
            rang = pusher.ring(device, ring_ttl)
            pushed += rang
            call_pushes += rang
        elif not frame.ephemeral:
            pushed += pusher.notify(device)
    (first_id, first_ts), *rest = stamps
    return SendOutcome(
        event=sent_event(first_id, first_ts, rest),
        devices=len(devices),
        stored=stored,
        duplicates=duplicates,
        delivered=len(report.reached),
        pushed=pushed,
        gone=report.gone,
        call_pushes=call_pushes,
    )


def _recipient_devices(
    user_id: str, payloads: Sequence[Mapping[str, bytes]], directory: Directory[D], caller: Caller
) -> Sequence[D]:
    """The devices a 1:1 send must carry a payload for, in each of its messages. To
    oneself (what one device tells the account's others: a copy of what it sent, its
    group sender keys) they are the caller's other devices, perhaps none: then every
    payload is `extra`."""
    devices = directory.devices(user_id)
    if user_id == caller.user_id:
        devices = [d for d in devices if d.device_id != caller.device_id]
    elif not devices:
        raise NotFound("no such user", code="unknown_user", to=user_id)
    registered = {device.device_id for device in devices}
    for message in payloads:
        missing = registered - set(message)
        extra = set(message) - registered
        if missing or extra:
            raise MismatchedDevices(sorted(missing), sorted(extra))
    return devices


# -- sync -------------------------------------------------------------------------------


class SyncOutcome(msgspec.Struct, frozen=True):
    delivered: int
    more: bool
    gone: bool  # the caller's connection went away mid-sync
    oldest_ts: int | None = None  # server time (ms) of the oldest event delivered


def sync(
    frame: SyncFrame,
    caller: Caller,
    *,
    now: float,
    mailbox: MailboxPort,
    gateway: GatewayPort,
    page_size: int = SYNC_PAGE,
) -> SyncOutcome:
    """Post the next page of pending events to the caller, oldest first, then `synced`.

    A client that reads `batch` events (the frame says so) gets the page in as few
    posts as fit it, `synced` in the last: a backlog of 100 short messages is two
    billed WebSocket messages and two PostToConnection calls, not 101."""
    page = mailbox.page(
        caller.user_id, caller.device_id, after=frame.after, limit=page_size, now=now
    )
    more = page.next is not None
    done = synced_event(more, encode_cursor(page.next) if page.next is not None else None)
    # pages run oldest first, so the first event delivered is the oldest waiting
    oldest = page.envelopes[0].ts if page.envelopes else None
    events: list[Mapping[str, Any]] = [envelope.event() for envelope in page.envelopes]
    # where each event leaves the cursor (`synced`: nowhere)
    positions = iter([Position(e.ord, e.server_id) for e in page.envelopes] + [None])
    last = frame.after
    delivered = 0
    for run in batches([*events, done], together=frame.batch):
        ends = [next(positions) for _ in run]
        outcome = gateway.post(caller.connection, batch_event(run))
        if outcome is PostOutcome.GONE:
            left = more or delivered < len(events)
            return SyncOutcome(delivered, left, gone=True, oldest_ts=oldest)
        if outcome is PostOutcome.FAILED:
            if last is None or (len(run) == 1 and run[0] is done):
                # nothing got through, or only `synced` did not: without it the client
                # would wait for the page's end; the error has it sync again
                raise DependencyUnavailable("could not deliver; sync again")
            # resume right after the last event that did get through
            gateway.post(caller.connection, synced_event(True, encode_cursor(last)))
            return SyncOutcome(delivered, more=True, gone=False, oldest_ts=oldest)
        for end in ends:
            if end is not None:
                last = end
                delivered += 1
    return SyncOutcome(delivered, more, gone=False, oldest_ts=oldest)


# -- typing -----------------------------------------------------------------------------


def typing(
    frame: DirectTypingFrame,
    caller: Caller,
    *,
    now: float,
    connections: ConnectionsPort,
    gateway: GatewayPort,
) -> DeliveryReport:
    """Relay typing state to `to`'s live connections; nothing is stored.
    (A group's: logic.group_fanout.typing.)"""
    event = typing_event(caller.user_id, caller.device_id, frame.state)
    return deliver(
        frame.to,
        lambda _device_id: event,
        now=now,
        connections=connections,
        gateway=gateway,
        skip=caller.connection_id,
    )


# -- anything else ----------------------------------------------------------------------


def refuse_unknown(raw: Mapping[str, Any]) -> ParleyError:
    """The error for a JSON frame no route took: no `action`, or one we do not know."""
    action = raw.get("action")
    if not isinstance(action, str) or not action:
        return BadRequest("frame has no `action`", code="unknown_action", actions=sorted(ACTIONS))
    return BadRequest(
        f"unknown action {action[:40]!r}", code="unknown_action", actions=sorted(ACTIONS)
    )
