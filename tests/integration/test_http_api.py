"""The HTTP API end to end through its handler, with the HttpApi function's exact
environment (moto in-process): sign-up, keys, directory, presence, push, refresh."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from parley_server.catalogue import HTTP_ROUTES
from parley_server.handlers import http_api
from parley_server.ids import USER_ID_PATTERN
from parley_server.store.groups import MAX_SEQ
from tests.integration.test_http_harness import (
    ALICE,
    BOB,
    EVENT,
    call,
    invoke,
    register_push,
    sign_up,
    sms_code,
    with_keys,
)

pytestmark = pytest.mark.usefixtures("http_env")


def test_the_recorded_event_is_answered_with_the_error_shape() -> None:
    answer = invoke(json.loads(json.dumps(EVENT)))
    assert answer.status == 401
    assert answer.code == "invalid_token"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_sign_up_asks_a_code_and_verifies_it() -> None:
    asked = call("POST", "/v1/auth/otp", body={"phone": "+1 415-555-2671"})
    assert asked.status == 202
    assert asked.body == {"expires_in": 300, "retry_after": 30}
    verified = call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": sms_code(ALICE)})
    assert verified.status == 200
    assert set(verified.body) == {
        "user_id",
        "device_id",
        "access_token",
        "refresh_token",
        "expires_in",
    }
    assert len(verified.body["user_id"]) == 32
    assert len(verified.body["device_id"]) == 16
    assert verified.body["expires_in"] == 900
    assert verified.headers["cache-control"] == "no-store"
    counted = call("GET", "/v1/keys/count", token=verified.body["access_token"])
    assert (counted.status, counted.body) == (200, {"one_time_prekeys": 0})


def test_signing_in_again_keeps_the_user_and_adds_a_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = sign_up(ALICE)
    later = time.time() + 31  # past the resend cool-down
    monkeypatch.setattr(http_api, "_now", lambda: later)
    assert call("POST", "/v1/auth/otp", body={"phone": ALICE}).status == 202
    again = call("POST", "/v1/auth/verify", body={"phone": ALICE, "code": sms_code(ALICE)})
    assert again.status == 200
    assert again.body["user_id"] == first.user_id
    assert again.body["device_id"] != first.device_id


def test_keys_bundles_directory_and_presence_between_two_users() -> None:
    alice = with_keys(sign_up(ALICE))
    bob = with_keys(sign_up(BOB), range(100, 102))
    found = call("GET", "/v1/users", query={"phone": "+1 (202) 555-0123"}, token=alice.access_token)
    assert (found.status, found.body) == (200, {"user_id": bob.user_id})

    bundle = call("GET", f"/v1/keys/{bob.user_id}", token=alice.access_token)
    assert bundle.status == 200
    [device] = bundle.body["devices"]
    assert bundle.body["user_id"] == bob.user_id
    assert device["device_id"] == bob.device_id
    assert device["identity_key"] == with_identity(bob)
    assert device["signed_prekey"]["key_id"] == 1
    assert device["one_time_prekey"]["key_id"] in (100, 101)
    left = call("GET", "/v1/keys/count", token=bob.access_token)
    assert left.body == {"one_time_prekeys": 1}

    # the claim made them contacts: by default contacts see each other's last seen
    seen = call("GET", f"/v1/presence/{bob.user_id}", token=alice.access_token)
    assert (seen.status, seen.body) == (200, {"user_id": bob.user_id, "last_seen": None})
    hidden = call(
        "PUT", "/v1/settings/presence", body={"last_seen": "nobody"}, token=bob.access_token
    )
    assert hidden.status == 204
    assert hidden.body is None


def with_identity(device: Any) -> str:
    import base64

    return base64.b64encode(device.identity.verify_key.encode()).decode()


def test_push_registration_without_a_platform_application_is_only_pending(aws: Any) -> None:
    alice = sign_up(ALICE)
    answer = call(
        "PUT",
        "/v1/push",
        body={"platform": "fcm", "token": "fcm-token-1"},
        token=alice.access_token,
    )
    assert answer.status == 202
    assert answer.body["challenge_sent"] is False
    from parley_server.catalogue import Setting

    item = aws.client("dynamodb").get_item(
        TableName=aws.settings[Setting.USERS_TABLE],
        Key={"pk": {"S": f"USER#{alice.user_id}"}, "sk": {"S": f"DEVICE#{alice.device_id}"}},
    )["Item"]
    # no platform application in this environment: recorded as pending, nothing to push
    assert item["push_pending_platform"]["S"] == "fcm"
    assert item["push_pending_token"]["S"] == "fcm-token-1"
    assert "push_token" not in item
    assert "push_endpoint" not in item


def test_refresh_rotates_and_a_replayed_token_signs_the_device_out() -> None:
    alice = sign_up(ALICE)
    renewed = call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token})
    assert renewed.status == 200
    assert renewed.body["user_id"] == alice.user_id
    assert renewed.body["device_id"] == alice.device_id
    assert renewed.body["refresh_token"] != alice.refresh_token
    ok = call("GET", "/v1/keys/count", token=renewed.body["access_token"])
    assert ok.status == 200

    # the device goes on with what it got
    newest = call("POST", "/v1/auth/refresh", body={"refresh_token": renewed.body["refresh_token"]})
    assert newest.status == 200

    replay = call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token})
    assert (replay.status, replay.code) == (401, "invalid_token")
    after = call("POST", "/v1/auth/refresh", body={"refresh_token": newest.body["refresh_token"]})
    assert after.status == 401
    refused = call("GET", "/v1/keys/count", token=newest.body["access_token"])
    assert refused.status == 401


def test_a_refresh_whose_answer_was_lost_is_answered_again_and_the_lost_token_voided() -> None:
    alice = sign_up(ALICE)
    lost = call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token})
    assert lost.status == 200  # and never reaches the device

    again = call("POST", "/v1/auth/refresh", body={"refresh_token": alice.refresh_token})

    assert again.status == 200
    assert again.body["refresh_token"] not in (alice.refresh_token, lost.body["refresh_token"])
    assert call("GET", "/v1/keys/count", token=again.body["access_token"]).status == 200
    # what the lost answer held is worth nothing from now on
    assert call("GET", "/v1/keys/count", token=lost.body["access_token"]).status == 401
    # whoever shows the lost token is not the device: it signs the device out
    stolen = call("POST", "/v1/auth/refresh", body={"refresh_token": lost.body["refresh_token"]})
    assert (stolen.status, stolen.code) == (401, "invalid_token")
    assert call("GET", "/v1/keys/count", token=again.body["access_token"]).status == 401


def test_the_openapi_document_describes_every_route_of_the_catalogue() -> None:
    answer = call("GET", "/v1/openapi.json")
    assert answer.status == 200
    paths = answer.body["paths"]
    served = {
        f"{method.upper()} {path}" for path, operations in paths.items() for method in operations
    }
    assert served | {"GET /v1/openapi.json"} == set(HTTP_ROUTES)
    assert answer.body["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    otp_op = paths["/v1/auth/otp"]["post"]
    assert "security" not in otp_op
    assert paths["/v1/keys"]["put"]["security"] == [{"bearer": []}]


def test_the_openapi_document_describes_what_each_route_checks() -> None:
    document = call("GET", "/v1/openapi.json").body
    paths, schemas = document["paths"], document["components"]["schemas"]
    operations = [op for item in paths.values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    # a body: unknown fields refused, bounds as the route checks them
    otp = paths["/v1/auth/otp"]["post"]
    assert otp["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OtpRequest"
    }
    assert schemas["OtpRequest"]["additionalProperties"] is False
    assert schemas["OtpRequest"]["required"] == ["phone"]
    assert schemas["OtpRequest"]["properties"]["phone"]["maxLength"] == 32
    assert {"202", "429"} <= set(otp["responses"])
    # path and query parameters, with their patterns and bounds
    (user_id,) = paths["/v1/keys/{user_id}"]["get"]["parameters"]
    assert (user_id["in"], user_id["required"]) == ("path", True)
    assert user_id["schema"]["pattern"] == USER_ID_PATTERN
    group_id, after = paths["/v1/groups/{group_id}"]["get"]["parameters"]
    assert (group_id["name"], after["name"], after["in"]) == ("group_id", "changes_after", "query")
    assert after["required"] is False
    assert after["schema"] == {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}
    # an answer's schema, and an error's
    bundle = paths["/v1/keys/{user_id}"]["get"]["responses"]
    assert bundle["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BundleAnswer"
    }
    assert bundle["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorAnswer"
    }
    # an answer without a body says so
    assert "content" not in paths["/v1/keys"]["put"]["responses"]["204"]


def test_with_platform_applications_push_registration_creates_an_endpoint(
    aws: Any, function_env: Any
) -> None:
    from parley_server.catalogue import Setting
    from parley_server.store.users import UsersStore

    sns = aws.client("sns")
    # named as the local stack's applications, which the enforced IAM policy names
    apps = {
        "fcm": sns.create_platform_application(
            Name="parley-local-fcm", Platform="GCM", Attributes={}
        ),
        "apns": sns.create_platform_application(
            Name="parley-local-apns", Platform="APNS", Attributes={}
        ),
    }
    aws.settings[Setting.PUSH_APPS] = json.dumps(
        {platform: app["PlatformApplicationArn"] for platform, app in apps.items()}
    )
    function_env("HttpApi")
    alice = with_keys(sign_up(ALICE))
    register_push(aws, function_env, alice, "apns", "ab" * 32)
    users = UsersStore(aws.client("dynamodb"), aws.settings[Setting.USERS_TABLE])
    [device] = users.devices(alice.user_id)
    assert device.push_platform == "apns"
    assert device.push_endpoint is not None
    attributes = sns.get_endpoint_attributes(EndpointArn=device.push_endpoint)["Attributes"]
    assert attributes["Token"] == "ab" * 32
    # registering the same token again keeps the endpoint; a new token replaces it
    register_push(aws, function_env, alice, "apns", "ab" * 32)
    assert users.devices(alice.user_id) == [device]
    register_push(aws, function_env, alice, "apns", "cd" * 32)
    [moved] = users.devices(alice.user_id)
    assert moved.push_endpoint not in (None, device.push_endpoint)
