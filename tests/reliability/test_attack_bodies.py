"""Attack: bodies built to hurt a parser: oversized, nested thousands deep, numbers
with thousands of digits.

Each must get a clear 4xx (HTTP) or `error` event (WebSocket), change nothing,
and leave the function serving the next request: in-process through each
function's handler, and through the running stack's gateway.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from parley_server.handlers.http_api import MAX_BODY_BYTES
from tests.conftest import FakeAws
from tests.integration.test_http_harness import Device, call, http_event, invoke, sign_up
from tests.integration.ws_harness import Harness, harness, message_event
from tests.reliability.stack import Stack, http_from
from tests.reliability.stack import sign_up as sign_up_on_stack

DEEP = 100_000  # levels: far past any parser's recursion limit, still under 128 KiB


def nested_list(depth: int = DEEP // 2) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int = DEEP // 8) -> str:
    return '{"a":' * depth + "1" + "}" * depth


HOSTILE_HTTP_BODIES = {
    "nested-list": nested_list(),
    "nested-object": nested_object(),
    "nested-inside-a-field": '{"phone":' + nested_list(DEEP // 4) + "}",
    "number-of-5000-digits": '{"phone":' + "9" * 5000 + "}",
    "float-overflowing": '{"phone":1e99999}',
    "oversized": json.dumps({"phone": "+1" + "5" * (MAX_BODY_BYTES + 10)}),
    "oversized-whitespace": "{" + " " * (MAX_BODY_BYTES + 10) + "}",
    "lone-surrogate": '{"phone":"\\udcff"}',  # valid JSON, not encodable as UTF-8
}

# (method, path, needs a token)
WRITE_ROUTES = [
    ("POST", "/v1/auth/otp", False),
    ("POST", "/v1/auth/verify", False),
    ("POST", "/v1/auth/refresh", False),
    ("PUT", "/v1/keys", True),
    ("PUT", "/v1/push", True),
    ("POST", "/v1/push/verify", True),
    ("POST", "/v1/media", True),
    ("PUT", "/v1/settings/presence", True),
    ("POST", "/v1/groups", True),
    ("POST", f"/v1/groups/{'1' * 32}/changes", True),
]


@pytest.fixture
def alice(function_env: Any) -> Device:
    function_env("HttpApi")
    return sign_up("+14155552671")


@pytest.mark.parametrize("body", HOSTILE_HTTP_BODIES, ids=str)
@pytest.mark.parametrize(("method", "path", "auth"), WRITE_ROUTES, ids=lambda v: str(v))
def test_a_hostile_http_body_gets_a_clear_4xx(
    alice: Device, method: str, path: str, auth: bool, body: str
) -> None:
    token = alice.access_token if auth else None

    answer = call(method, path, raw=HOSTILE_HTTP_BODIES[body], token=token)

    assert 400 <= answer.status < 500, answer.body
    assert isinstance(answer.body["error"]["code"], str)
    if body.startswith("oversized"):
        assert (answer.status, answer.code) == (413, "payload_too_large")
    # and the function goes on serving
    assert call("GET", "/v1/keys/count", token=alice.access_token).status == 200


@pytest.mark.parametrize(("method", "path", "auth"), WRITE_ROUTES, ids=lambda v: str(v))
def test_a_body_that_is_not_utf8_gets_a_clear_4xx(
    alice: Device, method: str, path: str, auth: bool
) -> None:
    # API Gateway hands a body that is not UTF-8 text to the function as base64
    event = http_event(method, path, token=alice.access_token if auth else None)
    event["body"] = base64.b64encode(b'{"phone": "\xff\xfe"}').decode()
    event["isBase64Encoded"] = True
    event["headers"]["content-type"] = "application/json"

    answer = invoke(event)

    assert (answer.status, answer.code) == (400, "invalid_request"), answer.body


# -- WebSocket, in-process ------------------------------------------------------------------


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


# Whole documents no route can parse.
HOSTILE_FRAMES = {
    "nested-list": nested_list(),
    "nested-object": nested_object(),
    "nested-in-a-field": '{"action":"send","id":"x","to":' + nested_list(DEEP // 4) + "}",
    "number-of-5000-digits": '{"action":"sync","after":' + "9" * 5000 + "}",
}
# Hostile values in the fields a route reads (json.dumps writes a lone surrogate
# as the escape \\udcff: valid JSON that no UTF-8 encoder accepts).
A, B, LONE = "a" * 32, "b" * 16, "\udcff"
HOSTILE_FIELDS = [
    ("send", json.dumps({"action": "send", "id": "x", "to": A, "payloads": {LONE: "eA=="}})),
    ("send", json.dumps({"action": "send", "id": "x", "to": A, "payloads": {B: LONE}})),
    ("send", json.dumps({"action": "send", "id": LONE, "to": A, "payloads": {B: "eA=="}})),
    ("send", json.dumps({"action": "send", "id": "x", "to": "g:" + LONE, "body": "eA=="})),
    ("ack", '{"action":"ack","ids":[1e99999]}'),
    ("ack", json.dumps({"action": "ack", "ids": [LONE]})),
    ("receipt", json.dumps({"action": "receipt", "to": A, "status": "read", "ids": [LONE]})),
    ("sync", json.dumps({"action": "sync", "after": LONE})),
    ("sync", '{"action":"sync","after":1e99999}'),
    ("typing", json.dumps({"action": "typing", "to": LONE, "state": "on"})),
    ("$default", json.dumps({"action": LONE})),
]
ROUTES = {
    "send": "WsSend",
    "ack": "WsAck",
    "receipt": "WsReceipt",
    "sync": "WsSync",
    "typing": "WsTyping",
    "$default": "WsDefault",
}


def _refused_clearly(ws: Harness, route: str, body: str) -> None:
    (device,) = ws.user()
    device = ws.connect(device)
    assert device.connection_id is not None
    before = ws.snapshot()

    answer = ws.invoke(
        ROUTES[route],
        message_event(route, body, device.connection_id, device.user_id, device.device_id),
    )

    assert answer["statusCode"] == 200
    errors = [json.loads(answer["body"])] if "body" in answer else ws.events(device, "error")
    assert len(errors) == 1, errors
    assert errors[0]["event"] == "error"
    assert errors[0]["code"] in {
        "invalid_json",
        "invalid_request",
        "invalid_base64",
        "unknown_action",
    }, errors
    assert ws.snapshot() == before


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("frame", HOSTILE_FRAMES, ids=str)
def test_a_hostile_frame_gets_an_error_event_on_every_route(
    ws: Harness, route: str, frame: str
) -> None:
    # API Gateway routes on the body's action; a hostile body may reach any route
    _refused_clearly(ws, route, HOSTILE_FRAMES[frame])


@pytest.mark.parametrize(("route", "body"), HOSTILE_FIELDS)
def test_a_hostile_value_in_a_field_gets_an_error_event(ws: Harness, route: str, body: str) -> None:
    _refused_clearly(ws, route, body)


def test_an_oversized_ciphertext_or_id_list_is_refused_as_too_large(ws: Harness) -> None:
    alice = ws.connect(ws.user()[0])
    bob = ws.connect(ws.user()[0])

    too_big = ws.send(alice, bob.user_id, {bob.device_id: b"x" * (64 * 1024 + 1)}, "big")
    ws.frame(alice, {"action": "ack", "ids": [f"m#{'a' * 32}#{'1' * 16}#c{i}" for i in range(101)]})

    assert (too_big["code"], too_big["limit"]) == ("payload_too_large", 64 * 1024)
    assert ws.events(alice, "error")[0]["code"] == "payload_too_large"
    assert ws.mailbox_items(bob) == []


# -- through the running stack's gateway ----------------------------------------------------


async def test_the_gateway_refuses_bodies_over_its_limit_and_the_api_those_over_128_kib(
    stack: Stack,
) -> None:
    async with http_from() as http:
        json_type = {"Content-Type": "application/json"}
        async with http.post(
            stack.http_url + "/v1/auth/otp",
            data=b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}",
            headers=json_type,
        ) as r:
            api = (r.status, await r.json())
        async with http.post(
            stack.http_url + "/v1/auth/otp", data=b" " * (10 * 1024 * 1024 + 1), headers=json_type
        ) as r:
            gateway = r.status

    assert (api[0], api[1]["error"]["code"]) == (413, "payload_too_large")
    assert gateway == 413


async def test_a_nested_frame_on_the_stack_is_answered_and_the_connection_lives(
    stack: Stack,
) -> None:
    alice = await sign_up_on_stack(stack)
    async with (
        http_from() as http,
        http.ws_connect(f"{stack.ws_url}?token={alice.access_token}") as ws,
    ):
        for frame in (nested_list(15_000), '{"action":"send","x":' + nested_list(15_000) + "}"):
            await ws.send_str(frame)
            received = await ws.receive(timeout=10)
            assert received.type is aiohttp.WSMsgType.TEXT, received
            answer = json.loads(received.data)
            assert answer.get("event") == "error", answer
            assert answer["code"] == "invalid_json"
        await ws.send_str('{"action":"sync"}')
        synced = json.loads((await ws.receive(timeout=10)).data)
        assert synced["event"] == "synced"
