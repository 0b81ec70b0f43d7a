"""Push tokens through the HTTP API (moto in-process, the HttpApi function's exact
environment and IAM policy): a token is used for wake pushes only once the device
that registered it has echoed the challenge pushed through it, so registering
someone else's token takes nothing from them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley_server.catalogue import Setting
from parley_server.store.push import PushNotifier
from parley_server.store.users import UsersStore
from tests.conftest import FakeAws
from tests.integration.test_http_harness import (
    ALICE,
    BOB,
    Answer,
    Device,
    call,
    push_challenges,
    run_fanout_queue,
    sign_up,
    sms_code,
    with_keys,
)

ALICE_TOKEN = "a1" * 32
MALLORY_TOKEN = "ff" * 32


# the process's AWS and its function environment switch, for run_fanout_queue
_ENV: list[Any] = []


@pytest.fixture(autouse=True)
def _env(aws: FakeAws, function_env: Any) -> None:
    _ENV[:] = [aws, function_env]


@pytest.fixture
def apps(aws: FakeAws, function_env: Any) -> dict[str, str]:
    """Platform applications named as the local stack's (the enforced IAM policy names them)."""
    sns = aws.client("sns")
    made = {
        "fcm": sns.create_platform_application(
            Name="parley-local-fcm", Platform="GCM", Attributes={}
        )["PlatformApplicationArn"],
        "apns": sns.create_platform_application(
            Name="parley-local-apns", Platform="APNS", Attributes={}
        )["PlatformApplicationArn"],
    }
    aws.settings[Setting.PUSH_APPS] = json.dumps(made)
    function_env("HttpApi")
    return made


def _users(aws: FakeAws) -> UsersStore:
    return UsersStore(aws.client("dynamodb"), aws.settings[Setting.USERS_TABLE])


def _endpoints() -> dict[str, Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    return dict(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].platform_endpoints)


def _pushes(token: str) -> list[dict[str, Any]]:
    """What was pushed to `token` (its default body), oldest first."""
    return [
        json.loads(json.loads(message)["default"])
        for endpoint in _endpoints().values()
        if endpoint.token == token
        for message in endpoint.messages.values()
    ]


def _challenge(token: str) -> str:
    """The newest challenge pushed to `token`, as the app reads it from its push."""
    challenges = push_challenges(token)
    assert challenges, f"no challenge was pushed to {token}"
    return challenges[-1]


def _register(device: Device, token: str, platform: str = "fcm") -> Answer:
    answer = call(
        "PUT",
        "/v1/push",
        body={"platform": platform, "token": token},
        token=device.access_token,
    )
    run_fanout_queue(_ENV[0], _ENV[1])
    return answer


def _verify(device: Device, challenge: str) -> Answer:
    return call("POST", "/v1/push/verify", body={"challenge": challenge}, token=device.access_token)


def _register_verified(device: Device, token: str, platform: str = "fcm") -> None:
    answer = _register(device, token, platform)
    assert answer.status in (202, 204), answer.body
    if answer.status == 202:
        verified = _verify(device, _challenge(token))
        assert verified.status == 204, verified.body


def _wakes(aws: FakeAws, apps: dict[str, str], device: Device) -> list[str]:
    """Wake `device` as a send to it would; the tokens the wake-up reached."""
    notifier = PushNotifier(aws.client("sns"), apps)
    before = {arn: len(e.messages) for arn, e in _endpoints().items()}
    for found in _users(aws).devices(device.user_id):
        if found.device_id == device.device_id:
            notifier.notify(found)
    return [
        e.token
        for arn, e in _endpoints().items()
        if len(e.messages) > before.get(arn, 0)
        and json.loads(json.loads(list(e.messages.values())[-1])["default"]) == {"type": "wake"}
    ]


# -- the hijack ---------------------------------------------------------------------


def test_registering_someone_elses_token_does_not_stop_their_pushes(
    aws: FakeAws, apps: dict[str, str]
) -> None:
    alice = with_keys(sign_up(ALICE))
    mallory = with_keys(sign_up(BOB))
    _register_verified(alice, ALICE_TOKEN)
    assert _wakes(aws, apps, alice) == [ALICE_TOKEN]

    # Mallory registers Alice's token, then one of his own: he never sees the
    # challenge (it went to Alice's phone), so her token stays hers
    assert _register(mallory, ALICE_TOKEN).status in (202, 204)
    assert _register(mallory, MALLORY_TOKEN).status in (202, 204)

    assert _wakes(aws, apps, alice) == [ALICE_TOKEN]
    assert _wakes(aws, apps, mallory) == []


def test_deleting_the_account_that_registered_someone_elses_token_keeps_their_pushes(
    aws: FakeAws, apps: dict[str, str]
) -> None:
    alice = with_keys(sign_up(ALICE))
    mallory = with_keys(sign_up(BOB))
    _register_verified(alice, ALICE_TOKEN)
    assert _register(mallory, ALICE_TOKEN).status in (202, 204)

    asked = call("POST", "/v1/auth/otp", body={"phone": BOB, "purpose": "delete_account"})
    assert asked.status == 202, asked.body
    deleted = call(
        "DELETE", "/v1/account", body={"code": sms_code(BOB)}, token=mallory.access_token
    )
    assert deleted.status == 204, deleted.body
    assert _wakes(aws, apps, alice) == [ALICE_TOKEN]


# -- the flow -------------------------------------------------------------------------


def test_a_token_is_pending_until_its_challenge_comes_back(
    aws: FakeAws, apps: dict[str, str]
) -> None:
    alice = with_keys(sign_up(ALICE))
    answer = _register(alice, ALICE_TOKEN, "apns")
    assert answer.status == 202, answer.body
    assert answer.body["state"] == "pending"
    assert answer.body["challenge_sent"] is True
    assert "challenge" not in answer.body
    [pushed] = _pushes(ALICE_TOKEN)
    assert set(pushed) == {"type", "challenge"}
    assert pushed["type"] == "push_challenge"
    assert pushed["challenge"] not in json.dumps(answer.body)
    # pending: no wake-up goes to it, and the device list does not show it
    assert _wakes(aws, apps, alice) == []
    listed = call("GET", "/v1/devices", token=alice.access_token).body["devices"]
    assert [d["push"] for d in listed] == [None]

    assert _verify(alice, pushed["challenge"]).status == 204
    assert _wakes(aws, apps, alice) == [ALICE_TOKEN]
    listed = call("GET", "/v1/devices", token=alice.access_token).body["devices"]
    assert [d["push"] for d in listed] == ["apns"]
    # the challenge is spent
    again = _verify(alice, pushed["challenge"])
    assert (again.status, again.code) == (409, "no_push_challenge")


def test_a_wrong_challenge_changes_nothing_and_attempts_are_limited(
    aws: FakeAws, apps: dict[str, str]
) -> None:
    alice = with_keys(sign_up(ALICE))
    _register_verified(alice, ALICE_TOKEN)
    assert _register(alice, MALLORY_TOKEN).status == 202
    right = _challenge(MALLORY_TOKEN)
    wrong = ("x" if right[0] != "x" else "y") + right[1:]
    for left in (4, 3, 2, 1):
        refused = _verify(alice, wrong)
        assert (refused.status, refused.code) == (400, "invalid_push_challenge")
        assert refused.body["error"]["attempts_left"] == left
        # the verified token keeps working meanwhile
        assert _wakes(aws, apps, alice) == [ALICE_TOKEN]
    last = _verify(alice, wrong)
    assert (last.status, last.code) == (400, "invalid_push_challenge")
    assert last.body["error"]["attempts_left"] == 0
    # the pending token is dropped: even the right challenge is refused now
    dead = _verify(alice, right)
    assert (dead.status, dead.code) == (409, "no_push_challenge")
    assert _wakes(aws, apps, alice) == [ALICE_TOKEN]


def test_an_expired_challenge_is_refused_and_changes_nothing(
    aws: FakeAws, apps: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley_server.handlers import http_api

    alice = with_keys(sign_up(ALICE))
    assert _register(alice, ALICE_TOKEN).status == 202
    challenge = _challenge(ALICE_TOKEN)
    real = http_api._now
    monkeypatch.setattr(http_api, "_now", lambda: real() + 601)
    expired = _verify(alice, challenge)
    assert (expired.status, expired.code) == (400, "push_challenge_expired")
    assert _wakes(aws, apps, alice) == []


def test_the_holder_of_a_token_takes_it_over_once_it_proves_it(
    aws: FakeAws, apps: dict[str, str]
) -> None:
    """The same phone, signed in to another account (a reinstall, a second number):
    its app gets the challenge, so the token moves and the old device stops using it."""
    old = with_keys(sign_up(ALICE))
    new = with_keys(sign_up(BOB))
    _register_verified(old, ALICE_TOKEN)
    assert _register(new, ALICE_TOKEN).status == 202
    assert _wakes(aws, apps, old) == [ALICE_TOKEN]  # not moved before the proof
    assert _verify(new, _challenge(ALICE_TOKEN)).status == 204
    assert _wakes(aws, apps, new) == [ALICE_TOKEN]
    assert _wakes(aws, apps, old) == []


def test_a_new_token_replaces_the_old_one_only_once_verified(
    aws: FakeAws, apps: dict[str, str]
) -> None:
    alice = with_keys(sign_up(ALICE))
    _register_verified(alice, ALICE_TOKEN)
    first = _users(aws).devices(alice.user_id)[0].push_endpoint
    assert _register(alice, MALLORY_TOKEN).status == 202
    assert _wakes(aws, apps, alice) == [ALICE_TOKEN]
    assert _verify(alice, _challenge(MALLORY_TOKEN)).status == 204
    assert _wakes(aws, apps, alice) == [MALLORY_TOKEN]
    # the old token's endpoint was this device's alone: it is gone
    assert first not in _endpoints()


def test_without_a_platform_application_a_token_is_only_recorded_as_pending(
    aws: FakeAws, function_env: Any
) -> None:
    function_env("HttpApi")
    alice = with_keys(sign_up(ALICE))
    answer = _register(alice, ALICE_TOKEN)
    assert answer.status == 202, answer.body
    assert answer.body["challenge_sent"] is False
    refused = _verify(alice, "c" * 32)
    assert (refused.status, refused.code) == (409, "no_push_challenge")
