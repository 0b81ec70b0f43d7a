"""GET /v1/devices and DELETE /v1/devices/{id} through the HttpApi handler: a user
sees their signed-in devices and signs one out for good, from any of them (a lost
laptop); its tokens stop working, senders stop seeing it, and its open WebSocket
connections are closed at once."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Clock, SignIn, http
from tests.integration.test_http_harness import Device as Signed
from tests.integration.ws_harness import Device, Harness


@pytest.fixture
def ws(http_ws: Harness) -> Harness:
    return http_ws


def device_ids(ws: Harness, who: Signed) -> list[tuple[str, bool, bool]]:
    answer = http(ws, "GET", "/v1/devices", token=who.access_token)
    assert answer.status == 200, answer.body
    return [(d["device_id"], d["current"], d["ready"]) for d in answer.body["devices"]]


def test_the_list_shows_every_signed_in_device_oldest_first_and_which_is_this_one(
    ws: Harness,
    sign_in: SignIn,
    clock: Clock,
) -> None:
    phone = sign_in()
    laptop = sign_in()  # linked to the phone's account
    assert laptop.user_id == phone.user_id

    assert device_ids(ws, phone) == [
        (phone.device_id, True, True),
        (laptop.device_id, False, True),
    ]
    assert device_ids(ws, laptop) == [
        (phone.device_id, False, True),
        (laptop.device_id, True, True),
    ]
    answer = http(ws, "GET", "/v1/devices", token=phone.access_token)
    assert answer.headers["cache-control"] == "no-store"
    assert {d["push"] for d in answer.body["devices"]} == {None}
    assert all(d["created_at"] > 0 for d in answer.body["devices"])
    assert [(d["role"], d["key_index"]) for d in answer.body["devices"]] == [
        ("primary", 0),
        ("companion", 1),
    ]
    assert answer.body["device_list"] is not None


def test_signing_out_another_device_revokes_it_and_closes_its_connections(
    ws: Harness, sign_in: SignIn
) -> None:
    phone = sign_in()
    laptop = sign_in()
    carol = sign_in("+12025550123")
    online = ws.connect(Device(laptop.user_id, laptop.device_id))
    still = ws.connect(Device(phone.user_id, phone.device_id))

    answer = http(ws, "DELETE", f"/v1/devices/{laptop.device_id}", token=phone.access_token)

    assert (answer.status, answer.body) == (204, None)
    assert ws.endpoint.closed == [online.connection_id]
    assert ws.connection_ids(phone.user_id) == {still.connection_id}
    assert device_ids(ws, phone) == [(phone.device_id, True, True)]
    # its tokens are refused, its refresh token too
    assert http(ws, "GET", "/v1/devices", token=laptop.access_token).status == 401
    refresh = http(ws, "POST", "/v1/auth/refresh", body={"refresh_token": laptop.refresh_token})
    # a code of its own: the app can say "signed out", not "unknown account"
    assert (refresh.status, refresh.code) == (401, "device_signed_out")
    assert "reason" not in refresh.body["error"]  # its owner did it: no number moved
    # senders no longer encrypt for it
    bundle = http(ws, "GET", f"/v1/keys/{phone.user_id}", token=carol.access_token)
    assert [d["device_id"] for d in bundle.body["devices"]] == [phone.device_id]


def test_a_device_may_sign_itself_out(ws: Harness, sign_in: SignIn) -> None:
    phone = sign_in()
    online = ws.connect(Device(phone.user_id, phone.device_id))

    answer = http(ws, "DELETE", f"/v1/devices/{phone.device_id}", token=phone.access_token)

    assert answer.status == 204
    assert ws.endpoint.closed == [online.connection_id]
    assert http(ws, "GET", "/v1/devices", token=phone.access_token).status == 401


@pytest.mark.parametrize("whose", ["unknown", "someone else's", "already signed out"])
def test_a_device_that_is_not_ones_own_is_not_found_and_nothing_changes(
    ws: Harness, sign_in: SignIn, whose: str
) -> None:
    phone = sign_in()
    other = sign_in("+12025550123")
    ws.connect(Device(other.user_id, other.device_id))
    target = {"unknown": "0123456789abcdef", "someone else's": other.device_id}.get(whose)
    if target is None:
        laptop = sign_in()
        assert (
            http(ws, "DELETE", f"/v1/devices/{laptop.device_id}", token=phone.access_token).status
            == 204
        )
        target = laptop.device_id
    closed_before = list(ws.endpoint.closed)
    before = ws.snapshot()

    answer = http(ws, "DELETE", f"/v1/devices/{target}", token=phone.access_token)

    assert answer.status == 404
    assert answer.body["error"]["code"] == "unknown_device"
    assert ws.snapshot() == before
    assert ws.endpoint.closed == closed_before
    assert device_ids(ws, other) == [(other.device_id, True, True)]


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        ("/v1/devices/ABCDEF0123456789", "good", 400),
        ("/v1/devices/0123", "good", 400),
        ("/v1/devices/0123456789abcdef", None, 401),
        ("/v1/devices/0123456789abcdef", "junk", 401),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(
    ws: Harness, sign_in: SignIn, path: str, token: str | None, status: int
) -> None:
    phone = sign_in()
    before = ws.snapshot()

    answer = http(ws, "DELETE", path, token=phone.access_token if token == "good" else token)

    assert answer.status == status
    assert ws.snapshot() == before


def test_a_close_that_fails_is_a_503_and_asking_again_finishes_the_job(
    ws: Harness, sign_in: SignIn
) -> None:
    phone = sign_in()
    laptop = sign_in()
    online = ws.connect(Device(laptop.user_id, laptop.device_id))
    ws.endpoint.fail_closes = True

    failed = http(ws, "DELETE", f"/v1/devices/{laptop.device_id}", token=phone.access_token)

    assert failed.status == 503
    assert http(ws, "GET", "/v1/devices", token=laptop.access_token).status == 401  # revoked
    assert online.connection_id in ws.connection_ids(laptop.user_id)
    ws.endpoint.fail_closes = False
    again = http(ws, "DELETE", f"/v1/devices/{laptop.device_id}", token=phone.access_token)
    assert again.status == 204
    assert ws.endpoint.closed == [online.connection_id]
    assert online.connection_id not in ws.connection_ids(laptop.user_id)
