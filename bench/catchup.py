"""Catching up: a device that was offline while messages waited for it.

Two SDK clients (real sign-ups, X3DH and the Double Ratchet) on the local stack
(`python -m local` in a child process). Bob is offline while Alice sends him a
backlog (100 messages; 5 with --quick), one after another as the app sends them;
then Bob's client opens. Measured from that moment:

- when the last message of the backlog is shown (the sync pages, decryption and
  the store), and when Alice's client has every delivered tick (✓✓);
- how many posts Bob's client read until it had the backlog (each a PostToConnection
  and a billed WebSocket message on AWS: the sync pages come in `batch` events);
- how many `ack` frames Bob's client wrote for the backlog: each is a WsAck
  invocation, a billed WebSocket message and one read of the envelopes on AWS.

The same again with `ack_delay=0` (every ack at once, as the client acked before
it let acks wait for company) gives the comparison in the same run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Figure, print_table
from bench.sdk import on_a_local_stack, person
from local.testing import LocalStack
from parley import Client, MessageReceived, MessageState, ReceiptUpdate, relationships
from parley.endpoints import Endpoints
from parley.protocol import ACK_DELAY_S, Protocol

__all__ = ["main", "run"]

HOW = "2 SDK clients on the local stack, 2-core machine"
DELIVERED = MessageState.DELIVERED


@dataclass
class _Frames:
    """Frames by protocol (id): the acks each wrote, the posts each read."""

    acks: dict[int, int] = field(default_factory=dict)
    posts: dict[int, int] = field(default_factory=dict)


@contextmanager
def _frames() -> Iterator[_Frames]:
    """Count, while inside, the ack frames each protocol writes and the server's
    posts it reads (a `batch` of events is one)."""
    counts = _Frames()
    writes, reads = Protocol.data_to_send, Protocol.receive_data

    def counting_writes(proto: Protocol) -> list[list[str]]:
        frames = writes(proto)
        acks = sum(json.loads("".join(f)).get("action") == "ack" for f in frames)
        counts.acks[id(proto)] = counts.acks.get(id(proto), 0) + acks
        return frames

    def counting_reads(proto: Protocol, text: str | bytes) -> None:
        counts.posts[id(proto)] = counts.posts.get(id(proto), 0) + 1
        reads(proto, text)

    # methods, swapped for the run
    setattr(Protocol, "data_to_send", counting_writes)  # noqa: B010
    setattr(Protocol, "receive_data", counting_reads)  # noqa: B010
    try:
        yield counts
    finally:
        setattr(Protocol, "data_to_send", writes)  # noqa: B010
        setattr(Protocol, "receive_data", reads)  # noqa: B010


async def _catch_up(
    endpoints: Endpoints, home: Path, bob_id: str, backlog: int, ack_delay: float
) -> tuple[float, float, int, int]:
    """Seconds to show the backlog and to tick it all on the sender, Bob's ack frames,
    and the posts Bob read until he had it all."""
    alice = Client("alice", endpoints=endpoints, home=home, keyring=None)
    async with alice:
        alice_events = alice.events()
        sent = {
            (await alice.send(bob_id, f"while you were out {n}")).client_id for n in range(backlog)
        }
        async with asyncio.timeout(120):
            await alice.wait_outbox_empty()
        bob = Client("bob", endpoints=endpoints, home=home, keyring=None, ack_delay=ack_delay)
        with _frames() as counts:
            opened = time.perf_counter()
            async with bob:
                shown = 0
                async with asyncio.timeout(120):
                    async for event in bob.events():
                        shown += isinstance(event, MessageReceived)
                        if shown == backlog:
                            break
                    all_shown = time.perf_counter() - opened
                    posts = counts.posts[id(bob.protocol)]
                    ticked: set[str] = set()
                    async for event in alice_events:
                        if isinstance(event, ReceiptUpdate) and event.state is DELIVERED:
                            ticked |= {m.client_id for m in event.messages} & sent
                        if ticked == sent:
                            break
                    all_ticked = time.perf_counter() - opened
            frames = counts.acks[id(bob.protocol)]
    return all_shown, all_ticked, frames, posts


async def _measure(stack: LocalStack, home: Path, backlog: int) -> list[Figure]:
    alice_id = await person(stack, home, "alice", "+14155550111")
    bob_id = await person(stack, home, "bob", "+14155550112")
    endpoints = Endpoints.local(stack.local_file)
    for profile, other in (("alice", bob_id), ("bob", alice_id)):
        async with Client(
            profile, endpoints=endpoints, home=home, keyring=None, connect=False
        ) as app:
            app.store.contacts.add(other, None, None)
            relationships.accept(app.store, other)  # acquainted: acks tick
    # the first round pays for the session (X3DH) and the handlers' cold starts
    await _catch_up(endpoints, home, bob_id, 1, ACK_DELAY_S)
    shown, ticked, frames, posts = await _catch_up(endpoints, home, bob_id, backlog, ACK_DELAY_S)
    _, _, frames_at_once, _ = await _catch_up(endpoints, home, bob_id, backlog, 0.0)
    how = f"backlog of {backlog} 1:1 messages, from opening the client; {HOW}"
    return [
        Figure("catching up", f"backlog of {backlog}: all shown", shown, "s", how),
        Figure("catching up", f"backlog of {backlog}: sender has every ✓✓", ticked, "s", how),
        Figure(
            "catching up",
            f"backlog of {backlog}: posts read",
            posts,
            "posts",
            "each a PostToConnection and a billed WebSocket message on AWS; the sync pages "
            f"come in `batch` events (an event a post, as before: {backlog + 1})",
        ),
        Figure(
            "catching up",
            f"backlog of {backlog}: ack frames",
            frames,
            "frames",
            f"each a WsAck invocation and a billed WebSocket message (ack_delay {ACK_DELAY_S} s)",
        ),
        Figure(
            "catching up",
            f"backlog of {backlog}: ack frames, acking at once",
            frames_at_once,
            "frames",
            "the same with ack_delay=0: each message acked as soon as it is stored",
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    return on_a_local_stack(lambda stack, home: _measure(stack, home, backlog=5 if quick else 100))


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
