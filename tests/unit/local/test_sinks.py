"""The local stack's push sink: each push it takes in from moto's SNS backend says
what kind of push it is, so a test sees that an offline device got a call push and
not a wake-up (moto keeps a push's message only, not its attributes)."""

from __future__ import annotations

import json
from typing import Any

from local.sinks import SnsSinks, push_type
from parley_server.store.push import ChallengeJob, PushNotifier
from parley_server.store.users import Device
from tests.conftest import REGION, FakeAws

ACCOUNT = "123456789012"  # moto's default account


def _apps(sns: Any) -> dict[str, str]:
    fcm = sns.create_platform_application(Name="fcm", Platform="GCM", Attributes={})
    apns = sns.create_platform_application(Name="apns", Platform="APNS", Attributes={})
    return {"fcm": fcm["PlatformApplicationArn"], "apns": apns["PlatformApplicationArn"]}


def test_each_push_says_whether_it_was_a_call_a_wake_up_or_a_challenge(aws: FakeAws) -> None:
    sns = aws.client("sns")
    apps = _apps(sns)
    notifier = PushNotifier(sns, apps)
    phone = notifier.endpoint_for("apns", "phone-token")
    tablet = notifier.endpoint_for("fcm", "tablet-token")
    assert phone is not None
    assert tablet is not None
    sinks = SnsSinks(account_id=ACCOUNT, region=REGION, push_apps=apps, echo=None)

    assert notifier.ring(Device("1" * 16, "apns", phone), 45)
    assert notifier.notify(Device("2" * 16, "fcm", tablet))
    assert notifier.send_challenge(ChallengeJob(tablet, "fcm", "c-1"))
    sns.publish(TargetArn=tablet, Message="not JSON at all")

    pushed = sinks.push()
    by_token = [(p["token"], p["platform"], p["type"]) for p in pushed]
    assert by_token == [
        ("phone-token", "apns", "call"),
        ("tablet-token", "fcm", "wake"),
        ("tablet-token", "fcm", "push_challenge"),
        ("tablet-token", "fcm", None),
    ]
    # the record keeps what it had: the whole message, as published
    assert json.loads(json.loads(pushed[0]["message"])["default"]) == {"type": "call"}
    assert set(pushed[0]) == {"id", "platform", "token", "endpoint_arn", "message", "type", "at"}


def test_a_history_saved_before_pushes_had_a_type_gets_one_when_restored() -> None:
    sinks = SnsSinks(account_id=ACCOUNT, region=REGION, push_apps={}, echo=None)
    message = json.dumps({"default": json.dumps({"type": "call"}), "GCM": "{}"})
    sinks.restore({"push": [{"id": "p1", "token": "t", "message": message}], "sms": []})
    assert [p["type"] for p in sinks.history()["push"]] == ["call"]


def test_the_type_is_none_for_anything_that_is_not_parleys_push_json() -> None:
    assert push_type(json.dumps({"default": json.dumps({"type": "wake"})})) == "wake"
    for message in ("", "[]", '{"default": 5}', '{"default": "{\\"type\\": 7}"}', '{"GCM": "{}"}'):
        assert push_type(message) is None, message
