"""The HTTP API's budgets past sign-in, through the HttpApi handler: bundle claims of
one person by everyone, phone lookups per device, media forms and bytes per device,
contact writes per device; each refusal a 429 `rate_limited` with Retry-After. And
a device that claims leave few one-time prekeys is told on its live connection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley_server.catalogue import Setting
from tests.integration.conftest import SignIn, http
from tests.integration.test_http_harness import Answer
from tests.integration.ws_harness import Device, Harness

PHONES = ["+12025550123", "+14155552671", "+13105550147", "+16175550188", "+17185550199"]


@pytest.fixture
def ws(http_ws: Harness) -> Harness:
    return http_ws


def _limits(ws: Harness, **limits: int) -> None:
    ws.aws.settings[Setting.LIMITS] = json.dumps(limits)


def _refused(answer: Answer) -> None:
    assert answer.status == 429, answer.body
    assert answer.body["error"]["code"] == "rate_limited"
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.body["error"]["retry_after"] == int(answer.headers["retry-after"])


def _get(ws: Harness, who: Any, path: str, **kwargs: Any) -> Answer:
    return http(ws, "GET", path, token=who.access_token, **kwargs)


def test_many_callers_together_may_claim_one_persons_bundle_only_so_often(
    ws: Harness, sign_in: SignIn
) -> None:
    _limits(ws, bundle_claims_of_target_per_hour=2)
    target, *callers = (sign_in(phone) for phone in PHONES[:4])
    for caller in callers[:2]:
        assert _get(ws, caller, f"/v1/keys/{target.user_id}").status == 200

    _refused(_get(ws, callers[2], f"/v1/keys/{target.user_id}"))

    left = _get(ws, target, "/v1/keys/count")
    assert left.body["one_time_prekeys"] == 5 - 2
    assert _get(ws, target, f"/v1/keys/{callers[0].user_id}").status == 200


def test_a_device_that_claims_leave_few_one_time_prekeys_is_told_to_top_up(
    ws: Harness, sign_in: SignIn
) -> None:
    _limits(ws, prekeys_low_below=4)
    target, caller = sign_in(PHONES[0]), sign_in(PHONES[1])
    online = ws.connect(Device(target.user_id, target.device_id))

    assert _get(ws, caller, f"/v1/keys/{target.user_id}").status == 200  # 4 left
    assert ws.events(online, "prekeys_low") == []
    assert _get(ws, caller, f"/v1/keys/{target.user_id}").status == 200  # 3 left

    assert ws.events(online, "prekeys_low") == [{"event": "prekeys_low", "left": 3}]


def test_phone_lookups_have_a_budget_per_device(ws: Harness, sign_in: SignIn) -> None:
    _limits(ws, phone_lookups_per_device_per_hour=2)
    alice, bob = sign_in(PHONES[0]), sign_in(PHONES[1])
    for _ in range(2):
        assert _get(ws, alice, "/v1/users", query={"phone": PHONES[1]}).status == 200

    _refused(_get(ws, alice, "/v1/users", query={"phone": PHONES[1]}))

    assert _get(ws, bob, "/v1/users", query={"phone": PHONES[0]}).status == 200


def test_media_forms_and_declared_bytes_have_budgets_per_device(
    ws: Harness, sign_in: SignIn
) -> None:
    _limits(ws, media_uploads_per_hour=3, media_bytes_per_day=1000)
    alice = sign_in(PHONES[0])

    def form(size: int) -> Answer:
        return http(ws, "POST", "/v1/media", body={"size": size}, token=alice.access_token)

    assert form(900).status == 200
    _refused(form(101))  # past the day's bytes
    assert form(100).status == 200
    _refused(form(1))  # past the hour's forms (the third was counted, then refused)


def test_contact_writes_have_an_hourly_budget_per_device(ws: Harness, sign_in: SignIn) -> None:
    _limits(ws, contact_writes_per_hour=2)
    alice, bob = sign_in(PHONES[0]), sign_in(PHONES[1])
    path = f"/v1/contacts/{bob.user_id}"
    assert http(ws, "PUT", path, token=alice.access_token).status == 204
    assert http(ws, "DELETE", path, token=alice.access_token).status == 204

    _refused(http(ws, "PUT", path, token=alice.access_token))

    assert _get(ws, alice, "/v1/contacts").body["contacts"] == []
