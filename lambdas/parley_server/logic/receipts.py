"""Receipt use cases: `ack` (delete what a device stored, and tell each sender
`delivered`) and `receipt` (a `read` tick to every device of a user).

Plain Python over the ports in logic/ports.py, like logic/messaging.py, whose
`deliver` posts the receipts to live connections.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence

import msgspec

from parley_server.config import Limits
from parley_server.logic.messaging import deliver, events_by_device
from parley_server.logic.ports import (
    Caller,
    ConnectionsPort,
    D,
    DeviceInfo,
    Directory,
    GatewayPort,
    LimiterPort,
    MailboxPort,
)
from parley_server.models.errors import NotFound, ParleyError
from parley_server.models.frames import (
    AckFrame,
    Envelope,
    MessageEnvelope,
    ReceiptEnvelope,
    ReceiptFrame,
    make_ord,
    us_of_ord,
)

__all__ = ["AckOutcome", "ReceiptOutcome", "ack", "limit_receipt_rate", "receipt"]


class ReceiptOutcome(msgspec.Struct, frozen=True):
    devices: int  # devices the receipt was stored for
    stored: int
    delivered: int
    gone: int


def _put_receipts(
    to: str,
    devices: Sequence[DeviceInfo],
    caller: Caller,
    status: str,
    ids: Sequence[str],
    *,
    now: float,
    limits: Limits,
    mailbox: MailboxPort,
    stored: list[Envelope] | None = None,
) -> tuple[dict[str, Envelope], int]:
    """One receipt in each mailbox of `to`'s devices (so ticks agree): the receipt
    each device now holds, by device id, and how many were new (each new one is
    also appended to `stored` as soon as it is written)."""
    ord_ = make_ord(now, secrets.token_hex(4))
    expires_at = int(now) + limits.mailbox_ttl_s
    pending: dict[str, Envelope] = {}
    new = 0
    for device in devices:
        envelope = ReceiptEnvelope(
            recipient=to,
            recipient_device=device.device_id,
            sender=caller.user_id,
            sender_device=caller.device_id,
            status=status,
            ids=tuple(ids),
            ord=ord_,
            expires_at=expires_at,
        )
        existing = mailbox.put(envelope, now=now)
        if existing is None:
            new += 1
            if stored is not None:
                stored.append(envelope)
        pending[device.device_id] = existing or envelope
    return pending, new


class AckOutcome(msgspec.Struct, frozen=True):
    messages: int  # message envelopes deleted
    receipts: int  # receipt envelopes deleted
    unknown: tuple[str, ...]  # ids with no pending envelope in the caller's mailbox
    delivered_receipts: tuple[ReceiptOutcome, ...]

    @property
    def error(self) -> ParleyError | None:
        """What to tell the caller about ids that matched nothing (None: all matched)."""
        if not self.unknown:
            return None
        return NotFound(
            "no pending envelope of yours has these ids", code="unknown_ids", ids=list(self.unknown)
        )


def _tell_delivered(
    sender: str,
    devices: Sequence[DeviceInfo],
    caller: Caller,
    client_ids: Sequence[str],
    *,
    now: float,
    limits: Limits,
    mailbox: MailboxPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
) -> ReceiptOutcome:
    """A `delivered` receipt in each mailbox of the sender's devices, posted live.

    If any of it fails, the receipts this call stored are taken back before the
    error goes up: the app acks again (after a sync hands the envelopes back), and
    the receipt is stored and posted afresh, perhaps naming another batch, rather
    than waiting unseen in the mailbox of a sender who is online.
    """
    stored: list[Envelope] = []
    try:
        pending, _ = _put_receipts(
            sender,
            devices,
            caller,
            "delivered",
            client_ids,
            now=now,
            limits=limits,
            mailbox=mailbox,
            stored=stored,
        )
        report = deliver(
            sender, events_by_device(pending), now=now, connections=connections, gateway=gateway
        )
    except ParleyError:
        for envelope in stored:
            with contextlib.suppress(ParleyError):  # best effort: a sync shows it otherwise
                mailbox.delete(
                    envelope.recipient, envelope.recipient_device, envelope.server_id, now=now
                )
        raise
    return ReceiptOutcome(len(pending), len(stored), len(report.reached), report.gone)


def ack(
    frame: AckFrame,
    caller: Caller,
    *,
    now: float,
    limits: Limits,
    directory: Directory[D],
    mailbox: MailboxPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
) -> AckOutcome:
    """Tell the sender of each acked message the frame names in `delivered` that it
    was delivered, then delete the envelopes. No other ack makes a receipt: whom a
    device's acks tick is the device's choice (not the sender's, nor the server's).

    The senders are told before anything is deleted: an ack that fails half way
    (a throttled write) is sent again by the app and finds its envelopes still
    waiting, so a delivered tick is never lost. A receipt told twice has the same
    id when it names the same messages (the id is derived from them), and is
    kept once.

    What is read first: an ack of one id reads it only if it may tick (a receipt
    acked, or a message acked without a tick, is just deleted, and the delete says
    what it was). An ack of several reads them all in one BatchGetItem and deletes
    what it found in one BatchWriteItem per 25, instead of a DeleteItem each.
    """
    # the keys name the caller's own mailbox: another device's envelope cannot
    # even be addressed, so a foreign id matches nothing
    ids = list(dict.fromkeys(frame.ids))
    read_all = len(ids) > 1
    to_read = ids if read_all else [sid for sid in ids if sid in frame.delivered]
    waiting = {}
    if to_read:
        waiting = mailbox.get_many(caller.user_id, caller.device_id, to_read, now=now)
    by_sender: dict[str, list[MessageEnvelope]] = {}
    for server_id, envelope in waiting.items():
        # what one's own other device sent needs no tick back: it is one's own
        if (
            server_id in frame.delivered
            and isinstance(envelope, MessageEnvelope)
            and envelope.sender != caller.user_id
        ):
            by_sender.setdefault(envelope.sender, []).append(envelope)
    told = []
    for sender, acked in by_sender.items():
        devices, moved_at = directory.devices_and_move(sender)
        # what was sent before the sender's number moved to a new phone is ticked
        # for nobody: the devices that sent it are signed out, and the new ones
        # (perhaps a new owner of the number) must not learn whom they wrote to
        client_ids = [e.client_id for e in acked if us_of_ord(e.ord) >= moved_at]
        if client_ids:
            told.append(
                _tell_delivered(
                    sender,
                    devices,
                    caller,
                    client_ids,
                    now=now,
                    limits=limits,
                    mailbox=mailbox,
                    connections=connections,
                    gateway=gateway,
                )
            )
    outcomes = tuple(told)
    unknown = [server_id for server_id in to_read if server_id not in waiting]
    messages = receipts = 0
    if read_all:
        mailbox.delete_many(caller.user_id, caller.device_id, list(waiting))
        messages = sum(isinstance(e, MessageEnvelope) for e in waiting.values())
        return AckOutcome(messages, len(waiting) - messages, tuple(unknown), outcomes)
    for server_id in ids:
        if server_id in to_read and server_id not in waiting:
            continue  # read above, and not there: unknown already
        deleted = mailbox.delete(caller.user_id, caller.device_id, server_id, now=now)
        if deleted is None:
            unknown.append(server_id)  # never there, or a concurrent ack took it
        elif isinstance(deleted, MessageEnvelope):
            messages += 1
        else:
            receipts += 1  # acking a receipt ends its life; nothing follows
    return AckOutcome(messages, receipts, tuple(unknown), outcomes)


def limit_receipt_rate(caller: Caller, *, limits: Limits, limiter: LimiterPort, now: float) -> None:
    """Count one read receipt of the caller's device, per second and per minute
    (RateLimited past either): each is a write to every device of its `to`."""
    device = f"{caller.user_id}#{caller.device_id}"
    limiter.hit("receipts-s", device, limit=limits.receipts_per_s, window_s=1, now=now)
    limiter.hit("receipts-min", device, limit=limits.receipts_per_minute, window_s=60, now=now)


def receipt(
    frame: ReceiptFrame,
    caller: Caller,
    *,
    now: float,
    limits: Limits,
    directory: Directory[D],
    mailbox: MailboxPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    limiter: LimiterPort,
) -> ReceiptOutcome:
    """Store a `read` receipt for every device of `to` and deliver it where online.

    Ids whose `sent` time is before `to`'s number moved to a new phone are left out
    (the devices that sent them are signed out; the new phone, perhaps a new owner
    of the number, must not learn who wrote with the old one): a receipt left with
    none is stored for nobody."""
    limit_receipt_rate(caller, limits=limits, limiter=limiter, now=now)
    devices, moved_at = directory.devices_and_move(frame.to)
    if not devices:
        raise NotFound("no such user", code="unknown_user", to=frame.to)
    ids = frame.ids
    if frame.sent is not None:
        # ms * 1000 is at most the message's microsecond stamp: nothing sent before
        # the move passes, whatever its sub-millisecond part
        ids = tuple(i for i, ts in zip(frame.ids, frame.sent, strict=True) if ts * 1000 >= moved_at)
        if not ids:
            return ReceiptOutcome(0, 0, 0, 0)
    pending, stored = _put_receipts(
        frame.to, devices, caller, frame.status, ids, now=now, limits=limits, mailbox=mailbox
    )
    report = deliver(
        frame.to, events_by_device(pending), now=now, connections=connections, gateway=gateway
    )
    return ReceiptOutcome(len(pending), stored, len(report.reached), report.gone)
