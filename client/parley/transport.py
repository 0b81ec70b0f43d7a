"""The WebSocket transport: a thin asyncio loop around the sans-I/O `Protocol`.

It connects with a fresh access token, feeds what arrives to the protocol,
writes what the protocol wants written (fragmented as it says), wakes the
protocol at its deadlines, and reconnects with jittered exponential backoff
whenever the connection drops. Every (re)connect starts with a sync (the
protocol queues it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from parley.errors import AuthenticationError, NotRegistered
from parley.protocol import MAX_MESSAGE_BYTES, Protocol, ProtocolEvent

__all__ = ["Backoff", "Transport"]

log = logging.getLogger("parley.transport")


class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return self._rng(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class Transport:
    """Keeps one device connected. `run()` until `stop()`; call `flush()` after
    anything that may have given the protocol frames to write."""

    def __init__(
        self,
        ws_url: str,
        protocol: Protocol,
        *,
        token: Callable[[], Awaitable[str]],
        refresh_token: Callable[[], Awaitable[object]],
        on_event: Callable[[ProtocolEvent], Awaitable[None]],
        on_connection: Callable[[bool, str], Awaitable[None]] | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        open_timeout: float = 10.0,
    ) -> None:
        self._url = ws_url
        self._proto = protocol
        self._token = token
        self._refresh_token = refresh_token
        self._on_event = on_event
        self._on_connection = on_connection
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.connected = asyncio.Event()
        self.connections = 0  # how many times a connection was opened

    def flush(self) -> None:
        """Have the writer send whatever the protocol has queued."""
        self._wake.set()

    async def stop(self) -> None:
        """Send what is already queued (acks, receipts), then close."""
        self._stopping = True
        ws = self._ws
        if ws is None:
            return
        self._proto.flush_acks()  # acks waiting for company go now, not as redeliveries
        with contextlib.suppress(ConnectionClosed):
            for frame in self._proto.data_to_send():
                await ws.send(frame[0] if len(frame) == 1 else iter(frame))
        await ws.close()

    async def run(self) -> None:
        """Connect, serve, reconnect; returns only after `stop()`."""
        rejected = False
        while not self._stopping:
            try:
                if rejected:
                    await self._refresh_token()
                await self._serve_once()
                rejected = False
            except InvalidStatus as exc:
                status = exc.response.status_code
                log.warning("WebSocket handshake refused with %s", status)
                # 401/403: the token may have expired between fetch and use
                rejected = status in {401, 403}
                await self._notify(False, f"refused ({status})")
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                await self._notify(False, f"unreachable ({type(exc).__name__})")
            except asyncio.CancelledError:
                raise
            except (AuthenticationError, NotRegistered) as exc:
                # the service refused the refresh token itself: this device was signed
                # out (or its tokens are gone); dialling again would only be refused
                log.warning("signed out, not reconnecting: %s", exc)
                self._stopping = True
                await self._notify(False, f"signed out ({exc})")
                break
            except Exception as exc:  # a token or handler failure must not end the loop
                log.warning("connection attempt failed: %s", exc)
                await self._notify(False, f"error ({type(exc).__name__})")
            if self._stopping:
                break
            delay = self._backoff.next_delay()
            log.info("reconnecting in %.2f s", delay)
            await asyncio.sleep(delay)

    async def _serve_once(self) -> None:
        token = await self._token()
        # batch=1: what the server posts together comes in `batch` events (fewer posts)
        query = urlencode({"token": token, "batch": "1"})
        url = f"{self._url}{'&' if '?' in self._url else '?'}{query}"
        async with connect(
            url,
            open_timeout=self._open_timeout,
            max_size=2 * MAX_MESSAGE_BYTES,
            compression=None,  # API Gateway does not negotiate permessage-deflate
        ) as ws:
            self._ws = ws
            self._backoff.reset()
            self.connections += 1
            self._proto.connection_made()
            self.connected.set()
            self.flush()
            await self._notify(True, "connected")
            writer = asyncio.create_task(self._writer(ws))
            try:
                await self._reader(ws)
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
                self._proto.connection_lost()
                self.connected.clear()
                self._ws = None
                await self._notify(False, "connection closed")

    async def _reader(self, ws: ClientConnection) -> None:
        while True:
            deadline = self._proto.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            try:
                async with asyncio.timeout(timeout):
                    data = await ws.recv()
            except TimeoutError:
                self._proto.handle_timeout()
                self.flush()
                continue
            except ConnectionClosed:
                return
            self._proto.receive_data(data)
            for event in self._proto.events_received():
                try:
                    await self._on_event(event)
                except Exception:  # one bad event must not take the connection down
                    log.exception("handling %s failed", type(event).__name__)
            self.flush()

    async def _writer(self, ws: ClientConnection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for frame in self._proto.data_to_send():
                try:
                    if len(frame) == 1:
                        await ws.send(frame[0])
                    else:
                        await ws.send(iter(frame))
                except ConnectionClosed:
                    return

    async def _notify(self, connected: bool, reason: str) -> None:
        if self._on_connection is not None:
            try:
                await self._on_connection(connected, reason)
            except Exception:
                log.exception("connection callback failed")
