"""Recorded WebSocket events (tests/events/ws_*.json): every handler serves its route's
recording, and the builders the other tests use produce the same shapes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from parley_server.catalogue import WS_ROUTES
from tests.conftest import FakeAws
from tests.device_lists import list_devices
from tests.integration.ws_harness import (
    Device,
    Harness,
    connect_event,
    disconnect_event,
    harness,
    message_event,
    recorded,
)

# the people in the recordings
ALICE = Device("5f0c2a9e8b7d4c1fa3e6b2d90c8e7f41", "9c41e7a2b5d03f68", "L0SM9cOFvHcCIhw=")
BOB = Device("b2e47c1d9a0f4e3b8c6d5a7f1e2d3c4b", "3a7d5e9f1c2b4a60")
FILES = {route.route_key: f"ws_{route.route_key.strip('$')}.json" for route in WS_ROUTES}


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


def _shape(value: Any) -> Any:
    """Keys and value types, recursively: what a handler can rely on."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


def _built(route: str) -> dict[str, Any]:
    if route == "$connect":
        return connect_event("c=", ALICE.user_id, ALICE.device_id)
    if route == "$disconnect":
        return disconnect_event("c=", ALICE.user_id, ALICE.device_id)
    return message_event(route, "{}", "c=", ALICE.user_id, ALICE.device_id)


@pytest.mark.parametrize("route", sorted(FILES))
def test_builders_make_the_shape_of_the_recorded_event(route: str) -> None:
    event = recorded(FILES[route])
    assert event["requestContext"]["routeKey"] == route
    built = _built(route)
    assert _shape(built["requestContext"]) == _shape(event["requestContext"])
    assert set(built) == set(event)


def _register(ws: Harness, device: Device, phone: str) -> None:
    users = ws.users()
    users.create_user(device.user_id, phone, time.time())
    users.add_device(device.user_id, device.device_id, time.time())
    users.activate_device(device.user_id, device.device_id)
    list_devices(users, device.user_id, [device.device_id])


def test_each_recorded_event_is_served_by_its_handler(ws: Harness) -> None:
    _register(ws, ALICE, "+15550100001")
    _register(ws, BOB, "+15550100002")
    route_function = {r.route_key: r.function for r in WS_ROUTES}

    def play(route: str) -> dict[str, Any]:
        return ws.invoke(route_function[route], recorded(FILES[route]))

    assert play("$connect") == {"statusCode": 200}
    assert ws.connection_ids(ALICE.user_id) == {ALICE.connection_id}

    sent = json.loads(play("send")["body"])
    assert (sent["event"], sent["id"]) == ("sent", "01HZX3K9T5")
    assert [i["sk"]["S"] for i in ws.mailbox_items(BOB)] == [
        f"m#{ALICE.user_id}#{ALICE.device_id}#01HZX3K9T5"
    ]

    # the recorded ack names a message from Bob with client id 01HZX3KB2Q
    bob = ws.connect(BOB)
    ws.send(bob, ALICE.user_id, {ALICE.device_id: b"hi alice"}, client_id="01HZX3KB2Q")
    assert play("ack") == {"statusCode": 200}
    assert ws.mailbox_items(ALICE) == []
    assert [r["ids"] for r in ws.events(bob, "receipt")] == [["01HZX3KB2Q"]]

    assert play("receipt") == {"statusCode": 200}
    assert [r["status"] for r in ws.events(bob, "receipt")] == ["delivered", "read"]

    assert play("typing") == {"statusCode": 200}
    assert ws.events(bob, "typing")[0]["state"] == "on"

    assert play("sync") == {"statusCode": 200}
    assert ws.events(ALICE)[-1] == {"event": "synced", "more": False, "cursor": None}

    assert play("$default") == {"statusCode": 200}
    error = ws.events(ALICE)[-1]
    assert (error["event"], error["code"], error["ref"]) == ("error", "unknown_action", "c-77")

    assert play("$disconnect") == {"statusCode": 200}
    assert ws.connection_ids(ALICE.user_id) == set()
