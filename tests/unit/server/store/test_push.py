from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from parley_server.models.errors import BadRequest
from parley_server.store.push import PushNotifier
from parley_server.store.users import Device
from tests.conftest import FakeAws


def _apps(sns: Any) -> dict[str, str]:
    fcm = sns.create_platform_application(Name="fcm", Platform="GCM", Attributes={})
    apns = sns.create_platform_application(Name="apns", Platform="APNS", Attributes={})
    return {"fcm": fcm["PlatformApplicationArn"], "apns": apns["PlatformApplicationArn"]}


def _sent(arn: str) -> list[str]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    return list(
        sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].platform_endpoints[arn].messages.values()
    )


def test_notify_sends_a_content_free_wake_up(aws: FakeAws) -> None:
    sns = aws.client("sns")
    notifier = PushNotifier(sns, _apps(sns))
    arn = notifier.endpoint_for("apns", "apns-token-1")
    assert arn is not None
    assert notifier.notify(Device("1" * 16, "apns", arn)) is True
    [message] = _sent(arn)
    bodies = json.loads(message)
    assert json.loads(bodies["APNS"]) == {"aps": {"content-available": 1}, "type": "wake"}
    assert json.loads(bodies["default"]) == {"type": "wake"}


def test_notify_without_an_endpoint_or_to_a_disabled_one_is_false(aws: FakeAws) -> None:
    sns = aws.client("sns")
    notifier = PushNotifier(sns, _apps(sns))
    assert notifier.notify(Device("1" * 16, None, None)) is False
    arn = notifier.endpoint_for("fcm", "fcm-token-1")
    assert arn is not None
    sns.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})
    assert notifier.notify(Device("1" * 16, "fcm", arn)) is False
    sns.delete_endpoint(EndpointArn=arn)
    assert notifier.notify(Device("1" * 16, "fcm", arn)) is False


def test_registering_again_keeps_a_good_endpoint_and_replaces_a_disabled_one(
    aws: FakeAws,
) -> None:
    sns = aws.client("sns")
    notifier = PushNotifier(sns, _apps(sns))
    first = notifier.endpoint_for("fcm", "fcm-token-1")
    assert notifier.endpoint_for("fcm", "fcm-token-1", existing=first) == first
    assert first is not None
    sns.set_endpoint_attributes(EndpointArn=first, Attributes={"Enabled": "false"})
    renewed = notifier.endpoint_for("fcm", "fcm-token-1", existing=first)
    assert renewed is not None
    assert renewed != first
    assert notifier.notify(Device("1" * 16, "fcm", renewed)) is True
    # a new token for the same device gets a new endpoint; the old one is deleted
    moved = notifier.endpoint_for("fcm", "fcm-token-2", existing=renewed)
    assert moved not in (None, renewed)
    assert notifier.notify(Device("1" * 16, "fcm", renewed)) is False


def test_without_a_platform_application_nothing_is_created(aws: FakeAws) -> None:
    sns = aws.client("sns")
    notifier = PushNotifier(sns, {})
    assert notifier.endpoint_for("fcm", "fcm-token-1") is None
    assert sns.list_platform_applications()["PlatformApplications"] == []
    with pytest.raises(BadRequest):
        notifier.endpoint_for("blackberry", "x")


def test_a_challenge_goes_through_the_tokens_endpoint_and_replaces_nothing(
    aws: FakeAws,
) -> None:
    from parley_server.store.push import ChallengeJob

    sns = aws.client("sns")
    notifier = PushNotifier(sns, _apps(sns))
    owners = notifier.endpoint_for("fcm", "shared-token")
    assert owners is not None
    # someone else registers the same token: the endpoint is the owner's, untouched
    assert notifier.challenge_endpoint("fcm", "shared-token") == owners
    sns.set_endpoint_attributes(EndpointArn=owners, Attributes={"Enabled": "false"})
    assert notifier.challenge_endpoint("fcm", "shared-token") == owners  # enabled again
    job = ChallengeJob(owners, "fcm", "the-challenge")
    assert ChallengeJob.from_json(job.to_json()) == job
    assert ChallengeJob.from_json('{"v": 1, "group_id": "g"}') is None
    assert notifier.send_challenge(job) is True
    [message] = _sent(owners)
    data = {"type": "push_challenge", "challenge": "the-challenge"}
    assert json.loads(json.loads(message)["default"]) == data
    assert json.loads(json.loads(message)["GCM"]) == {"data": data, "priority": "high"}


def test_without_a_platform_application_there_is_no_challenge_endpoint(aws: FakeAws) -> None:
    notifier = PushNotifier(aws.client("sns"), {})
    assert notifier.challenge_endpoint("apns", "t") is None
    with pytest.raises(BadRequest):
        notifier.challenge_endpoint("web", "t")


# -- call pushes ----------------------------------------------------------------------

_ENDPOINT = "arn:aws:sns:us-east-1:123456789012:endpoint/{}/parley/4b3f"


def _stubbed_sns() -> tuple[Any, Stubber]:
    """A real botocore SNS client (so AWS's parameter validation applies) whose calls
    are answered by a Stubber."""
    sns = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("sns")
    return sns, Stubber(sns)


def _attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def test_a_call_push_to_fcm_is_a_high_priority_data_message_that_lives_the_ttl() -> None:
    sns, stub = _stubbed_sns()
    arn = _ENDPOINT.format("GCM")
    call = {"type": "call"}
    stub.add_response(
        "publish",
        {"MessageId": "m1"},
        {
            "TargetArn": arn,
            "MessageStructure": "json",
            "Message": json.dumps(
                {
                    "default": json.dumps(call),
                    "GCM": json.dumps({"data": call, "priority": "high", "time_to_live": 45}),
                }
            ),
            "MessageAttributes": {"AWS.SNS.MOBILE.FCM.TTL": _attribute("45")},
        },
    )
    with stub:
        assert PushNotifier(sns, {}).ring(Device("1" * 16, "fcm", arn), 45) is True
    stub.assert_no_pending_responses()


def test_a_call_push_to_apns_is_a_content_free_alert_at_priority_10_that_lives_the_ttl() -> None:
    sns, stub = _stubbed_sns()
    arn = _ENDPOINT.format("APNS")
    apns = json.dumps(
        {"aps": {"alert": {"loc-key": "INCOMING_CALL"}, "sound": "default"}, "type": "call"}
    )
    stub.add_response(
        "publish",
        {"MessageId": "m1"},
        {
            "TargetArn": arn,
            "MessageStructure": "json",
            "Message": json.dumps(
                {"default": json.dumps({"type": "call"}), "APNS": apns, "APNS_SANDBOX": apns}
            ),
            "MessageAttributes": {
                "AWS.SNS.MOBILE.APNS.PUSH_TYPE": _attribute("alert"),
                "AWS.SNS.MOBILE.APNS.PRIORITY": _attribute("10"),
                "AWS.SNS.MOBILE.APNS.TTL": _attribute("300"),
                "AWS.SNS.MOBILE.APNS_SANDBOX.TTL": _attribute("300"),
            },
        },
    )
    with stub:
        assert PushNotifier(sns, {}).ring(Device("1" * 16, "apns", arn), 300) is True
    stub.assert_no_pending_responses()


def test_a_wake_up_keeps_its_background_push_type_and_priority() -> None:
    sns, stub = _stubbed_sns()
    arn = _ENDPOINT.format("APNS")
    apns = json.dumps({"aps": {"content-available": 1}, "type": "wake"})
    stub.add_response(
        "publish",
        {"MessageId": "m1"},
        {
            "TargetArn": arn,
            "MessageStructure": "json",
            "Message": json.dumps(
                {"default": json.dumps({"type": "wake"}), "APNS": apns, "APNS_SANDBOX": apns}
            ),
            "MessageAttributes": {
                "AWS.SNS.MOBILE.APNS.PUSH_TYPE": _attribute("background"),
                "AWS.SNS.MOBILE.APNS.PRIORITY": _attribute("5"),
            },
        },
    )
    with stub:
        assert PushNotifier(sns, {}).notify(Device("1" * 16, "apns", arn)) is True
    stub.assert_no_pending_responses()


def test_a_call_push_names_nobody_and_goes_nowhere_without_a_live_endpoint(aws: FakeAws) -> None:
    sns = aws.client("sns")
    notifier = PushNotifier(sns, _apps(sns))
    arn = notifier.endpoint_for("fcm", "fcm-token-1")
    assert arn is not None
    assert notifier.ring(Device("1" * 16, "fcm", arn), 60) is True
    [message] = _sent(arn)
    assert json.loads(json.loads(message)["default"]) == {"type": "call"}
    assert "1" * 16 not in message
    # no endpoint, a disabled one, a deleted one: nothing rings, and nothing raises
    assert notifier.ring(Device("1" * 16, None, None), 60) is False
    sns.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})
    assert notifier.ring(Device("1" * 16, "fcm", arn), 60) is False
    sns.delete_endpoint(EndpointArn=arn)
    assert notifier.ring(Device("1" * 16, "fcm", arn), 60) is False
