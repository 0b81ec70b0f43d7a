"""The @connections API, driven with boto3's own apigatewaymanagementapi client
(as the handlers drive it): send, describe, delete, and GoneException."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from websockets.exceptions import ConnectionClosed

from local.gateway import Gateway, GatewayOptions
from local.testing import FakeFunctions, running_gateway, ws_connect
from local.websocket import WsLimits


def management(gateway: Gateway) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gateway.connections_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}),
    )


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as failed:
        call()
    return str(failed.value.response["Error"]["Code"])


def connection_id(event: dict[str, Any]) -> str:
    return str(event["requestContext"]["connectionId"])


async def test_a_handler_posts_to_its_connection_through_boto3() -> None:
    holder: dict[str, Any] = {}

    def send(event: dict[str, Any]) -> Any:
        holder["api"].post_to_connection(
            ConnectionId=connection_id(event), Data=json.dumps({"event": "message"}).encode()
        )
        return {"statusCode": 200}

    functions = FakeFunctions({"WsSend": send})
    async with running_gateway(functions) as gateway, ws_connect(gateway) as ws:
        holder["api"] = management(gateway)
        await ws.send('{"action":"send"}')
        assert json.loads(await ws.recv()) == {"event": "message"}


async def test_posting_to_an_unknown_or_closed_connection_is_gone() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway:
        api = management(gateway)
        assert (
            await asyncio.to_thread(
                error_code, lambda: api.post_to_connection(ConnectionId="nope=", Data=b"x")
            )
            == "GoneException"
        )
        async with ws_connect(gateway):
            pass
        closed = connection_id(await functions.wait_for("WsDisconnect"))
        for call in (
            lambda: api.post_to_connection(ConnectionId=closed, Data=b"x"),
            lambda: api.get_connection(ConnectionId=closed),
            lambda: api.delete_connection(ConnectionId=closed),
        ):
            assert await asyncio.to_thread(error_code, call) == "GoneException"


async def test_a_connection_still_in_connect_is_gone() -> None:
    outcome: dict[str, str] = {}
    holder: dict[str, Any] = {}

    def connect(event: dict[str, Any]) -> Any:
        try:
            holder["api"].post_to_connection(ConnectionId=connection_id(event), Data=b"early")
            outcome["post"] = "delivered"
        except ClientError as exc:
            outcome["post"] = exc.response["Error"]["Code"]
        return {"statusCode": 200}

    functions = FakeFunctions({"WsConnect": connect})
    async with running_gateway(functions) as gateway:
        holder["api"] = management(gateway)
        async with ws_connect(gateway) as ws:
            await ws.send("hello")
            await functions.wait_for("WsDefault")
    assert outcome == {"post": "GoneException"}


async def test_get_connection_describes_it_as_api_gateway_does() -> None:
    functions = FakeFunctions()
    async with (
        running_gateway(functions) as gateway,
        ws_connect(gateway, user_agent_header="parley-test/1") as ws,
    ):
        await ws.send("touch")
        event = await functions.wait_for("WsDefault")
        described = await asyncio.to_thread(
            management(gateway).get_connection, ConnectionId=connection_id(event)
        )
    assert isinstance(described["ConnectedAt"], datetime)
    assert isinstance(described["LastActiveAt"], datetime)
    assert described["LastActiveAt"] >= described["ConnectedAt"]
    assert described["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "parley-test/1"}


async def test_delete_connection_closes_it_and_runs_disconnect() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway:
        async with ws_connect(gateway) as ws:
            await ws.send("hi")
            target = connection_id(await functions.wait_for("WsDefault"))
            await asyncio.to_thread(management(gateway).delete_connection, ConnectionId=target)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        event = await functions.wait_for("WsDisconnect")
        assert connection_id(event) == target
        assert len(gateway.registry) == 0


async def test_posting_more_than_128_kb_is_payload_too_large() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway, ws_connect(gateway) as ws:
        await ws.send("hi")
        target = connection_id(await functions.wait_for("WsDefault"))
        api = management(gateway)
        code = await asyncio.to_thread(
            error_code,
            lambda: api.post_to_connection(ConnectionId=target, Data=b"x" * (128 * 1024 + 1)),
        )
        assert code == "PayloadTooLargeException"
        await asyncio.to_thread(api.post_to_connection, ConnectionId=target, Data=b"y" * 1024)
        assert await ws.recv() == "y" * 1024


async def test_unsigned_calls_are_forbidden() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway, ws_connect(gateway) as ws:
        await ws.send("hi")
        target = connection_id(await functions.wait_for("WsDefault"))
        async with aiohttp.ClientSession() as http:
            url = f"{gateway.connections_url}/@connections/{target.replace('=', '%3D')}"
            async with http.post(url, data=b"sneaky") as response:
                assert response.status == 403
                assert response.headers["x-amzn-ErrorType"] == "ForbiddenException"


async def test_posts_to_the_client_keep_the_connection_from_going_idle() -> None:
    functions = FakeFunctions()
    options = GatewayOptions(ws=WsLimits(idle_timeout_s=1.0))
    async with running_gateway(functions, options) as gateway, ws_connect(gateway) as ws:
        await ws.send("hi")
        target = connection_id(await functions.wait_for("WsDefault"))
        api = management(gateway)
        for n in range(20):  # 2 s of server-to-client traffic
            await asyncio.to_thread(api.post_to_connection, ConnectionId=target, Data=b"%d" % n)
            assert await ws.recv() == str(n)
            await asyncio.sleep(0.1)
        assert functions.events_of("WsDisconnect") == []
