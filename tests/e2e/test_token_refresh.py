"""A refresh that makes tokens worthless closes the WebSocket connections opened with
them, on the local stack (its connections idle out after API Gateway's 10 minutes, so
a closed connection here is one the service closed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from local.testing import LocalStack
from tests.reliability.stack import handshake_status, http_from, sign_up


async def _refresh(http: aiohttp.ClientSession, stack: LocalStack, token: str) -> dict[str, Any]:
    async with http.post(
        stack.http_url + "/v1/auth/refresh", json={"refresh_token": token}
    ) as answer:
        body: dict[str, Any] = await answer.json()
        return {"status": answer.status, **body}


@asynccontextmanager
async def _open(
    http: aiohttp.ClientSession, stack: LocalStack, token: str
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A WebSocket connection with `token`, synced once (so it is open and served)."""
    async with http.ws_connect(f"{stack.ws_url}?token={token}", autoping=False) as ws:
        await ws.send_json({"action": "sync"})
        assert (await ws.receive_json(timeout=10))["event"] == "synced"
        yield ws


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """Whether the service closed this connection (waits for the close frame, up to 10 s:
    the refresh that closes it has answered already; anything else that comes first
    means it is still open)."""
    message = await ws.receive(timeout=10)
    # 1000: closed through @connections (an idle timeout or a deploy would be 1001)
    return message.type is aiohttp.WSMsgType.CLOSE and message.data == 1000


async def test_what_a_thief_connected_with_is_closed_when_the_device_asks_again(
    local_stack: LocalStack,
) -> None:
    stack = local_stack
    alice = await sign_up(stack)
    async with http_from() as http:
        thief = await _refresh(http, stack, alice.refresh_token)
        assert thief["status"] == 200
        async with _open(http, stack, thief["access_token"]) as connected:
            device = await _refresh(http, stack, alice.refresh_token)

            assert device["status"] == 200
            assert await _closed(connected)
        assert await handshake_status(stack, thief["access_token"]) == 401
        assert await handshake_status(stack, device["access_token"]) == 101


async def test_a_reused_refresh_token_closes_the_devices_open_connections(
    local_stack: LocalStack,
) -> None:
    stack = local_stack
    alice = await sign_up(stack)
    async with http_from() as http:
        first = await _refresh(http, stack, alice.refresh_token)
        second = await _refresh(http, stack, first["refresh_token"])
        async with _open(http, stack, second["access_token"]) as connected:
            replay = await _refresh(http, stack, alice.refresh_token)

            assert replay["status"] == 401
            assert await _closed(connected)
