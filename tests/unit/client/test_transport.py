"""The WebSocket transport against a real (loopback) websockets server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from parley.errors import AuthenticationError
from parley.protocol import (
    FRAGMENT_BYTES,
    OutboxEntry,
    Protocol,
    ProtocolEvent,
    SendAccepted,
    SyncComplete,
)
from parley.transport import Backoff, Transport

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOB = "b" * 32
DEV = "1" * 16
# the sync a client sends: it reads a page in `batch` events
SYNC = {"action": "sync", "batch": True}


@dataclass
class FakeService:
    """Records connections and frames; each connection runs `script`."""

    accepted_tokens: set[str] = field(default_factory=lambda: {"t1"})
    tokens_seen: list[str] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    connections: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)
    fragment_sizes: list[list[int]] = field(default_factory=list)
    script: Callable[[FakeService, ServerConnection, int], Awaitable[None]] | None = None

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlparse(request.path).query)
        self.queries.append(query)
        token = query.get("token", [""])[0]
        self.tokens_seen.append(token)
        if token not in self.accepted_tokens:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        number = self.connections
        if self.script is not None:
            await self.script(self, ws, number)
        else:
            async for frame in self.frames_of(ws):
                await self.answer(ws, frame)

    async def frames_of(self, ws: ServerConnection) -> AsyncIterator[dict[str, Any]]:
        while True:
            sizes: list[int] = []
            parts: list[str] = []
            try:
                async for part in ws.recv_streaming():
                    assert isinstance(part, str)
                    sizes.append(len(part.encode()))
                    parts.append(part)
            except Exception:
                return
            frame = json.loads("".join(parts))
            self.fragment_sizes.append(sizes)
            self.frames.append(frame)
            yield frame

    @staticmethod
    async def answer(ws: ServerConnection, frame: dict[str, Any]) -> None:
        if frame["action"] == "sync":
            await ws.send(json.dumps({"event": "synced", "more": False, "cursor": None}))
        elif frame["action"] == "send":
            await ws.send(json.dumps({"event": "sent", "id": frame["id"], "ts": 1}))


@pytest.fixture
async def service() -> AsyncIterator[tuple[FakeService, str]]:
    fake = FakeService()
    server: Server
    async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}/local"


class Harness:
    def __init__(self, url: str, first_token: str = "t1") -> None:  # noqa: S107
        self.protocol = Protocol()
        self.events: list[ProtocolEvent] = []
        self.states: list[tuple[bool, str]] = []
        self.token = first_token
        self.refreshed = 0
        self.arrived = asyncio.Event()
        self.transport = Transport(
            url,
            self.protocol,
            token=self._token,
            refresh_token=self._refresh,
            on_event=self._on_event,
            on_connection=self._on_connection,
            backoff=Backoff(base=0.01, cap=0.05, rng=lambda _lo, _hi: 0.01),
        )
        self.task = asyncio.create_task(self.transport.run())

    async def _token(self) -> str:
        return self.token

    async def _refresh(self) -> None:
        self.refreshed += 1
        self.token = "t1"

    async def _on_event(self, event: ProtocolEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    async def _on_connection(self, connected: bool, reason: str) -> None:
        self.states.append((connected, reason))

    async def wait_for(self, kind: type, count: int = 1) -> list[ProtocolEvent]:
        async with asyncio.timeout(5):
            while True:
                found = [e for e in self.events if isinstance(e, kind)]
                if len(found) >= count:
                    return found
                self.arrived.clear()
                await self.arrived.wait()

    async def stop(self) -> None:
        await self.transport.stop()
        async with asyncio.timeout(5):
            await self.task


async def test_it_connects_with_the_token_and_syncs_first(
    service: tuple[FakeService, str],
) -> None:
    fake, url = service
    harness = Harness(url)
    await harness.wait_for(SyncComplete)
    await harness.stop()
    assert fake.tokens_seen == ["t1"]
    assert fake.queries[0]["batch"] == ["1"]  # it reads what is posted together in batches
    assert fake.frames[0] == SYNC
    assert harness.states[0] == (True, "connected")
    assert harness.states[-1][0] is False


async def test_an_unanswered_send_is_resent_with_the_same_id_after_a_reconnect(
    service: tuple[FakeService, str],
) -> None:
    fake, url = service

    async def drop_first_send(fake: FakeService, ws: ServerConnection, number: int) -> None:
        async for frame in fake.frames_of(ws):
            if frame["action"] == "send" and number == 1:
                await ws.close()  # the connection dies before `sent`
                return
            await fake.answer(ws, frame)

    fake.script = drop_first_send
    harness = Harness(url)
    await harness.wait_for(SyncComplete)
    harness.protocol.send(OutboxEntry("m1", BOB, {DEV: "Y2lwaGVy"}))
    harness.transport.flush()
    (accepted,) = await harness.wait_for(SendAccepted)
    await harness.stop()

    assert isinstance(accepted, SendAccepted)
    assert accepted.entry.client_id == "m1"
    assert fake.connections == 2
    sends = [f for f in fake.frames if f["action"] == "send"]
    assert [f["id"] for f in sends] == ["m1", "m1"]
    # the second connection synced before anything else
    second = fake.frames[fake.frames.index(sends[0]) + 1 :]
    assert second[0] == SYNC


async def test_a_refused_handshake_refreshes_the_token_then_connects(
    service: tuple[FakeService, str],
) -> None:
    fake, url = service
    harness = Harness(url, first_token="expired")
    await harness.wait_for(SyncComplete)
    await harness.stop()
    assert fake.tokens_seen[:2] == ["expired", "t1"]
    assert harness.refreshed == 1
    assert harness.states[0] == (False, "refused (401)")


async def test_a_device_whose_refresh_token_is_refused_stops_dialling(
    service: tuple[FakeService, str],
) -> None:
    fake, url = service
    harness = Harness(url, first_token="expired")

    async def signed_out() -> None:
        harness.refreshed += 1
        raise AuthenticationError(401, "invalid_token", "this device has been signed out")

    harness.transport._refresh_token = signed_out  # type: ignore[method-assign]
    async with asyncio.timeout(5):
        await harness.task  # run() returns by itself
    assert harness.refreshed == 1
    assert fake.tokens_seen == ["expired"]
    assert harness.states[-1][0] is False
    assert harness.states[-1][1].startswith("signed out")


async def test_a_large_frame_reaches_the_server_in_fragments_under_32_kb(
    service: tuple[FakeService, str],
) -> None:
    fake, url = service
    harness = Harness(url)
    await harness.wait_for(SyncComplete)
    payloads = {DEV: "A" * 50_000, "2" * 16: "B" * 40_000}
    harness.protocol.send(OutboxEntry("big", BOB, payloads))
    harness.transport.flush()
    await harness.wait_for(SendAccepted)
    await harness.stop()

    index = next(i for i, f in enumerate(fake.frames) if f["action"] == "send")
    assert fake.frames[index]["payloads"] == payloads
    sizes = fake.fragment_sizes[index]
    # websockets ends an iterable with an empty final frame (FIN), as RFC 6455 allows
    assert [s for s in sizes if s] == [FRAGMENT_BYTES, FRAGMENT_BYTES, sum(sizes) - 64_000]
    assert max(sizes) <= FRAGMENT_BYTES


async def test_backoff_grows_with_full_jitter_up_to_the_cap_and_resets() -> None:
    seen: list[tuple[float, float]] = []

    def rng(low: float, high: float) -> float:
        seen.append((low, high))
        return high

    backoff = Backoff(base=0.5, cap=4.0, rng=rng)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(low == 0.0 for low, _ in seen)
    backoff.reset()
    assert backoff.next_delay() == 0.5
