"""Group messages: the fan-out of one sender-key ciphertext to every member device,
and typing state relayed to the members online.

A message for a small group is stored and delivered inline by `send`; for a
larger one, `send` stamps it, splits the members into slices and queues one
job per slice; the GroupFanout function runs `fan_out` on each job. Plain
Python over small ports (store/groups.py satisfies them); time comes in as `now`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from parley_server.config import Limits
from parley_server.logic.messaging import DeliveryReport, deliver, expiry, limit_send_rate
from parley_server.logic.ports import (
    Caller,
    ConnectionsPort,
    D,
    Directory,
    GatewayPort,
    LimiterPort,
    Pusher,
)
from parley_server.models.errors import BadRequest, Conflict, NotFound
from parley_server.models.frames import (
    GroupSendFrame,
    GroupTypingFrame,
    MessageEnvelope,
    make_ord,
    ms_of_ord,
    sent_event,
    typing_event,
)
from parley_server.models.groups import FanoutJob, Roster

__all__ = [
    "CHUNK_MEMBERS",
    "INLINE_MEMBERS",
    "TYPING_MEMBERS",
    "EnvelopesPort",
    "FanoutOutcome",
    "FanoutQueuePort",
    "GroupSendOutcome",
    "RosterPort",
    "fan_out",
    "send",
    "typing",
]

# Members a send fans out to inline; larger groups go through the queue. Inline
# work is two Queries per member (devices, connections) plus batched writes:
# ~32 members stay well under a second and far from API Gateway's 29 s.
INLINE_MEMBERS = 32
# Typing is relayed in groups up to this size: one Query per member for their
# connections, for something sent every few seconds and never stored.
TYPING_MEMBERS = 32
# Members per queued job: ~100 Queries and a few batch writes per job, a second
# or two of work; a 1024-member group is 21 jobs processed in parallel.
CHUNK_MEMBERS = 50


class RosterPort(Protocol):
    def roster(self, group_id: str) -> Roster | None: ...


class EnvelopesPort(Protocol):
    def write(self, envelopes: Sequence[MessageEnvelope]) -> int: ...


class FanoutQueuePort(Protocol):
    def enqueue(self, jobs: Sequence[FanoutJob]) -> int: ...


class FanoutOutcome(msgspec.Struct, frozen=True):
    """What one fan-out (inline or one queued job) did."""

    members: int
    devices: int  # envelopes written
    delivered: int  # devices reached on a live connection
    pushed: int
    gone: int
    writes: int  # BatchWriteItem calls


class GroupSendOutcome(msgspec.Struct, frozen=True):
    event: dict[str, Any]  # the `sent` answer
    members: int
    jobs: int  # queued jobs (0: fanned out inline)
    fanout: FanoutOutcome | None  # the inline fan-out, if it was inline


def _not_yours() -> NotFound:
    # one answer for a group that does not exist and one the caller is not in: a
    # non-member learns nothing, not even that the group exists
    return NotFound("no such group, or you are not a member of it")


def send(
    frame: GroupSendFrame,
    caller: Caller,
    *,
    now: float,
    limits: Limits,
    roster: RosterPort,
    limiter: LimiterPort,
    directory: Directory[D],
    envelopes: EnvelopesPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    pusher: Pusher[D],
    queue: Callable[[], FanoutQueuePort],
    inline_members: int = INLINE_MEMBERS,
    chunk_members: int = CHUNK_MEMBERS,
) -> GroupSendOutcome:
    """Accept one sender-key ciphertext for a group; fan it out now or through the queue."""
    group_id = frame.group_id
    limit_send_rate(caller, limits=limits, limiter=limiter, now=now)
    found = roster.roster(group_id)
    if found is None or caller.user_id not in found.members:
        raise _not_yours()
    if frame.version is not None and frame.version != found.version:
        raise Conflict(
            "the group changed: refresh it (and your sender key) and send again",
            code="stale_group",
            version=found.version,
        )
    members = tuple(sorted(found.members))
    job = FanoutJob(
        group_id=group_id,
        sender=caller.user_id,
        sender_device=caller.device_id,
        client_id=frame.client_id,
        body=frame.body,
        ord=make_ord(now, secrets.token_hex(4)),
        expires_at=expiry(now, limits, frame.ttl_s),
        members=members,
    )
    event = sent_event(frame.client_id, ms_of_ord(job.ord))
    if len(members) <= inline_members:
        outcome = fan_out(
            job,
            now=now,
            directory=directory,
            envelopes=envelopes,
            connections=connections,
            gateway=gateway,
            pusher=pusher,
        )
        return GroupSendOutcome(event, len(members), 0, outcome)
    jobs = [
        msgspec.structs.replace(job, members=members[start : start + chunk_members], chunk=index)
        for index, start in enumerate(range(0, len(members), chunk_members))
    ]
    queue().enqueue(jobs)
    return GroupSendOutcome(event, len(members), len(jobs), None)


def fan_out(
    job: FanoutJob,
    *,
    now: float,
    directory: Directory[D],
    envelopes: EnvelopesPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    pusher: Pusher[D],
) -> FanoutOutcome:
    """Store an envelope per device of the job's members, then deliver or push.

    Every device of every member gets one, the sender's other devices too; the
    sending device does not. Envelopes are written before anything is posted,
    so an ack can never arrive for an envelope that is not stored yet.
    """
    if job.expires_at <= now:
        return FanoutOutcome(len(job.members), 0, 0, 0, 0, 0)  # too late to matter
    targets: dict[str, list[D]] = {}
    batch: list[MessageEnvelope] = []
    for member in job.members:
        devices = [
            d
            for d in directory.devices(member)
            if not (member == job.sender and d.device_id == job.sender_device)
        ]
        if not devices:
            continue
        targets[member] = devices
        batch.extend(
            MessageEnvelope(
                recipient=member,
                recipient_device=device.device_id,
                sender=job.sender,
                sender_device=job.sender_device,
                client_id=job.client_id,
                body=job.body,
                ord=job.ord,
                expires_at=job.expires_at,
                group=job.group_id,
            )
            for device in devices
        )
    writes = envelopes.write(batch) if batch else 0
    events: dict[str, dict[str, Mapping[str, Any]]] = {}
    for envelope in batch:
        events.setdefault(envelope.recipient, {})[envelope.recipient_device] = envelope.event()
    delivered = pushed = gone = 0
    for member, devices in targets.items():
        report = deliver(
            member, events[member].get, now=now, connections=connections, gateway=gateway
        )
        delivered += len(report.reached)
        gone += report.gone
        pushed += sum(
            1
            for device in devices
            if device.device_id not in report.reached and pusher.notify(device)
        )
    return FanoutOutcome(len(job.members), len(batch), delivered, pushed, gone, writes)


def typing(
    frame: GroupTypingFrame,
    caller: Caller,
    *,
    now: float,
    roster: RosterPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    max_members: int = TYPING_MEMBERS,
) -> DeliveryReport:
    """Relay typing state to the live connections of every other member of a
    group (not to the caller's own other devices); nothing is stored."""
    group_id = frame.group_id
    found = roster.roster(group_id)
    if found is None or caller.user_id not in found.members:
        raise _not_yours()
    if len(found.members) > max_members:
        raise BadRequest(
            f"typing is relayed in groups of up to {max_members} members",
            code="group_too_large",
            limit=max_members,
        )
    event = typing_event(caller.user_id, caller.device_id, frame.state, group=group_id)
    reached: set[str] = set()
    posts = gone = 0
    for member in found.members:
        if member == caller.user_id:
            continue
        report = deliver(
            member, lambda _device_id: event, now=now, connections=connections, gateway=gateway
        )
        reached |= {f"{member}/{device}" for device in report.reached}
        posts += report.posts
        gone += report.gone
    return DeliveryReport(frozenset(reached), posts, gone)
