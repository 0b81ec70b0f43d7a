"""Chaos delivery: many devices talking at once through a local stack whose
handlers suffer injected faults (local/faults.py), while the devices themselves
drop their connections and restart without warning.

Each device is the client SDK's sans-I/O `Protocol` over a websockets
connection, with what an app keeps on disk (`Disk`): messages shown, what it
has sent and not yet had accepted, ticks. A restart throws away everything in
memory and rebuilds from the disk, as an app killed by the OS does. Afterwards
`Ledger` holds what happened, and `verdict()` says what was lost, shown twice,
shown out of order or never ticked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from parley.protocol import (
    DevicesMismatched,
    IncomingMessage,
    IncomingReceipt,
    OutboxEntry,
    Protocol,
    SendAccepted,
    SendRejected,
    ServerError,
    SyncComplete,
)
from parley.transport import Backoff
from tests.reliability.stack import Account, Stack

__all__ = ["ChaosPlan", "Device", "Ledger", "run_chaos"]

log = logging.getLogger("chaos")

SYNC_WATCHDOG_S = 8.0  # a sync unanswered this long is asked again
IN_FLIGHT = 3  # messages a device has handed to the protocol and not yet had accepted
RECEIPT_ACK_WAIT_S = 2.0  # at most, for the ack of a receipt (the SDK: 300 s)


@dataclass(frozen=True)
class ChaosPlan:
    messages: int  # in all, spread over the devices
    # mean number of messages accepted (across all devices) between two chaos events,
    # each a device's connection dropped or the app restarted: counted in messages, not
    # seconds, so a run meets as much chaos per message on a slow machine as on a fast one
    accepted_per_event: float
    restart_share: float  # of those events, the share that are restarts
    deadline_s: float  # guard: the whole run may not take longer
    group_every: int = 0  # one message in this many goes to the sender's group (0: none)
    seed: int = 7
    progress_every_s: float = 0.0  # a progress line on stderr this often (0: none)


@dataclass
class Disk:
    """What survives a restart (an app's database)."""

    outbox: dict[str, OutboxEntry] = field(default_factory=dict)  # not yet accepted, in order
    seen: set[tuple[str, str]] = field(default_factory=set)  # (sender, client id) stored


@dataclass
class Ledger:
    """Everything every device did and saw, for the verdict.

    A conversation is a recipient's user id or "g:<group id>"; `audience` says who
    must see a conversation's messages (the recipient, or every other member)."""

    audience: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    sent_order: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    accepted: dict[str, int] = field(default_factory=dict)  # client id -> ts of `sent`
    shown: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    arrivals: dict[tuple[str, str, str], list[str]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # sender -> (who ticked it, client id)
    delivered: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    rejected: list[tuple[str, str]] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # set each time a send is accepted (the chaos counts them)
    progressed: asyncio.Event = field(default_factory=asyncio.Event)

    def verdict(self) -> dict[str, int]:
        """Counts of what went wrong (all must be 0) and of what was done."""
        lost = duplicated = reordered = unticked = shown_copies = 0
        for (sender, conversation), order in self.sent_order.items():
            for recipient in self.audience[(sender, conversation)]:
                arrived = self.arrivals.get((recipient, sender, conversation), [])
                first = {cid: i for i, cid in reversed(list(enumerate(arrived)))}
                shown_at: list[tuple[int, int]] = []
                for client_id in order:
                    copies = self.shown.get((recipient, f"{sender}/{client_id}"), [])
                    if not copies:
                        lost += client_id in self.accepted
                        continue
                    shown_copies += 1
                    duplicated += len(copies) - 1
                    shown_at.append((copies[0], first[client_id]))
                    if (recipient, client_id) not in self.delivered[sender]:
                        unticked += 1
                # a conversation is shown by time, and what shares a millisecond (the
                # messages of one frame) in the order it came: each after the one before
                reordered += sum(1 for a, b in itertools.pairwise(shown_at) if b <= a)
        overtaken = 0
        for (_, sender, conversation), arrived in self.arrivals.items():
            position = {cid: i for i, cid in enumerate(self.sent_order[(sender, conversation)])}
            ranks = [position[c] for c in arrived if c in position]
            overtaken += sum(1 for a, b in itertools.pairwise(ranks) if b < a)
        groups = sum(len(o) for (_, c), o in self.sent_order.items() if c.startswith("g:"))
        return {
            "messages sent": sum(len(o) for o in self.sent_order.values()),
            "of which to groups": groups,
            "accepted (sent)": len(self.accepted),
            "copies shown (one per recipient)": shown_copies,
            "lost": lost,
            "shown twice": duplicated,
            "shown out of order": reordered,
            "without a delivered tick": unticked,
            "refused for good": len(self.rejected),
            "arrived ahead of an older one (put right by ts)": overtaken,
        }


class Device:
    """One app on one phone: a Protocol, its disk, and a connection loop."""

    def __init__(self, account: Account, stack: Stack, ledger: Ledger, rng: random.Random) -> None:
        self.account = account
        self.stack = stack
        self.ledger = ledger
        self.rng = rng
        self.disk = Disk()
        # (conversation, recipient device ids, client id), in send order
        self.script: list[tuple[str, list[str], str]] = []
        self.proto = self._fresh_protocol()
        self.synced_at: float | None = None
        self.sync_asked = 0.0
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- the app ------------------------------------------------------------------------

    def _fresh_protocol(self) -> Protocol:
        proto = Protocol(
            is_seen=lambda sender, cid: (sender, cid) in self.disk.seen,
            # everyone here talks to people they know: every ack ticks
            ticks=lambda _message: True,
            # a send unanswered for the SDK's own 30 s goes again (same client id); a
            # shorter wait resent what a loaded stack was still working on: at soak
            # size (150 sends in flight, 13 accepted a second) a third of the sends
            # were such copies, and the copies slowed the stack further
            # A receipt's ack waits for the next ack frame, as the SDK's does, but at
            # most 2 s, not its 300: the calm after the run waits 60 s for every
            # mailbox to empty with the devices connected (an ack lost to a fault
            # comes right by a sync and the acks of the copies, each of them waiting
            # too).
            receipt_ack_delay=RECEIPT_ACK_WAIT_S,
        )
        for entry in self.disk.outbox.values():
            proto.send(entry)  # what was written and not yet accepted goes again
        return proto

    def queue_next(self) -> None:
        """Hand the protocol the next scripted messages, a few in flight at a time."""
        while self.script and len(self.disk.outbox) < IN_FLIGHT:
            conversation, device_ids, client_id = self.script.pop(0)

            def ciphertext() -> str:
                return base64.b64encode(self.rng.randbytes(self.rng.randint(16, 400))).decode()

            if conversation.startswith("g:"):  # one sender-key ciphertext for the group
                entry = OutboxEntry(client_id=client_id, to=conversation, body=ciphertext())
            else:
                payloads = {device_id: ciphertext() for device_id in device_ids}
                entry = OutboxEntry(client_id=client_id, to=conversation, payloads=payloads)
            self.disk.outbox[client_id] = entry
            self.ledger.sent_order[(self.account.user_id, conversation)].append(client_id)
            self.proto.send(entry)
        self._wake.set()

    def _handle(self, event: Any) -> None:
        ledger, me = self.ledger, self.account.user_id
        if isinstance(event, IncomingMessage):
            key = (event.sender, event.client_id)
            ledger.shown[(me, f"{event.sender}/{event.client_id}")].append(event.ts)
            conversation = f"g:{event.group}" if event.group else me
            ledger.arrivals[(me, event.sender, conversation)].append(event.client_id)
            self.disk.seen.add(key)  # stored, then acked
            self.proto.message_stored(event)
        elif isinstance(event, IncomingReceipt):
            if event.status == "delivered":
                ledger.delivered[me].update((event.sender, cid) for cid in event.client_ids)
            self.proto.receipt_stored(event)
        elif isinstance(event, SendAccepted):
            ledger.accepted[event.entry.client_id] = event.ts
            ledger.progressed.set()
            self.disk.outbox.pop(event.entry.client_id, None)
            self.queue_next()
        elif isinstance(event, SendRejected):
            if event.retry_after is None:
                ledger.rejected.append((event.entry.client_id, event.code))
                self.disk.outbox.pop(event.entry.client_id, None)
                self.queue_next()
        elif isinstance(event, DevicesMismatched):
            ledger.rejected.append((event.entry.client_id, "mismatched_devices"))
        elif isinstance(event, SyncComplete):
            self.synced_at = time.monotonic()
        elif isinstance(event, ServerError):
            ledger.events[f"error event {event.code}"] += 1

    # -- the connection ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() rather than `await task`: a cancellation of the caller itself
            # must not be mistaken for the task's and swallowed
            done, _ = await asyncio.wait([task], timeout=15.0)
            if not done:
                self.ledger.events["device loop slow to stop"] += 1

    def drop(self) -> None:
        """The network goes away mid-stream: no close handshake."""
        ws = self._ws
        if ws is not None and ws.transport is not None:
            self.ledger.events["connections dropped"] += 1
            ws.transport.abort()

    async def restart(self) -> None:
        """The app is killed and started again: memory is gone, the disk is not."""
        self.ledger.events["apps restarted"] += 1
        ws = self._ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()  # killed: no goodbye to the server
        await self.stop()
        self.proto = self._fresh_protocol()
        self.start()

    async def _run(self) -> None:
        # as the SDK's transport: exponential backoff with full jitter between
        # attempts, back to the start once a handshake succeeds
        backoff = Backoff(rng=self.rng.uniform)
        while True:
            try:
                await self._serve_once(backoff)
            except InvalidStatus as exc:
                status = exc.response.status_code
                self.ledger.events[f"connections refused ({status})"] += 1
                if status == 401:  # the access token ran out (15 minutes): refresh it
                    await self._refresh_token()
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed):
                self.ledger.events["connections refused or lost"] += 1
            except Exception as exc:  # a bug of this driver: counted, and the app goes on
                self.ledger.events[f"device loop failed: {type(exc).__name__}: {exc}"] += 1
                log.exception("device loop failed")
            await asyncio.sleep(backoff.next_delay())

    async def _refresh_token(self) -> None:
        """A new access token for the device, as the SDK gets one (a refusal, a
        throttle among them, is counted and left to the next attempt)."""
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                self.stack.http_url + "/v1/auth/refresh",
                json={"refresh_token": self.account.refresh_token},
            ) as r,
        ):
            if r.status != 200:
                self.ledger.events[f"token refreshes refused ({r.status})"] += 1
                return
            tokens = await r.json()
        self.account.access_token = tokens["access_token"]
        self.account.refresh_token = tokens.get("refresh_token", self.account.refresh_token)
        self.ledger.events["tokens refreshed"] += 1

    async def _serve_once(self, backoff: Backoff) -> None:
        url = f"{self.stack.ws_url}?token={self.account.access_token}"
        async with connect(url, proxy=None, compression=None, open_timeout=10) as ws:
            backoff.reset()
            self._ws = ws
            self.proto.connection_made()
            self.synced_at = None
            self.sync_asked = time.monotonic()
            writer = asyncio.get_running_loop().create_task(self._writer(ws))
            try:
                await self._reader(ws)
            finally:
                writer.cancel()
                await asyncio.wait([writer])  # (not `await writer`: see stop())
                self._ws = None
                self.proto.connection_lost()

    async def _reader(self, ws: ClientConnection) -> None:
        while True:
            deadline = self.proto.next_deadline()
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancellation that lands as recv() completes, and stop() then hangs
                async with asyncio.timeout(timeout):
                    data = await ws.recv()
            except TimeoutError:
                self.proto.handle_timeout()
                self._watch_sync()
                self._wake.set()
                continue
            self.proto.receive_data(data)
            for event in self.proto.events_received():
                self._handle(event)
            self._watch_sync()
            self._wake.set()

    def _watch_sync(self) -> None:
        # A sync answered by no `synced` (its handler failed past the error event)
        # is asked again, as an app would on a timer.
        if self.synced_at is None and time.monotonic() - self.sync_asked > SYNC_WATCHDOG_S:
            self.ledger.events["syncs asked again"] += 1
            self.sync_asked = time.monotonic()
            self.proto.request_sync()

    async def _writer(self, ws: ClientConnection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for frame in self.proto.data_to_send():
                await ws.send(frame[0] if len(frame) == 1 else iter(frame))


async def run_chaos(
    stack: Stack,
    accounts: list[Account],
    plan: ChaosPlan,
    groups: dict[str, list[Account]] | None = None,
) -> tuple[Ledger, list[Device]]:
    """Every account sends its share of `plan.messages` to the others (one in
    `plan.group_every` to its group, if it is in one) while the devices drop and
    restart; then calm, until everything is delivered and ticked."""
    rng = random.Random(plan.seed)
    ledger = Ledger()
    devices = [Device(a, stack, ledger, random.Random(rng.random())) for a in accounts]
    group_of = {m.user_id: gid for gid, members in (groups or {}).items() for m in members}
    counters: dict[tuple[int, str], int] = defaultdict(int)
    for n in range(plan.messages):
        i = n % len(devices)
        me = accounts[i]
        gid = group_of.get(me.user_id)
        if gid is not None and plan.group_every and (n // len(devices)) % plan.group_every == 0:
            conversation = f"g:{gid}"
            audience = [m.user_id for m in (groups or {})[gid] if m.user_id != me.user_id]
            device_ids: list[str] = []
        else:
            j = rng.choice([k for k in range(len(devices)) if k != i])
            conversation, audience = accounts[j].user_id, [accounts[j].user_id]
            device_ids = [accounts[j].device_id]
        ledger.audience[(me.user_id, conversation)] = audience
        counters[(i, conversation)] += 1
        client_id = f"c{i}to{conversation[:10].replace(':', '')}n{counters[(i, conversation)]}"
        devices[i].script.append((conversation, device_ids, client_id))
    for device in devices:
        device.start()
        device.queue_next()

    deadline = time.monotonic() + plan.deadline_s
    loop = asyncio.get_running_loop()
    chaos = loop.create_task(_make_chaos(devices, ledger, plan, rng))
    progress = loop.create_task(_report_progress(ledger, plan)) if plan.progress_every_s else None
    try:
        await _until(lambda: all(not d.script and not d.disk.outbox for d in devices), deadline)
    finally:
        chaos.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chaos
    try:
        # calm: connections stay up, the server's faults go on
        await settle(devices, lambda: _all_delivered(ledger), deadline - time.monotonic())
    finally:
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
    return ledger, devices


def progress_line(
    ledger: Ledger, plan: ChaosPlan, elapsed_s: float, last: tuple[float, int]
) -> str:
    """One line of a long run's progress: how far it is, and its pace since `last`
    (elapsed seconds and messages accepted then)."""
    accepted = len(ledger.accepted)
    shown = sum(len(ids) for ids in ledger.arrivals.values())
    ticked = sum(len(ticks) for ticks in ledger.delivered.values())
    then_s, then_accepted = last
    pace = (accepted - then_accepted) / max(elapsed_s - then_s, 1e-9)
    return (
        f"chaos {elapsed_s:6.0f} s: {accepted}/{plan.messages} accepted ({pace:.1f}/s lately), "
        f"{shown} shown, {ticked} ticked, {ledger.events.get('connections dropped', 0)} drops, "
        f"{ledger.events.get('apps restarted', 0)} restarts"
    )


async def _report_progress(ledger: Ledger, plan: ChaosPlan) -> None:
    """A line on stderr every `plan.progress_every_s` (`make soak` shows them): a
    long run that is stopped still says how far it got and how fast."""
    started = time.monotonic()
    last = (0.0, 0)
    while True:
        await asyncio.sleep(plan.progress_every_s)
        elapsed = time.monotonic() - started
        print(progress_line(ledger, plan, elapsed, last), file=sys.stderr, flush=True)
        last = (elapsed, len(ledger.accepted))


async def settle(devices: list[Device], done: Any, deadline_s: float) -> None:
    """Until `done()` (or the guard): the devices stay connected and do nothing
    but what their protocol does; whatever a fault left waiting must come right
    by itself."""
    deadline = time.monotonic() + deadline_s
    while not await asyncio.to_thread(done):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.5)


def _all_delivered(ledger: Ledger) -> bool:
    for (sender, conversation), order in ledger.sent_order.items():
        for client_id in order:
            if client_id not in ledger.accepted:
                continue
            for recipient in ledger.audience[(sender, conversation)]:
                if not ledger.shown.get((recipient, f"{sender}/{client_id}")):
                    return False
                if (recipient, client_id) not in ledger.delivered[sender]:
                    return False
    return True


async def _until(done: Any, deadline: float) -> None:
    while not done():
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)


async def _make_chaos(
    devices: list[Device], ledger: Ledger, plan: ChaosPlan, rng: random.Random
) -> None:
    """Now and then, some device loses its connection or is restarted: on average
    once every `plan.accepted_per_event` messages accepted.

    Counting messages rather than seconds keeps the chaos a run meets per message
    the same however fast the machine is. Drops on a clock outran a loaded two-core
    machine: a device dropped every 6 s, a send waited longer than that for its
    answer, every drop sent its unanswered messages again, and the copies slowed the
    stack further until almost nothing was accepted (docs/RELIABILITY.md)."""
    due = 0.0
    while True:
        due += rng.expovariate(1.0 / plan.accepted_per_event)
        while len(ledger.accepted) < due:
            ledger.progressed.clear()
            await ledger.progressed.wait()
        device = rng.choice(devices)
        if rng.random() < plan.restart_share:
            await device.restart()
        else:
            device.drop()
