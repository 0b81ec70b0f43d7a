"""Every bad input of issue 4 through the HttpApi handler: a clear 4xx (never a
5xx), the wire's error shape, and nothing changed."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from parley_server.catalogue import Setting
from parley_server.handlers import http_api
from parley_server.models.errors import SmsUnavailable
from parley_server.wiring import adapters
from tests.conftest import FakeAws
from tests.integration.test_http_harness import (
    ALICE,
    BOB,
    Answer,
    Device,
    call,
    key_upload,
    sign_up,
    sms_code,
    with_keys,
)

pytestmark = pytest.mark.usefixtures("http_env")


class State:
    """Everything a request could change (rate-limit counters aside) and every text sent."""

    def __init__(self, aws: FakeAws) -> None:
        self.aws = aws

    def snapshot(self) -> str:
        ddb = self.aws.client("dynamodb")
        tables = {
            setting: sorted(
                json.dumps(item, sort_keys=True, default=str)
                for item in ddb.scan(TableName=self.aws.settings[setting])["Items"]
            )
            for setting in (Setting.USERS_TABLE, Setting.OTP_TABLE, Setting.PREKEYS_TABLE)
        }
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sns import sns_backends

        texts = len(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages)
        return json.dumps({"tables": tables, "texts": texts}, sort_keys=True)


@pytest.fixture
def state(aws: FakeAws) -> State:
    return State(aws)


@pytest.fixture
def alice() -> Device:
    return sign_up(ALICE)


def refused(answer: Answer, status: int, code: str) -> None:
    assert (answer.status, answer.code) == (status, code), answer.body
    assert isinstance(answer.body["error"]["message"], str)
    assert answer.body["error"]["message"]


@pytest.fixture
def unchanged(state: State) -> Iterator[None]:
    before = state.snapshot()
    yield
    assert state.snapshot() == before


# -- asking for a code ------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    ["4155552671", "+1 415 555", "+999 123456", "call me", "+1 900 555 1234", "+" + "4" * 31],
)
def test_a_malformed_phone_is_refused(phone: str, unchanged: None) -> None:
    refused(call("POST", "/v1/auth/otp", body={"phone": phone}), 400, "invalid_phone")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"phone": 14155552671},
        {"phone": ALICE, "admin": True},
        {"phone": "+" + "1" * 40},
        [ALICE],
        None,
    ],
)
def test_a_malformed_otp_request_is_refused(body: Any, unchanged: None) -> None:
    answer = call("POST", "/v1/auth/otp", raw=json.dumps(body))
    refused(answer, 400, "invalid_request")


def test_a_body_that_is_not_json_is_refused(unchanged: None) -> None:
    answer = call("POST", "/v1/auth/otp", raw='{"phone": "+14155552671"')
    refused(answer, 400, "invalid_request")
    deep = call("POST", "/v1/auth/otp", raw="[" * 100_000)
    assert deep.status in (400, 413)


def test_an_oversized_body_is_refused(unchanged: None) -> None:
    body = json.dumps({"phone": ALICE, "pad": "x" * (http_api.MAX_BODY_BYTES + 1)})
    refused(call("POST", "/v1/auth/otp", raw=body), 413, "payload_too_large")


def test_a_body_that_is_not_json_by_type_is_refused(unchanged: None) -> None:
    answer = call(
        "POST",
        "/v1/auth/otp",
        raw="phone=+14155552671",
        headers={"content-type": "text/plain"},
    )
    refused(answer, 415, "unsupported_media_type")


def test_the_cool_down_answers_429_with_retry_after(state: State) -> None:
    assert call("POST", "/v1/auth/otp", body={"phone": ALICE}).status == 202
    before = state.snapshot()
    answer = call("POST", "/v1/auth/otp", body={"phone": ALICE})
    refused(answer, 429, "rate_limited")
    assert 1 <= int(answer.headers["retry-after"]) <= 30
    assert answer.body["error"]["retry_after"] == int(answer.headers["retry-after"])
    assert state.snapshot() == before


class BrokenSms:
    def send(self, phone: str, text: str) -> None:
        raise SmsUnavailable("could not send the text message")


def test_when_sms_fails_the_answer_is_503_and_no_code_is_usable(
    monkeypatch: pytest.MonkeyPatch, unchanged: None, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(adapters(), "sms", BrokenSms())
    answer = call("POST", "/v1/auth/otp", body={"phone": ALICE})
    refused(answer, 503, "service_unavailable")
    assert answer.headers["retry-after"] == "1"
    # operators see it apart from other outages (EMF metric on stdout)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert any(m.get("OtpSendFailed") == [1.0] for m in emitted)


# -- verifying it -----------------------------------------------------------------


def asked(phone: str = ALICE) -> str:
    assert call("POST", "/v1/auth/otp", body={"phone": phone}).status == 202
    return sms_code(phone)


@pytest.mark.parametrize("code", ["12a456", "12345", "1234567", "", "١٢٣٤٥٦"])
def test_letters_or_a_wrong_length_in_the_code_are_refused(code: str, state: State) -> None:
    asked()
    before = state.snapshot()
    refused(
        call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": code}),
        400,
        "invalid_request",
    )
    assert state.snapshot() == before  # not even an attempt was spent


def test_a_wrong_code_is_refused_and_creates_no_user(aws: FakeAws) -> None:
    right = asked()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    answer = call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": wrong})
    refused(answer, 401, "invalid_code")
    assert answer.body["error"]["attempts_left"] == 4
    assert wrong not in json.dumps(answer.body)
    users = aws.client("dynamodb").scan(TableName=aws.settings[Setting.USERS_TABLE])["Items"]
    assert users == []


def test_the_fifth_wrong_code_kills_the_code(aws: FakeAws) -> None:
    right = asked()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for _ in range(4):
        call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": wrong})
    fifth = call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": wrong})
    refused(fifth, 429, "too_many_attempts")
    assert "retry-after" in fifth.headers
    late = call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": right})
    refused(late, 429, "too_many_attempts")
    users = aws.client("dynamodb").scan(TableName=aws.settings[Setting.USERS_TABLE])["Items"]
    assert users == []


def test_an_expired_code_is_refused(monkeypatch: pytest.MonkeyPatch, aws: FakeAws) -> None:
    code = asked()
    later = time.time() + 301
    monkeypatch.setattr(http_api, "_now", lambda: later)
    refused(
        call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": code}), 401, "invalid_code"
    )
    users = aws.client("dynamodb").scan(TableName=aws.settings[Setting.USERS_TABLE])["Items"]
    assert users == []


def test_a_replayed_code_is_refused(state: State) -> None:
    code = asked()
    assert call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": code}).status == 200
    before = state.snapshot()
    refused(
        call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": code}), 401, "invalid_code"
    )
    assert state.snapshot() == before


def test_without_the_signing_secret_nothing_is_issued_or_accepted(
    aws: FakeAws, function_env: Any, alice: Device, state: State
) -> None:
    code = asked(BOB)
    aws.client("secretsmanager").delete_secret(
        SecretId=aws.settings[Setting.SIGNING_SECRET_ARN], ForceDeleteWithoutRecovery=True
    )
    function_env("HttpApi")  # a cold start: nothing cached
    before = state.snapshot()
    answer = call("POST", "/v1/auth/verify", body={"phone": BOB, "code": code})
    refused(answer, 503, "service_unavailable")
    refused(call("GET", "/v1/keys/count", token=alice.access_token), 503, "service_unavailable")
    assert state.snapshot() == before


# -- tokens -----------------------------------------------------------------------


def _claims(alice: Device, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "parley",
        "aud": "parley",
        "sub": alice.user_id,
        "did": alice.device_id,
        "iat": now,
        "exp": now + 900,
        "typ": "access",
    }
    claims.update(changes)
    return claims


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bad_tokens(alice: Device) -> dict[str, str]:
    header, payload, signature = alice.access_token.split(".")
    other = json.loads(base64.urlsafe_b64decode(payload + "=="))
    other["sub"] = "b" * 32
    return {
        "tampered": f"{header}.{_b64url(json.dumps(other).encode())}.{signature}",
        "foreign key": jwt.encode(_claims(alice), "x" * 64, algorithm="HS256"),
        "alg none": _b64url(b'{"alg":"none"}')
        + "."
        + _b64url(json.dumps(_claims(alice)).encode())
        + ".",
        "expired": jwt.encode(
            _claims(alice, exp=int(time.time()) - 1), "k" * 64, algorithm="HS256"
        ),
        "wrong audience": jwt.encode(_claims(alice, aud="other"), "k" * 64, algorithm="HS256"),
        "garbage": "garbage",
    }


def test_tampered_expired_or_foreign_tokens_are_refused(alice: Device, state: State) -> None:
    upload = key_upload(alice)
    before = state.snapshot()
    for name, token in bad_tokens(alice).items():
        answer = call("PUT", "/v1/keys", body=upload, token=token)
        assert (answer.status, answer.code) == (401, "invalid_token"), name
    assert state.snapshot() == before


def test_a_token_that_expired_while_held_is_refused(
    alice: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = time.time() + 900
    monkeypatch.setattr(http_api, "_now", lambda: later)
    refused(call("GET", "/v1/keys/count", token=alice.access_token), 401, "invalid_token")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "token"])
def test_missing_or_non_bearer_credentials_are_refused(alice: Device, header: str) -> None:
    answer = call("GET", "/v1/keys/count", headers={"authorization": header} if header else None)
    assert answer.status == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")


# -- keys -------------------------------------------------------------------------


def test_an_oversized_key_upload_is_refused(alice: Device, unchanged: None) -> None:
    answer = call("PUT", "/v1/keys", body=key_upload(alice, range(101)), token=alice.access_token)
    refused(answer, 413, "payload_too_large")


def test_a_bad_signature_is_refused(alice: Device, unchanged: None) -> None:
    upload = key_upload(alice)
    signature = bytearray(base64.b64decode(upload["signed_prekey"]["signature"]))
    signature[0] ^= 1
    upload["signed_prekey"]["signature"] = base64.b64encode(bytes(signature)).decode()
    answer = call("PUT", "/v1/keys", body=upload, token=alice.access_token)
    refused(answer, 400, "invalid_signature")


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        (("identity_key",), base64.b64encode(b"x" * 31).decode(), "invalid_key"),
        (("identity_key",), "***", "invalid_key"),
        (("signed_prekey", "public_key"), base64.b64encode(b"x" * 33).decode(), "invalid_key"),
        (("signed_prekey", "key_id"), -1, "invalid_request"),
        (("signed_prekey", "key_id"), "1", "invalid_request"),
        (("signed_prekey", "key_id"), 1.5, "invalid_request"),
        (("signed_prekey", "key_id"), True, "invalid_request"),
        (("one_time_prekeys",), [{"key_id": 1, "public_key": "AAAA"}], "invalid_key"),
        (("one_time_prekeys",), [{"key_id": -3, "public_key": "A" * 44}], "invalid_request"),
        (("one_time_prekeys",), "lots", "invalid_request"),
        (("signed_prekey",), None, "invalid_request"),
    ],
)
def test_malformed_keys_are_refused(
    alice: Device, path: tuple[str, ...], value: Any, code: str, unchanged: None
) -> None:
    upload = key_upload(alice)
    target = upload
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    refused(call("PUT", "/v1/keys", body=upload, token=alice.access_token), 400, code)


def test_unknown_users_are_not_found(alice: Device, unchanged: None) -> None:
    unknown = "c" * 32
    refused(call("GET", f"/v1/keys/{unknown}", token=alice.access_token), 404, "not_found")
    refused(call("GET", f"/v1/presence/{unknown}", token=alice.access_token), 404, "not_found")
    refused(
        call("GET", "/v1/users", query={"phone": BOB}, token=alice.access_token), 404, "not_found"
    )


def test_malformed_user_ids_and_phones_in_the_path_or_query_are_refused(
    alice: Device, unchanged: None
) -> None:
    for path in ("/v1/keys/ABC", "/v1/presence/" + "A" * 32, "/v1/keys/" + "a" * 33):
        refused(call("GET", path, token=alice.access_token), 400, "invalid_request")
    refused(call("GET", "/v1/users", token=alice.access_token), 400, "invalid_request")
    refused(
        call("GET", "/v1/users", query={"phone": "12"}, token=alice.access_token),
        400,
        "invalid_phone",
    )


def test_a_bundle_of_a_user_without_keys_is_not_found(alice: Device) -> None:
    bob = sign_up(BOB)
    refused(call("GET", f"/v1/keys/{bob.user_id}", token=alice.access_token), 404, "not_found")
    with_keys(bob)
    assert call("GET", f"/v1/keys/{bob.user_id}", token=alice.access_token).status == 200


# -- push, presence, routes ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"platform": "blackberry", "token": "t"},
        {"platform": "fcm", "token": ""},
        {"platform": "fcm", "token": "t" * 4097},
        {"platform": "fcm"},
        {"platform": "apns", "token": "a\nb"},
    ],
)
def test_bad_push_registrations_are_refused(alice: Device, body: Any, unchanged: None) -> None:
    refused(call("PUT", "/v1/push", body=body, token=alice.access_token), 400, "invalid_request")


@pytest.mark.parametrize("body", [{"last_seen": "friends"}, {"last_seen": None}, {}])
def test_bad_presence_settings_are_refused(alice: Device, body: Any, unchanged: None) -> None:
    answer = call("PUT", "/v1/settings/presence", body=body, token=alice.access_token)
    refused(answer, 400, "invalid_request")


def test_unknown_routes_are_not_found_for_callers_and_unauthorized_for_strangers(
    alice: Device,
) -> None:
    refused(call("GET", "/v1/nothing", token=alice.access_token), 404, "not_found")
    refused(call("DELETE", "/v1/keys", token=alice.access_token), 404, "not_found")
    assert call("GET", "/v1/nothing").status == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "fields"),
    [
        # an unknown field, a missing one, a wrong type deep in a list
        ("POST", "/v1/auth/otp", {"phone": ALICE, "admin": True}, None, ["body.admin"]),
        ("POST", "/v1/auth/verify", {"phone": ALICE}, None, ["body.code"]),
        ("PUT", "/v1/keys", "second key id a string", None, ["body.one_time_prekeys.1.key_id"]),
        ("GET", "/v1/keys/ABC", None, None, ["path.user_id"]),
        ("GET", "/v1/users", None, None, ["query.phone"]),
        # path and query both wrong: each is named
        (
            "GET",
            "/v1/groups/XYZ",
            None,
            {"changes_after": "-1"},
            ["path.group_id", "query.changes_after"],
        ),
    ],
)
def test_a_schema_error_names_every_field_it_refused(
    alice: Device,
    method: str,
    path: str,
    body: Any,
    query: dict[str, str] | None,
    fields: list[str],
    unchanged: None,
) -> None:
    if body == "second key id a string":
        body = key_upload(alice, otk_ids=range(3))
        body["one_time_prekeys"][1]["key_id"] = "7"
    answer = call(method, path, body=body, query=query, token=alice.access_token)
    refused(answer, 400, "invalid_request")
    problems = answer.body["error"]["problems"]
    assert [p["field"] for p in problems] == fields
    assert all(p["problem"] for p in problems)
    for problem in problems:
        assert problem["field"] in answer.body["error"]["message"]


def test_a_refused_code_or_token_is_never_echoed_back(unchanged: None) -> None:
    code = "9" * 17  # longer than any code
    answer = call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": code})
    refused(answer, 400, "invalid_request")
    assert answer.body["error"]["problems"][0]["field"] == "body.code"
    assert code not in json.dumps(answer.body)
    token = "t" * 300
    answer = call("POST", "/v1/auth/refresh", body={"refresh_token": token})
    refused(answer, 400, "invalid_request")
    assert token not in json.dumps(answer.body)
