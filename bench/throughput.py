"""Local-stack throughput and send-to-receive latency with concurrent WebSocket clients.

`python -m local --port 0` runs in a child process (the service, its handlers and
moto), and this process runs the clients: real sign-ups (code from the SMS sink,
then `PUT /v1/keys` so the device is visible to senders) and raw WebSocket
connections speaking the wire protocol. Bodies are random base64: the server
never reads them, so no end-to-end crypto is needed to load it.

Once every client is connected, each sends its messages one after another, each
to a random other client, waiting for `sent` before the next (as a client does
within a conversation). Every `message` is acked at once, and so is every
`delivered` receipt that comes back, so each message makes the full round:
send, live delivery, ack, receipt, receipt ack. Latency is from just before the
sender writes the frame to the moment the recipient reads the `message` (one
clock: both ends are in this process). Throughput is messages delivered per
second, from the first send to the last delivery.

The figures are for this machine running the clients, the gateway emulator,
the handlers and moto together; they compare runs and changes, not AWS. The
local stack runs each function in up to PARLEY_LOCAL_CONCURRENCY execution
environments (processes, 4 by default; local/environments.py), as Lambda scales
a function out, so throughput here is bound by CPU, about half of it moto's
process's (moto answering every AWS call of every handler, about 13 per message, in
one interpreter, with waitress) and half the environments' (botocore building and
parsing those calls); the stack process (the gateway) takes little. See
docs/ARCHITECTURE.md, "The local stack".
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect

from bench.report import Figure, print_table
from local.testing import LocalStack, running_local_stack
from tests.device_lists import first_list

__all__ = ["Load", "main", "run"]

# The service allows 20 codes per source address an hour (SMS pumping); the clients
# sign up from several loopback addresses, as that many phones would from theirs.
_SIGNUPS_PER_ADDRESS = 10
_SIGNUP_CONCURRENCY = 5
CIPHERTEXT_BYTES = 256  # a short text message after Double Ratchet encryption


@dataclass(frozen=True)
class Load:
    """How much traffic one run makes, and how long it may take at most."""

    clients: int
    messages_per_client: int
    time_limit_s: float

    @property
    def messages(self) -> int:
        return self.clients * self.messages_per_client


FULL = Load(clients=50, messages_per_client=20, time_limit_s=240.0)
QUICK = Load(clients=4, messages_per_client=3, time_limit_s=60.0)
# two clients trading messages: latency without queueing behind other senders
LIGHT = Load(clients=2, messages_per_client=25, time_limit_s=60.0)
LIGHT_QUICK = Load(clients=2, messages_per_client=3, time_limit_s=30.0)


@dataclass(frozen=True)
class _Account:
    user_id: str
    device_id: str
    token: str


@dataclass
class _Tally:
    """What the clients saw, shared by all of them (one event loop, no locks needed)."""

    expected: int
    written_at: dict[str, float] = field(default_factory=dict)  # client id -> send time
    latencies: list[float] = field(default_factory=list)  # send -> recipient reads it
    answered: list[float] = field(default_factory=list)  # send -> `sent`
    receipts: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    first_send: float | None = None
    last_delivery: float = 0.0
    all_delivered: asyncio.Event = field(default_factory=asyncio.Event)
    all_receipted: asyncio.Event = field(default_factory=asyncio.Event)

    def delivered(self, client_id: str, now: float) -> None:
        sent = self.written_at.get(client_id)
        if sent is None:
            return  # a redelivery of one already counted
        del self.written_at[client_id]
        self.latencies.append(now - sent)
        self.last_delivery = now
        if len(self.latencies) == self.expected:
            self.all_delivered.set()

    def receipted(self) -> None:
        self.receipts += 1
        if self.receipts == self.expected:
            self.all_receipted.set()


# -- sign-up ------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _key_bundle(identity: SigningKey) -> dict[str, Any]:
    """Fresh keys for one device: what PUT /v1/keys takes (the server checks the signature)."""
    prekey = secrets.token_bytes(32)
    return {
        "identity_key": _b64(bytes(identity.verify_key)),
        "signed_prekey": {
            "key_id": 1,
            "public_key": _b64(prekey),
            "signature": _b64(identity.sign(prekey).signature),
        },
        "one_time_prekeys": [{"key_id": 100, "public_key": _b64(secrets.token_bytes(32))}],
    }


async def _sign_up(http: aiohttp.ClientSession, stack: LocalStack, phone: str) -> _Account:
    async with http.post(f"{stack.http_url}/v1/auth/otp", json={"phone": phone}) as answer:
        answer.raise_for_status()
    async with http.get(stack.sms_url) as answer:
        texts = [m["message"] for m in await answer.json() if m["phone"] == phone]
    code = re.search(r"\b(\d{6})\b", texts[-1]) if texts else None
    if code is None:
        raise RuntimeError(f"no sign-up code for {phone} in the SMS sink")
    verify = {"phone": phone, "code": code[1]}
    async with http.post(f"{stack.http_url}/v1/auth/verify", json=verify) as answer:
        answer.raise_for_status()
        tokens = await answer.json()
    if not isinstance(tokens, dict):
        raise RuntimeError(f"verify answered {answer.status} with {tokens!r}")
    auth = {"authorization": f"Bearer {tokens['access_token']}"}
    identity = SigningKey.generate()
    async with http.put(
        f"{stack.http_url}/v1/keys", json=_key_bundle(identity), headers=auth
    ) as answer:
        answer.raise_for_status()
    # the primary's first device list (just itself): senders deliver to listed devices only
    listed = first_list(tokens["user_id"], tokens["device_id"], identity)
    async with http.put(f"{stack.http_url}/v1/devices/list", json=listed, headers=auth) as answer:
        answer.raise_for_status()
    return _Account(tokens["user_id"], tokens["device_id"], tokens["access_token"])


async def _accounts(stack: LocalStack, numbers: range) -> list[_Account]:
    """A user with one device for each number, signed up from a few loopback addresses."""
    limit = asyncio.Semaphore(_SIGNUP_CONCURRENCY)
    sessions: dict[str, aiohttp.ClientSession] = {}

    def session(n: int) -> aiohttp.ClientSession:
        address = f"127.0.0.{2 + n // _SIGNUPS_PER_ADDRESS}"
        if address not in sessions:
            connector = aiohttp.TCPConnector(local_addr=(address, 0))
            sessions[address] = aiohttp.ClientSession(connector=connector)
        return sessions[address]

    async def one(n: int) -> _Account:
        async with limit:
            # valid UK mobile numbers, one per user
            return await _sign_up(session(n), stack, f"+4479112{n:05d}")

    try:
        return list(await asyncio.gather(*(one(n) for n in numbers)))
    finally:
        for open_session in sessions.values():
            await open_session.close()


# -- clients ------------------------------------------------------------------------------


async def _read(
    ws: ClientConnection, tally: _Tally, sent: dict[str, asyncio.Future[float]]
) -> None:
    """Everything the server sends this client: deliveries and receipts are acked at once."""
    async for raw in ws:
        now = time.perf_counter()
        event = json.loads(raw)
        kind = event.get("event")
        if kind == "message":
            tally.delivered(event["client_id"], now)
            ids = [event["id"]]  # people who know each other: the ack ticks
            await ws.send(json.dumps({"action": "ack", "ids": ids, "delivered": ids}))
        elif kind == "receipt":
            tally.receipted()
            await ws.send(json.dumps({"action": "ack", "ids": [event["id"]]}))
        elif kind == "sent":
            waiting = sent.pop(event["id"], None)
            if waiting is not None and not waiting.done():
                waiting.set_result(now)
        elif kind == "error":
            tally.errors.append(event)
            waiting = sent.pop(event.get("ref") or "", None)
            if waiting is not None and not waiting.done():
                waiting.set_exception(RuntimeError(f"send refused: {event}"))


async def _send_all(
    ws: ClientConnection,
    me: _Account,
    peers: Sequence[_Account],
    count: int,
    tally: _Tally,
    sent: dict[str, asyncio.Future[float]],
    rng: random.Random,
) -> None:
    body = _b64(secrets.token_bytes(CIPHERTEXT_BYTES))
    loop = asyncio.get_running_loop()
    for i in range(count):
        peer = rng.choice(peers)
        client_id = f"{me.device_id}-{i}"
        answered: asyncio.Future[float] = loop.create_future()
        sent[client_id] = answered
        frame = {
            "action": "send",
            "id": client_id,
            "to": peer.user_id,
            "payloads": {peer.device_id: body},
        }
        started = time.perf_counter()
        tally.written_at[client_id] = started
        if tally.first_send is None:
            tally.first_send = started
        await ws.send(json.dumps(frame))
        tally.answered.append(await answered - started)


async def _client(
    stack: LocalStack,
    me: _Account,
    peers: Sequence[_Account],
    load: Load,
    tally: _Tally,
    ready: asyncio.Barrier,
    done: asyncio.Event,
    seed: int,
) -> None:
    sent: dict[str, asyncio.Future[float]] = {}
    async with connect(f"{stack.ws_url}?token={me.token}", open_timeout=30) as ws:
        reader = asyncio.create_task(_read(ws, tally, sent))
        try:
            await ready.wait()  # nobody sends before everyone is online
            await _send_all(
                ws, me, peers, load.messages_per_client, tally, sent, random.Random(seed)
            )
            await done.wait()  # stay online to receive and ack until the run ends
        finally:
            reader.cancel()


async def _measure(stack: LocalStack, load: Load, first_number: int = 0) -> _Tally:
    accounts = await _accounts(stack, range(first_number, first_number + load.clients))
    tally = _Tally(expected=load.messages)
    ready = asyncio.Barrier(load.clients)
    done = asyncio.Event()
    clients = [
        asyncio.create_task(
            _client(
                stack,
                me,
                [a for a in accounts if a is not me],
                load,
                tally,
                ready,
                done,
                seed=n,
            )
        )
        for n, me in enumerate(accounts)
    ]
    try:
        async with asyncio.timeout(load.time_limit_s):
            await tally.all_delivered.wait()
            await tally.all_receipted.wait()
    except TimeoutError:
        pass  # report what got through in the time allowed
    finally:
        done.set()
        # senders still waiting for an answer when time ran out are stopped here
        _, late = await asyncio.wait(clients, timeout=10)
        for task in late:
            task.cancel()
        results = await asyncio.gather(*clients, return_exceptions=True)
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise RuntimeError(f"{len(failed)} of {load.clients} clients failed") from failed[0]
    return tally


# -- figures ------------------------------------------------------------------------------


def _percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _figures(tally: _Tally, load: Load) -> list[Figure]:
    group = "throughput (local stack)"
    delivered = len(tally.latencies)
    span = tally.last_delivery - (tally.first_send or tally.last_delivery)
    return [
        Figure(
            group,
            f"messages delivered end to end / s ({load.clients} clients)",
            delivered / span if span > 0 else 0.0,
            "msg/s",
            f"{delivered} of {load.messages} delivered in {span:.1f} s (first send to last "
            f"delivery); {load.clients} WebSocket clients, {load.messages_per_client} sends "
            f"each to random peers, one at a time; {CIPHERTEXT_BYTES} B bodies; every message "
            "and receipt acked",
        ),
        *_latencies(tally, load, "every client sending and acking at once"),
        Figure(
            group,
            "frames refused",
            float(len(tally.errors)),
            "errors",
            "error events any client received (rate_limited, ...); 0 expected",
        ),
    ]


def _latencies(tally: _Tally, load: Load, while_: str) -> list[Figure]:
    group = "throughput (local stack)"
    figures = [
        Figure(
            group,
            f"send-to-receive latency p{p} ({load.clients} clients)",
            _percentile(tally.latencies, p) * 1000,
            "ms",
            f"sender writes the frame -> recipient reads `message`; {len(tally.latencies)} "
            f"messages, {while_}",
        )
        for p in (50, 99)
        if tally.latencies
    ]
    if tally.answered:
        figures.append(
            Figure(
                group,
                f"send-to-`sent` p50 ({load.clients} clients)",
                statistics.median(tally.answered) * 1000,
                "ms",
                "sender writes the frame -> reads the route response (stored and posted "
                "live: the single tick)",
            )
        )
    return figures


async def _phases(stack: LocalStack, load: Load, light: Load) -> tuple[_Tally, _Tally]:
    loaded = await _measure(stack, load)
    # after the load, so every handler is warm; new users, so no mailbox is shared
    unloaded = await _measure(stack, light, first_number=load.clients)
    return loaded, unloaded


def run(quick: bool = False) -> list[Figure]:
    load, light = (QUICK, LIGHT_QUICK) if quick else (FULL, LIGHT)
    with (
        tempfile.TemporaryDirectory(prefix="parley-bench-") as work,
        running_local_stack(Path(work), "--quiet") as stack,
    ):
        loaded, unloaded = asyncio.run(_phases(stack, load, light))
    return [
        *_figures(loaded, load),
        *_latencies(unloaded, light, "one pair of clients, nothing else running (warm)"),
    ]


def main() -> None:
    print_table(run(quick="--quick" in sys.argv[1:]))


if __name__ == "__main__":
    main()
