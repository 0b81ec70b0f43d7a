"""The local WebSocket API behaves as API Gateway's: handshake and authorizer,
$connect, route selection, route responses, $disconnect, and event shapes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local.testing import FakeFunctions, allow_policy, running_gateway, ws_connect

CONTEXT = {"user_id": "a" * 32, "device_id": "b" * 16}


def reply(body: Any) -> Any:
    return lambda event: {"statusCode": 200, "body": json.dumps(body)}


async def refused_status(functions: FakeFunctions, query: str = "token=t") -> int:
    async with running_gateway(functions) as gateway:
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(gateway, query):
                pass
        assert len(gateway.registry) == 0
        return refused.value.response.status_code


async def test_missing_token_is_401_without_running_the_authorizer() -> None:
    functions = FakeFunctions()
    assert await refused_status(functions, query="") == 401
    assert await refused_status(functions, query="token=") == 401
    assert functions.events_of("WsAuthorizer") == []
    assert functions.events_of("WsConnect") == []


def fail(message: str) -> Any:
    def behaviour(event: dict[str, Any]) -> Any:
        raise RuntimeError(message)

    return behaviour


async def test_authorizer_failing_with_unauthorized_is_401() -> None:
    functions = FakeFunctions({"WsAuthorizer": fail("Unauthorized")})
    assert await refused_status(functions) == 401
    assert functions.events_of("WsConnect") == []


async def test_authorizer_deny_is_403() -> None:
    def deny(event: dict[str, Any]) -> Any:
        policy = allow_policy(event)
        policy["policyDocument"]["Statement"][0]["Effect"] = "Deny"
        return policy

    functions = FakeFunctions({"WsAuthorizer": deny})
    assert await refused_status(functions) == 403
    assert functions.events_of("WsConnect") == []


@pytest.mark.parametrize(
    "behaviour",
    [
        fail("token expired"),  # any other failure message
        lambda event: {"principalId": "u"},  # no policy
        lambda event: allow_policy(event, context={"nested": {"no": "objects"}}),
    ],
)
async def test_authorizer_error_or_bad_answer_is_500(behaviour: Any) -> None:
    functions = FakeFunctions({"WsAuthorizer": behaviour})
    assert await refused_status(functions) == 500
    assert functions.events_of("WsConnect") == []


async def test_connect_answering_non_2xx_refuses_the_handshake_with_that_status() -> None:
    functions = FakeFunctions({"WsConnect": lambda event: {"statusCode": 429}})
    assert await refused_status(functions) == 429
    assert functions.events_of("WsDisconnect") == []  # never connected, never disconnected


@pytest.mark.parametrize("behaviour", [lambda event: None, fail("boom")])
async def test_connect_failing_or_answering_without_status_is_refused(behaviour: Any) -> None:
    functions = FakeFunctions({"WsConnect": behaviour})
    assert await refused_status(functions) == 502


async def test_events_carry_the_authorizer_context_and_validate_against_powertools() -> None:
    functions = FakeFunctions(
        {
            "WsAuthorizer": lambda event: allow_policy(event, principal="p1", context=CONTEXT),
            "WsSend": reply({"event": "sent"}),
        }
    )
    async with running_gateway(functions) as gateway:
        async with ws_connect(gateway, "token=abc&x=1") as ws:
            await ws.send(json.dumps({"action": "send", "id": "c1"}))
            assert json.loads(await ws.recv()) == {"event": "sent"}
        disconnect = await functions.wait_for("WsDisconnect")

    authorizer = functions.events_of("WsAuthorizer")[0]
    assert authorizer["queryStringParameters"] == {"token": "abc", "x": "1"}
    assert authorizer["methodArn"].endswith("/local/$connect")
    connect = APIGatewayWebSocketConnectEventModel.model_validate(
        functions.events_of("WsConnect")[0]
    )
    message = APIGatewayWebSocketMessageEventModel.model_validate(functions.events_of("WsSend")[0])
    closed = APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect)
    expected = {**CONTEXT, "principalId": "p1"}
    for event in (functions.events_of("WsConnect")[0], functions.events_of("WsSend")[0]):
        assert event["requestContext"]["authorizer"] == expected
    assert disconnect["requestContext"]["authorizer"] == expected
    # one connection: the same id and connectedAt in every event
    ids = {connect.request_context.connection_id, message.request_context.connection_id}
    assert ids == {closed.request_context.connection_id}
    assert connect.request_context.stage == "local"
    assert message.request_context.route_key == "send"
    assert json.loads(message.body) == {"action": "send", "id": "c1"}  # type: ignore[arg-type]
    assert closed.request_context.disconnect_status_code == 1000


async def test_two_way_route_returns_the_body_and_one_way_routes_return_nothing() -> None:
    functions = FakeFunctions({"WsSend": reply({"event": "sent"}), "WsAck": reply("ack body")})
    async with running_gateway(functions) as gateway, ws_connect(gateway) as ws:
        await ws.send(json.dumps({"action": "ack", "ids": ["1"]}))
        await functions.wait_for("WsAck")
        await ws.send(json.dumps({"action": "send"}))
        # the first thing received is the send's answer: ack's body was not forwarded
        assert json.loads(await ws.recv()) == {"event": "sent"}


@pytest.mark.parametrize(
    "frame", ['{"action":"nope"}', "not json", '{"action":"$disconnect"}', "[1,2]"]
)
async def test_unroutable_messages_go_to_default(frame: str) -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway, ws_connect(gateway) as ws:
        await ws.send(frame)
        event = await functions.wait_for("WsDefault")
    assert event["requestContext"]["routeKey"] == "$default"
    assert event["body"] == frame
    assert functions.events_of("WsDisconnect")[0]["requestContext"]["routeKey"] == "$disconnect"


async def test_without_a_default_route_an_unknown_action_is_answered_forbidden() -> None:
    from parley_server.catalogue import WS_ROUTES

    routes = tuple(r for r in WS_ROUTES if r.route_key != "$default")
    async with (
        running_gateway(FakeFunctions(), ws_routes=routes) as gateway,
        ws_connect(gateway) as ws,
    ):
        await ws.send('{"action":"nope"}')
        answer = json.loads(await ws.recv())
    assert answer["message"] == "Forbidden"
    assert answer["connectionId"]
    assert answer["requestId"]


async def test_a_failing_handler_is_answered_internal_server_error_and_the_connection_lives() -> (
    None
):
    functions = FakeFunctions({"WsSend": fail("boom"), "WsSync": reply({"event": "synced"})})
    async with running_gateway(functions) as gateway, ws_connect(gateway) as ws:
        await ws.send('{"action":"send"}')
        answer = json.loads(await ws.recv())
        assert answer["message"] == "Internal server error"
        await ws.send('{"action":"sync"}')
        # sync is one-way: its answer is not forwarded, but the socket still works
        await functions.wait_for("WsSync")
        await ws.send('{"action":"send"}')
        assert json.loads(await ws.recv())["message"] == "Internal server error"


async def test_messages_are_handled_concurrently_as_separate_invocations() -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(event: dict[str, Any]) -> Any:
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
        return {"statusCode": 200, "body": "slow"}

    functions = FakeFunctions({"WsSync": slow, "WsSend": reply("fast")})
    async with running_gateway(functions) as gateway, ws_connect(gateway) as ws:
        await ws.send('{"action":"sync"}')
        await functions.wait_for("WsSync")
        await ws.send('{"action":"send"}')
        # send is answered while sync is still running
        assert json.loads(await ws.recv()) == "fast"
        release.set()


async def test_client_close_code_and_reason_reach_disconnect() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway:
        async with ws_connect(gateway) as ws:
            await ws.close(code=4000, reason="bye now")
        event = await functions.wait_for("WsDisconnect")
        assert len(gateway.registry) == 0
    context = event["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (4000, "bye now")


async def test_two_connections_get_distinct_ids_and_both_disconnect() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway:
        async with ws_connect(gateway) as first, ws_connect(gateway) as second:
            assert len(gateway.registry) == 2
            await first.send("x")
            await second.send("y")
            await functions.wait_for("WsDefault", 2)
        await functions.wait_for("WsDisconnect", 2)
        assert len(gateway.registry) == 0
    ids = {e["requestContext"]["connectionId"] for e in functions.events_of("WsConnect")}
    gone = {e["requestContext"]["connectionId"] for e in functions.events_of("WsDisconnect")}
    assert len(ids) == 2
    assert ids == gone


async def test_stopping_the_gateway_closes_connections_going_away_and_runs_disconnect() -> None:
    functions = FakeFunctions()
    async with running_gateway(functions) as gateway:
        ws = await ws_connect(gateway)
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    assert functions.events_of("WsDisconnect")[0]["requestContext"]["disconnectStatusCode"] == 1001
