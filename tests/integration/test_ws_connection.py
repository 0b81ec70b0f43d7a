"""$connect, $disconnect, $default and `typing` through their handlers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.integration.ws_harness import Harness, connect_event, harness, new_connection_id


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


def test_connect_records_the_device_connection_with_a_ttl_past_two_hours(ws: Harness) -> None:
    (bob,) = ws.user()
    before = time.time()

    bob = ws.connect(bob)

    (item,) = ws.connection_items(bob.user_id)
    assert item["connection_id"]["S"] == bob.connection_id
    assert item["device_id"]["S"] == bob.device_id
    assert int(item["expires_at"]["N"]) - before > 2 * 3600


def test_connect_without_an_authorized_caller_is_refused_and_records_nothing(
    ws: Harness,
) -> None:
    event = connect_event(new_connection_id(), "a" * 32, "1" * 16)
    del event["requestContext"]["authorizer"]

    assert ws.invoke("WsConnect", event)["statusCode"] == 401
    assert ws.connection_ids("a" * 32) == set()


def _dialled(connection_id: str, user_id: str, device_id: str, batch: str) -> dict[str, Any]:
    event = connect_event(connection_id, user_id, device_id)
    event["queryStringParameters"]["batch"] = batch
    event["multiValueQueryStringParameters"]["batch"] = [batch]
    return event


def test_a_connection_dialled_with_batch_gets_a_frames_messages_in_one_post(
    ws: Harness,
) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice = ws.connect(alice)
    connection_id = new_connection_id()
    event = _dialled(connection_id, bob.user_id, bob.device_id, "1")
    assert ws.invoke("WsConnect", event) == {"statusCode": 200}
    (item,) = ws.connection_items(bob.user_id)
    assert item["batched"] == {"BOOL": True}

    frame = {
        "action": "send",
        "id": "m0",
        "to": bob.user_id,
        "payloads": {bob.device_id: "b25l"},
        "more": [{"id": "m1", "payloads": {bob.device_id: "dHdv"}}],
    }
    assert ws.frame(alice, frame)["statusCode"] == 200

    (post,) = ws.endpoint.posted(connection_id)
    assert post["event"] == "batch"
    assert [e["client_id"] for e in post["events"]] == ["m0", "m1"]


@pytest.mark.parametrize("batch", ["yes", "true", "2", ""])
def test_a_connection_dialled_with_a_bad_batch_option_is_refused_and_records_nothing(
    ws: Harness, batch: str
) -> None:
    (bob,) = ws.user()
    event = _dialled(new_connection_id(), bob.user_id, bob.device_id, batch)

    assert ws.invoke("WsConnect", event)["statusCode"] == 400
    assert ws.connection_items(bob.user_id) == []


def test_disconnect_forgets_the_connection_and_records_last_seen(ws: Harness) -> None:
    (bob,) = ws.user()
    bob = ws.connect(bob)
    before = time.time()

    assert ws.disconnect(bob) == {"statusCode": 200}

    assert ws.connection_ids(bob.user_id) == set()
    _, profile, _ = ws.users().presence_view(bob.user_id, bob.user_id)
    assert profile is not None
    assert profile.last_seen is not None
    assert before - 1 <= profile.last_seen <= time.time() + 1


def test_typing_is_relayed_to_live_connections_only_and_never_stored(ws: Harness) -> None:
    (alice,) = ws.user()
    phone, laptop = ws.user(devices=2)
    alice, phone = ws.connect(alice), ws.connect(phone)
    before = ws.snapshot()

    ws.frame(alice, {"action": "typing", "to": phone.user_id, "state": "on"})

    assert ws.events(phone) == [
        {"event": "typing", "from": alice.user_id, "from_device": alice.device_id, "state": "on"}
    ]
    assert ws.snapshot() == before
    assert ws.mailbox_items(laptop) == []
    assert ws.events(alice) == []


def test_typing_to_someone_offline_goes_nowhere(ws: Harness) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice = ws.connect(alice)
    before = ws.snapshot()

    ws.frame(alice, {"action": "typing", "to": bob.user_id, "state": "off"})

    assert ws.snapshot() == before
    assert ws.endpoint.events(alice.connection_id or "") == []


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"action": "typing", "state": "on"}, "to"),
        ({"action": "typing", "to": "{bob}", "state": "yes"}, "state"),
        ({"action": "typing", "to": "{bob}"}, "state"),
    ],
)
def test_bad_typing_frames_are_refused_and_relay_nothing(
    ws: Harness, frame: dict[str, Any], field: str
) -> None:
    alice = ws.connect(ws.user()[0])
    bob = ws.connect(ws.user()[0])
    frame = {k: v.replace("{bob}", bob.user_id) for k, v in frame.items()}

    ws.frame(alice, frame)

    (error,) = ws.events(alice)
    assert (error["event"], error["code"], error["field"]) == ("error", "invalid_request", field)
    assert ws.events(bob) == []


@pytest.mark.parametrize(
    ("body", "code", "ref"),
    [
        ("hello there", "invalid_json", None),
        ("[1, 2, 3]", "invalid_json", None),
        ('{"action": "dance", "id": "d-1"}', "unknown_action", "d-1"),
        ('{"id": "x-1"}', "unknown_action", "x-1"),
        ('{"action": 7}', "unknown_action", None),
    ],
)
def test_default_route_answers_a_clear_error_and_changes_nothing(
    ws: Harness, body: str, code: str, ref: str | None
) -> None:
    bob = ws.connect(ws.user()[0])
    before = ws.snapshot()

    assert ws.frame(bob, body) == {"statusCode": 200}

    (error,) = ws.events(bob)
    assert error["event"] == "error"
    assert error["code"] == code
    assert error.get("ref") == ref
    assert error["message"]
    assert ws.snapshot() == before
