"""PUT/DELETE /v1/account/registration-lock and re-registration through the HttpApi
handler: a number signed in on a new phone moves its account there (the old
devices are told, then signed out); a locked, active account needs its PIN (423
without it, the code staying usable; 429 pin_backoff after 5 wrong ones)."""

from __future__ import annotations

from typing import Any

import pytest

from parley_server.logic import tokens
from parley_server.logic.ports import Caller
from parley_server.wiring import adapters
from tests.integration.conftest import PHONE, Clock, SignIn, http
from tests.integration.test_http_harness import Answer, sms_code
from tests.integration.test_http_harness import Device as Signed
from tests.integration.ws_harness import Device, Harness

PIN = "24681357"
LOCK = "/v1/account/registration-lock"


@pytest.fixture
def ws(http_ws: Harness) -> Harness:
    return http_ws


def new_code(ws: Harness, clock: Clock, phone: str = PHONE) -> str:
    clock.offset += 60  # past the resend cool-down
    asked = http(ws, "POST", "/v1/auth/otp", body={"phone": phone})
    assert asked.status == 202, asked.body
    return sms_code(phone)


def verify(ws: Harness, code: str, pin: str | None = None, phone: str = PHONE) -> Answer:
    body: dict[str, Any] = {"phone": phone, "code": code}
    if pin is not None:
        body["pin"] = pin
    return http(ws, "POST", "/v1/auth/verify", body=body)


def companion_of(ws: Harness, primary: Signed) -> str:
    """An access token of a companion device on the primary's account (as linking
    would register it)."""
    ws.function_env("HttpApi")
    deps = adapters()
    device_id = "c0ffee00c0ffee00"
    deps.users.add_device(primary.user_id, device_id, clock_now(), role="companion", key_index=1)
    return tokens.issue_access_token(
        deps.keys(), Caller(primary.user_id, device_id), now=clock_now(), ttl_s=900
    )


def clock_now() -> float:
    from parley_server.handlers import http_api

    return http_api._now()


def lock_state(ws: Harness, user_id: str) -> Any:
    state = ws.users().registration_lock(user_id)
    assert state is not None
    return state


def test_the_primary_sets_and_removes_the_lock_and_a_companion_may_not(
    ws: Harness, sign_in: SignIn
) -> None:
    phone = sign_in()
    companion = companion_of(ws, phone)

    answer = http(ws, "PUT", LOCK, body={"pin": PIN}, token=phone.access_token)
    assert (answer.status, answer.body) == (204, None)
    assert lock_state(ws, phone.user_id).verifier.startswith("$argon2id$")

    for method, body in (("PUT", {"pin": "11112222"}), ("DELETE", None)):
        refused = http(ws, method, LOCK, body=body, token=companion)
        assert (refused.status, refused.code) == (403, "forbidden"), refused.body
    assert lock_state(ws, phone.user_id).verifier is not None

    answer = http(ws, "DELETE", LOCK, token=phone.access_token)
    assert (answer.status, answer.body) == (204, None)
    assert lock_state(ws, phone.user_id).verifier is None


@pytest.mark.parametrize(
    "body",
    [{}, {"pin": "12345"}, {"pin": "1" * 65}, {"pin": "12345x"}, {"pin": 123456}, {"pin": None}],
)
def test_a_malformed_pin_is_refused_and_changes_nothing(
    ws: Harness, sign_in: SignIn, body: dict[str, Any]
) -> None:
    phone = sign_in()
    answer = http(ws, "PUT", LOCK, body=body, token=phone.access_token)
    assert (answer.status, answer.code) == (400, "invalid_request")
    assert lock_state(ws, phone.user_id).verifier is None


def test_the_lock_routes_need_a_token(ws: Harness) -> None:
    assert http(ws, "PUT", LOCK, body={"pin": PIN}).status == 401
    assert http(ws, "DELETE", LOCK).status == 401


def test_signing_in_again_moves_the_account_and_the_old_devices_are_told(
    ws: Harness, sign_in: SignIn, clock: Clock
) -> None:
    old = sign_in()
    online = ws.connect(Device(old.user_id, old.device_id))

    answer = verify(ws, new_code(ws, clock))

    assert answer.status == 200, answer.body
    assert answer.body["user_id"] == old.user_id
    new_device = answer.body["device_id"]
    assert new_device != old.device_id
    assert online.connection_id is not None
    notices = [
        e for e in ws.endpoint.events(online.connection_id) if e.get("event") == "devices_changed"
    ]
    assert notices == [
        {"event": "devices_changed", "reason": "reregistered", "device_id": new_device}
    ]
    assert ws.endpoint.closed == [online.connection_id]
    # the old device is signed out, and its refresh says why (a device that was
    # offline, with no connection to tell, learns it there)
    refresh = http(ws, "POST", "/v1/auth/refresh", body={"refresh_token": old.refresh_token})
    assert (refresh.status, refresh.code) == (401, "device_signed_out")
    assert refresh.body["error"]["reason"] == "reregistered"
    assert "registered on another phone" in refresh.body["error"]["message"]
    assert http(ws, "GET", "/v1/devices", token=old.access_token).status == 401
    mine = http(ws, "GET", "/v1/devices", token=answer.body["access_token"])
    assert [d["device_id"] for d in mine.body["devices"]] == [new_device]


def test_a_locked_account_answers_423_and_the_code_still_works_with_the_pin(
    ws: Harness, sign_in: SignIn, clock: Clock
) -> None:
    old = sign_in()
    assert http(ws, "PUT", LOCK, body={"pin": PIN}, token=old.access_token).status == 204
    code = new_code(ws, clock)

    locked = verify(ws, code)
    assert (locked.status, locked.body) == (
        423,
        {
            "error": {
                "code": "registration_locked",
                "message": "this number's account has a registration lock: give its PIN",
                "attempts_left": 5,
            }
        },
    )
    wrong = verify(ws, code, pin="99999999")
    assert (wrong.status, wrong.code, wrong.body["error"]["attempts_left"]) == (
        423,
        "registration_locked",
        4,
    )
    malformed = verify(ws, code, pin="12")
    assert (malformed.status, malformed.code) == (400, "invalid_request")
    # nothing moved: the old device still works
    assert http(ws, "GET", "/v1/devices", token=old.access_token).status == 200

    answer = verify(ws, code, pin=PIN)
    assert answer.status == 200, answer.body
    assert answer.body["user_id"] == old.user_id
    refresh = http(ws, "POST", "/v1/auth/refresh", body={"refresh_token": old.refresh_token})
    assert (refresh.status, refresh.code) == (401, "device_signed_out")
    # the lock stays with the account, its count afresh
    state = lock_state(ws, old.user_id)
    assert state.verifier is not None
    assert state.failures == 0


def test_wrong_pins_back_off_after_five(ws: Harness, sign_in: SignIn, clock: Clock) -> None:
    old = sign_in()
    assert http(ws, "PUT", LOCK, body={"pin": PIN}, token=old.access_token).status == 204
    code = new_code(ws, clock)
    for left in (4, 3, 2, 1, 0):
        wrong = verify(ws, code, pin="10101010")
        assert (wrong.status, wrong.body["error"].get("attempts_left")) == (423, left)
    assert wrong.body["error"]["retry_after"] == 60

    code = new_code(ws, clock)  # a minute later: a fresh code, and one more try allowed
    wrong = verify(ws, code, pin="10101010")
    assert (wrong.status, wrong.body["error"]["retry_after"]) == (423, 120)

    clock.offset += 30
    waiting = verify(ws, code, pin=PIN)
    assert (waiting.status, waiting.code) == (429, "pin_backoff")
    assert waiting.body["error"]["retry_after"] == 90
    assert waiting.headers["retry-after"] == "90"

    clock.offset += 90
    answer = verify(ws, code, pin=PIN)
    assert answer.status == 200, answer.body
    assert answer.body["user_id"] == old.user_id


def test_an_account_inactive_for_7_days_loses_its_lock(
    ws: Harness, sign_in: SignIn, clock: Clock
) -> None:
    old = sign_in()
    assert http(ws, "PUT", LOCK, body={"pin": PIN}, token=old.access_token).status == 204
    clock.offset += 7 * 24 * 3600

    answer = verify(ws, new_code(ws, clock))

    assert answer.status == 200, answer.body
    assert answer.body["user_id"] == old.user_id
    assert lock_state(ws, old.user_id).verifier is None
