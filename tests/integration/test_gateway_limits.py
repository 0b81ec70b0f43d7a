"""API Gateway's WebSocket limits, and bad input: none crashes the gateway or
leaves a connection behind, and every connection that opened sees $disconnect."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import threading
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from local.gateway import Gateway, GatewayOptions
from local.testing import FakeFunctions, running_gateway, ws_connect
from local.websocket import WsLimits

KB = 1024


def limits(**changes: Any) -> GatewayOptions:
    return GatewayOptions(ws=WsLimits(**changes))


async def closed_code(ws: Any) -> int:
    """Read until the server closes; the code it closed with."""
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:  # until the connection closes
            pass
    received = ws.protocol.close_rcvd
    assert received is not None, "the server dropped the socket without a close frame"
    return int(received.code)


async def assert_clean(gateway: Gateway, functions: FakeFunctions, connections: int = 1) -> None:
    """Every connection was forgotten and told to $disconnect; the gateway still serves."""
    await functions.wait_for("WsDisconnect", connections)
    assert len(gateway.registry) == 0
    seen = len(functions.events_of("WsDefault"))
    async with ws_connect(gateway) as ws:
        await ws.send("still alive?")
        assert (await functions.wait_for("WsDefault", seen + 1))["body"] == "still alive?"
    await functions.wait_for("WsDisconnect", connections + 1)
    assert len(gateway.registry) == 0


async def test_binary_frames_are_closed_with_1003() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway:
        async with ws_connect(gateway) as ws:
            await ws.send(b"\x00\x01")
            assert await closed_code(ws) == 1003
        event = await functions.wait_for("WsDisconnect")
        assert event["requestContext"]["disconnectStatusCode"] == 1003
        await assert_clean(gateway, functions)
    # the binary message itself never reached a handler
    assert [e["body"] for e in functions.events_of("WsDefault")] == ["still alive?"]


async def test_a_frame_over_32_kb_is_closed_with_1009() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway:
        async with ws_connect(gateway) as ws:
            await ws.send("x" * (32 * KB + 1))
            assert await closed_code(ws) == 1009
        event = await functions.wait_for("WsDisconnect")
        assert event["requestContext"]["disconnectStatusCode"] == 1009
        await assert_clean(gateway, functions)


async def test_messages_up_to_128_kb_in_32_kb_frames_arrive_whole() -> None:
    functions = FakeFunctions()
    body = json.dumps({"action": "send", "pad": "y" * (128 * KB - 40)})
    body += " " * (128 * KB - len(body))
    assert len(body) == 128 * KB
    async with running_gateway(functions) as gateway, ws_connect(gateway) as ws:
        await ws.send("z" * (32 * KB))  # one frame at the limit
        await ws.send([body[i : i + 32 * KB] for i in range(0, len(body), 32 * KB)])
        event = await functions.wait_for("WsSend")
        assert event["body"] == body
        assert (await functions.wait_for("WsDefault"))["body"] == "z" * (32 * KB)


async def test_a_message_over_128_kb_is_closed_with_1009() -> None:
    functions = FakeFunctions()
    body = "w" * (128 * KB + 1)
    async with running_gateway(functions) as gateway:
        async with ws_connect(gateway) as ws:
            await ws.send([body[i : i + 16 * KB] for i in range(0, len(body), 16 * KB)])
            assert await closed_code(ws) == 1009
        await assert_clean(gateway, functions)
    assert all(e["body"] != body for e in functions.events_of("WsDefault"))


async def test_an_idle_connection_is_closed_going_away() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions, limits(idle_timeout_s=0.3)) as gateway:
        async with ws_connect(gateway) as ws:
            assert await closed_code(ws) == 1001
        event = await functions.wait_for("WsDisconnect")
    context = event["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1001, "Going away")


async def test_messages_keep_a_connection_from_going_idle() -> None:
    functions = FakeFunctions()
    options = limits(idle_timeout_s=1.0)
    async with running_gateway(functions, options) as gateway, ws_connect(gateway) as ws:
        for n in range(20):  # 2 s of traffic, twice the idle timeout
            await ws.send(f"tick {n}")
            await asyncio.sleep(0.1)
        await functions.wait_for("WsDefault", 20)
        assert functions.events_of("WsDisconnect") == []


async def test_a_connection_is_closed_at_its_maximum_duration_even_when_busy() -> None:
    functions = FakeFunctions()
    options = limits(idle_timeout_s=30, max_connection_s=0.5)
    async with running_gateway(functions, options) as gateway, ws_connect(gateway) as ws:

        async def chatter() -> None:
            while True:
                await ws.send("busy")
                await asyncio.sleep(0.05)

        talking = asyncio.create_task(chatter())
        try:
            assert await closed_code(ws) == 1001
        finally:
            talking.cancel()
        event = await functions.wait_for("WsDisconnect")
        assert event["requestContext"]["disconnectStatusCode"] == 1001


async def test_a_client_vanishing_mid_request_still_gets_disconnect_and_no_reply() -> None:
    release = threading.Event()

    def slow_send(event: dict[str, Any]) -> Any:
        release.wait(10)
        return {"statusCode": 200, "body": "late"}

    functions = FakeFunctions({"WsSend": slow_send})
    async with running_gateway(functions) as gateway:
        ws = await ws_connect(gateway)
        await ws.send('{"action":"send"}')
        await functions.wait_for("WsSend")
        ws.transport.abort()  # no close frame: the TCP connection just ends
        event = await functions.wait_for("WsDisconnect")
        assert event["requestContext"]["disconnectStatusCode"] == 1006
        assert len(gateway.registry) == 0
        release.set()  # the handler finishes; its reply has nowhere to go
        await asyncio.sleep(0.1)
        await assert_clean(gateway, functions)


# --- raw sockets: frames no well-behaved client would send --------------------------


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def raw_connect(gateway: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /local?token=t HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


GARBAGE = {
    "continuation without a start": frame(0x0, b"orphan"),
    "reserved bits set": frame(0x1, b"hi", rsv=0b100),
    "unknown opcode": frame(0x3, b"??"),
    "invalid utf-8 text": frame(0x1, b"\xff\xfe\xfd"),
    "oversized control frame": frame(0x9, b"p" * 200),
    "declared length of 2**63": b"\x81\xff" + struct.pack("!Q", 2**63) + b"\x00" * 4,
    "bad close code": frame(0x8, struct.pack("!H", 999)),
    "bytes that are no frame at all": b"GET / HTTP/1.1\r\n\r\n" * 3,
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
async def test_garbage_frames_close_the_connection_cleanly(garbage: bytes) -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway:
        reader, writer = await raw_connect(gateway)
        writer.write(garbage)
        answer = await asyncio.wait_for(reader.read(), 10)  # the server ends the connection
        writer.close()
        assert answer[:1] == b"\x88", "expected a close frame"
        code = struct.unpack("!H", answer[2:4])[0]
        assert code in (1002, 1007, 1009)
        event = await functions.wait_for("WsDisconnect")
        assert event["requestContext"]["disconnectStatusCode"] == code
        await assert_clean(gateway, functions)
    assert functions.events_of("WsDefault")[0]["body"] == "still alive?"


async def test_a_truncated_frame_then_eof_is_an_abnormal_closure() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway:
        _, writer = await raw_connect(gateway)
        writer.write(frame(0x1, b"x" * 100)[:20])
        await writer.drain()
        writer.close()
        event = await functions.wait_for("WsDisconnect")
        assert event["requestContext"]["disconnectStatusCode"] == 1006
        await assert_clean(gateway, functions)


async def test_a_client_leaving_during_connect_leaves_nothing_behind() -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow_connect(event: dict[str, Any]) -> Any:
        entered.set()
        release.wait(10)
        return {"statusCode": 200}

    functions = FakeFunctions({"WsConnect": slow_connect})
    async with running_gateway(functions) as gateway:
        _, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(
            b"GET /local?token=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        await writer.drain()
        await asyncio.to_thread(entered.wait, 10)
        assert len(gateway.registry) == 1  # connecting
        writer.close()
        release.set()
        # $connect said yes, so the handler may have recorded it: $disconnect must follow
        await functions.wait_for("WsDisconnect")
        assert len(gateway.registry) == 0
