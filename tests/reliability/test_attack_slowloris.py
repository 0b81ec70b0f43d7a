"""Attack: tying up the WebSocket API with clients that never finish anything.

On a running stack whose WebSocket idle timeout is 2 s (the suites' stack; API
Gateway's is 10 minutes): handshakes that never complete, connections that
never speak, frames dribbled a byte at a time and readers that never read are
all cut off, none of them holds up anyone else, and nothing of theirs stays
behind in the connections table.

The waits here are guards against a hang, many times the configured timeout;
nothing is timed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from local.gateway import GatewayOptions
from local.testing import FakeFunctions, running_gateway
from local.websocket import WsLimits
from tests.reliability.stack import SUITES_IDLE_TIMEOUT_S, Account, Stack, sign_up

GUARD_S = 20.0


def _address(stack: Stack) -> tuple[str, int]:
    parsed = urlparse(stack.http_url)
    assert parsed.hostname is not None
    assert parsed.port is not None
    return parsed.hostname, parsed.port


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Read until the server closes the socket (True) or the guard runs out (False)."""
    deadline = time.monotonic() + GUARD_S
    try:
        while time.monotonic() < deadline:
            chunk = await asyncio.wait_for(reader.read(4096), deadline - time.monotonic())
            if not chunk:
                return True
    except ConnectionError:
        return True  # reset by the server: closed too
    except TimeoutError:
        return False
    return False


async def _connections_of(stack: Stack, user_id: str) -> int:
    answer = stack.moto("dynamodb").query(
        TableName=stack.table("Connections"),
        KeyConditionExpression="user_id = :u",
        ExpressionAttributeValues={":u": {"S": user_id}},
    )
    return int(answer["Count"])


async def _eventually_none(stack: Stack, user_id: str) -> bool:
    """Whether the user's connection records are all gone within the guard."""
    for _ in range(int(GUARD_S * 10)):
        if await _connections_of(stack, user_id) == 0:
            return True
        await asyncio.sleep(0.1)
    return False


@contextlib.asynccontextmanager
async def _online(stack: Stack, account: Account) -> AsyncIterator[ClientConnection]:
    async with connect(f"{stack.ws_url}?token={account.access_token}", proxy=None) as ws:
        yield ws


@contextlib.asynccontextmanager
async def _kept_alive(stack: Stack, account: Account) -> AsyncIterator[ClientConnection]:
    """Online, and never idle: a `sync` every quarter of the idle timeout (a frame from
    the client is what keeps a connection open)."""
    async with _online(stack, account) as ws:

        async def beat() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await ws.send(json.dumps({"action": "sync"}))
                    await asyncio.sleep(SUITES_IDLE_TIMEOUT_S / 4)

        beating = asyncio.create_task(beat())
        try:
            yield ws
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating


async def _synced(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"action": "sync"}))
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), GUARD_S))
        if event["event"] == "synced":
            return


async def test_handshakes_that_never_finish_are_cut_off_and_starve_nobody(stack: Stack) -> None:
    alice = await sign_up(stack)
    host, port = _address(stack)
    half_open = []
    for _ in range(50):
        reader, writer = await asyncio.open_connection(host, port)
        # the start of an upgrade request whose headers never end
        writer.write(
            f"GET /local?token={alice.access_token} HTTP/1.1\r\nHost: {host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n".encode()
        )
        await writer.drain()
        half_open.append((reader, writer))

    # meanwhile a real client connects and is served
    async with _online(stack, alice) as ws:
        await _synced(ws)

    # dribble one more header byte each now and then: it buys nothing
    for _, writer in half_open[:10]:
        writer.write(b"X")
    closed = await asyncio.gather(*(_closed_by_server(reader) for reader, _ in half_open))
    for _, writer in half_open:
        writer.close()

    assert all(closed), f"{closed.count(False)} of {len(closed)} handshakes were left open"


async def test_connections_that_never_speak_are_closed_and_forgotten(stack: Stack) -> None:
    alice = await sign_up(stack)
    async with contextlib.AsyncExitStack() as held:
        idle = [await held.enter_async_context(_online(stack, alice)) for _ in range(10)]
        assert await _connections_of(stack, alice.user_id) == 10

        for ws in idle:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), GUARD_S)
            assert ws.close_code == 1001

    # $disconnect ran for every one of them
    assert await _eventually_none(stack, alice.user_id)


async def test_a_frame_dribbled_a_byte_at_a_time_is_cut_off_unrouted(stack: Stack) -> None:
    alice = await sign_up(stack)
    host, port = _address(stack)
    reader, writer = await asyncio.open_connection(host, port)
    await _upgrade(reader, writer, stack, alice)
    # a masked text frame announcing 20,000 bytes, then its mask, then a trickle
    writer.write(bytes([0x81, 0x80 | 126]) + (20_000).to_bytes(2, "big") + os.urandom(4))
    trickle = asyncio.get_running_loop().create_task(_trickle(writer))
    try:
        closed = await _closed_by_server(reader)
    finally:
        trickle.cancel()
        writer.close()

    assert closed
    assert await _eventually_none(stack, alice.user_id)


async def _trickle(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(0.5)


async def test_a_reader_that_never_reads_holds_up_no_sender(stack: Stack) -> None:
    bob, carol, alice, *fillers = await asyncio.gather(*(sign_up(stack) for _ in range(8)))
    # under API Gateway's 32 KB frame limit as base64
    body = base64.b64encode(os.urandom(22_000)).decode()
    reader, writer = await _stalled_client(stack)
    await _upgrade(reader, writer, stack, bob)
    try:
        async with contextlib.AsyncExitStack() as held:
            # Alice and Carol wait on the stack while it works through the pile below,
            # which on a loaded machine takes longer than the stack's 2 s idle timeout:
            # they keep their connections alive, as a client must (Bob cannot)
            alice_ws = await held.enter_async_context(_kept_alive(stack, alice))
            carol_ws = await held.enter_async_context(_kept_alive(stack, carol))
            senders = [await held.enter_async_context(_online(stack, f)) for f in fillers]
            # more than the socket buffers hold (~1 MB), within each sender's send rate
            for n in range(6):
                for ws in senders:
                    frame = {"action": "send", "id": f"fill{n}", "to": bob.user_id}
                    frame["payloads"] = {bob.device_id: body}
                    await ws.send(json.dumps(frame))
            await carol_ws.send(_hello(alice))
            answer = await _next(carol_ws, "sent")
            got = await _next(alice_ws, "message")
    finally:
        writer.close()

    assert answer["id"] == "hello"
    assert got["client_id"] == "hello"
    # Bob was dropped and forgotten; what he never read waits in his mailbox
    assert await _eventually_none(stack, bob.user_id)


async def _stalled_client(stack: Stack) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection with a tiny receive buffer, for a client that never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(_address(stack))
    sock.setblocking(False)
    return await asyncio.open_connection(sock=sock)


async def test_a_post_to_a_client_that_does_not_read_is_gone_and_the_client_dropped() -> None:
    # The gateway alone, with API Gateway's 10-minute idle timeout: only the stall
    # limit can end this.
    functions = FakeFunctions()
    options = GatewayOptions(ws=WsLimits(stalled_send_s=0.5))
    async with running_gateway(functions, options) as gateway:
        host, port = gateway.options.host, gateway.port
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET /local?token=t HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            await reader.readuntil(b"\r\n\r\n")
            connected = await functions.wait_for("WsConnect")
            connection_id = connected["requestContext"]["connectionId"]
            api = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=gateway.connections_url,
                region_name="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
                config=Config(retries={"total_max_attempts": 1}, read_timeout=GUARD_S),
            )

            def post() -> str:
                try:
                    api.post_to_connection(ConnectionId=connection_id, Data=b"x" * 100_000)
                except ClientError as refused:
                    return str(refused.response["Error"]["Code"])
                except BotoCoreError as failed:  # e.g. no answer within the guard
                    return type(failed).__name__
                return "posted"

            outcomes: list[str] = []
            while len(outcomes) < 400 and outcomes[-1:] in ([], ["posted"]):  # 40 MB at most
                outcomes.append(await asyncio.to_thread(post))
            if outcomes[-1] == "GoneException":
                await functions.wait_for("WsDisconnect")  # the gateway let it go
        finally:
            writer.close()  # else the gateway's own close would wait on this client

    assert outcomes[-1] == "GoneException"
    assert set(outcomes[:-1]) <= {"posted"}


def _hello(to: Account) -> str:
    hello = base64.b64encode(b"hi").decode()
    return json.dumps(
        {"action": "send", "id": "hello", "to": to.user_id, "payloads": {to.device_id: hello}}
    )


async def _upgrade(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stack: Stack, account: Account
) -> None:
    host, _ = _address(stack)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /local?token={account.access_token} HTTP/1.1\r\nHost: {host}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status


async def _next(ws: ClientConnection, event: str) -> dict[str, object]:
    while True:
        got = json.loads(await asyncio.wait_for(ws.recv(), GUARD_S))
        if got["event"] == event:
            return dict(got)
