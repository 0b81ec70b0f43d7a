"""Calls: set-up time, audio bitrate and packet loss, on loopback.

Two SDK clients (real sign-ups, X3DH and the Double Ratchet) on the local stack
(`python -m local` in a child process); the callee accepts as soon as it rings.
The media is aiortc's WebRTC on 127.0.0.1 (the local stack answers "loopback"
for ICE servers), so these figures are the client's and the signalling's, with
no network in the way:

- set-up: from the caller's `call()` (fetch ICE servers, gather, seal and send
  the offer) to the first audio frame the caller hears; split into the
  signalling (until the answer is in) and the media (ICE and DTLS, then RTP);
- over a call of 30 s (3 s with --quick) of a 440 Hz tone each way: the Opus
  bitrate the caller sends (RTP payload), the share of packets lost, and RTCP's
  round-trip time.

What a minute of a relayed call costs on AWS is bench/cost.py's (TURN minutes).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from bench.report import Figure, print_table
from bench.sdk import on_a_local_stack, person
from local.testing import LocalStack
from parley import Client, IncomingCall
from parley.calling.audio import Capture, Tone
from parley.endpoints import Endpoints
from parley.models import CallState

__all__ = ["main", "run"]

HOW = "2 SDK clients on the local stack, media on loopback, 2-core machine"


async def _answer_every_call(callee: Client) -> None:
    async for event in callee.events():
        if isinstance(event, IncomingCall):
            await event.call.accept(audio=Tone(660))


async def _measure(stack: LocalStack, home: Path, calls: int, seconds: float) -> list[Figure]:
    alice_id = await person(stack, home, "alice", "+14155550101")
    bob_id = await person(stack, home, "bob", "+14155550102")
    endpoints = Endpoints.local(stack.local_file)
    alice = Client("alice", endpoints=endpoints, home=home, keyring=None)
    bob = Client("bob", endpoints=endpoints, home=home, keyring=None)
    async with alice, bob:
        for app, other in ((alice, bob_id), (bob, alice_id)):
            await app.wait_synced()
            app.store.contacts.add(other, None, None)
        answering = asyncio.create_task(_answer_every_call(bob))
        setups: list[float] = []
        signalling: list[float] = []
        try:
            # the first call pays for sessions (X3DH) and the handlers' cold starts
            for n in range(calls + 1):
                hears = Capture()
                started = time.perf_counter()
                call = await alice.call(bob_id, audio=Tone(440), sink=hears)
                async with asyncio.timeout(30):
                    await call.wait_state(CallState.CONNECTING, CallState.CONNECTED)
                    answered = time.perf_counter()
                    await hears.received.wait()
                heard = time.perf_counter()
                if n:
                    setups.append(heard - started)
                    signalling.append(answered - started)
                if n < calls:
                    await call.hangup()
                    await call.wait_ended()
            # the last call stays up to measure the media
            await call.stats()
            first = await call.stats()
            await asyncio.sleep(seconds)
            last = await call.stats()
            assert first is not None
            assert last is not None
            await call.hangup()
        finally:
            answering.cancel()
    sent_kbps = (last.bytes_sent - first.bytes_sent) * 8 / seconds / 1000
    received = last.packets_received - first.packets_received
    lost = last.packets_lost - first.packets_lost
    setup_ms = statistics.median(setups) * 1000
    signalling_ms = statistics.median(signalling) * 1000
    return [
        Figure(
            "calls",
            "set-up, call() to first audio heard",
            setup_ms,
            "ms",
            f"median of {calls}; {HOW}",
        ),
        Figure(
            "calls",
            "  of which signalling (offer to answer)",
            signalling_ms,
            "ms",
            "relays fetch, gathering, offer and answer through the service",
        ),
        Figure(
            "calls",
            "  of which media (ICE, DTLS, first RTP)",
            setup_ms - signalling_ms,
            "ms",
            "after the answer is in",
        ),
        Figure(
            "calls",
            "audio bitrate sent (Opus)",
            sent_kbps,
            "kbit/s",
            f"RTP payload over {seconds:.0f} s",
        ),
        Figure(
            "calls",
            "packet loss",
            100 * lost / max(1, received + lost),
            "%",
            f"of the callee's audio packets over {seconds:.0f} s (loopback)",
        ),
        Figure(
            "calls",
            "round-trip time",
            last.rtt_ms or 0.0,
            "ms",
            "RTCP receiver reports (loopback)",
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    return on_a_local_stack(
        lambda stack, home: _measure(
            stack, home, calls=1 if quick else 5, seconds=3 if quick else 30
        )
    )


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
