"""CDK context: defaults that deploy, values accepted in cdk.json and `-c` form,
and bad values refused with a message that names the key and what is allowed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.settings import CONTEXT_KEYS, ContextError, LogLevel, ParleySettings, Stage

pytestmark = pytest.mark.infra

FCM = "arn:aws:sns:us-east-1:123456789012:app/GCM/parley"
APNS = "arn:aws:sns:us-east-1:123456789012:app/APNS_SANDBOX/parley"


def test_empty_context_gives_a_dev_stack_that_deploys_without_push() -> None:
    settings = ParleySettings.from_context({})
    assert settings.stage is Stage.DEV
    assert settings.stack_name == "Parley-dev"
    assert settings.push_platform_applications == {}
    assert settings.push_apps_json == "{}"
    assert settings.media_max_bytes == 100 * 1024 * 1024
    assert json.loads(settings.limits_json) == {"media_max_bytes": 100 * 1024 * 1024}
    assert settings.log_level is LogLevel.INFO
    assert settings.cors_origins == ("*",)
    assert settings.manage_api_gateway_account is True


def test_framework_keys_are_not_ours_to_judge() -> None:
    context = {
        "@aws-cdk/core:checkSecretUsage": True,
        "aws:cdk:bundling-stacks": [],
        "availability-zones:account=123456789012:region=eu-west-1": ["eu-west-1a"],
        "acknowledged-issue-numbers": [1234],
        "stage": "prod",
    }
    assert ParleySettings.from_context(context).stage is Stage.PROD


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"stage": "prod"}, {"stage": Stage.PROD, "stack_name": "Parley-prod"}),
        ({"stackName": "Parley-alice"}, {"stack_name": "Parley-alice"}),
        ({"mediaMaxBytes": 1024}, {"media_max_bytes": 1024}),
        ({"mediaMaxBytes": "2048"}, {"media_max_bytes": 2048}),
        ({"logLevel": "debug"}, {"log_level": LogLevel.DEBUG}),
        ({"limits": {"send_rate_per_s": 10}}, {"limits": {"send_rate_per_s": 10}}),
        ({"limits": '{"otp_ttl_s": 120}'}, {"limits": {"otp_ttl_s": 120}}),
        (
            {"corsOrigins": "https://a.example,https://b.example:8443"},
            {"cors_origins": ("https://a.example", "https://b.example:8443")},
        ),
        ({"corsOrigins": ["https://a.example"]}, {"cors_origins": ("https://a.example",)}),
        ({"manageApiGatewayAccount": "false"}, {"manage_api_gateway_account": False}),
        ({"pushPlatformApplications": {"fcm": FCM}}, {"push_platform_applications": {"fcm": FCM}}),
        (
            {"pushPlatformApplications": json.dumps({"fcm": FCM, "apns": APNS})},
            {"push_platform_applications": {"fcm": FCM, "apns": APNS}},
        ),
    ],
)
def test_context_values_are_accepted_from_cdk_json_and_command_line(
    context: dict[str, Any], expected: dict[str, Any]
) -> None:
    settings = ParleySettings.from_context(context)
    for attribute, value in expected.items():
        assert getattr(settings, attribute) == value


def test_limits_reach_the_functions_with_the_media_bound() -> None:
    settings = ParleySettings.from_context(
        {"limits": {"send_rate_per_s": 10}, "mediaMaxBytes": "4096"}
    )
    assert json.loads(settings.limits_json) == {"send_rate_per_s": 10, "media_max_bytes": 4096}


@pytest.mark.parametrize(
    ("context", "words"),
    [
        ({"stage": "qa"}, ["stage", "'qa'", "dev", "prod"]),
        ({"stagee": "prod"}, ["unknown", "stagee", "known keys", "stage", "mediaMaxBytes"]),
        ({"stackName": "1-bad name"}, ["stackName", "stack name"]),
        ({"mediaMaxBytes": "lots"}, ["mediaMaxBytes", "'lots'", "bytes"]),
        ({"mediaMaxBytes": 0}, ["mediaMaxBytes", "from 1"]),
        ({"mediaMaxBytes": 6 * 1024**3}, ["mediaMaxBytes", str(5 * 1024**3)]),
        ({"mediaMaxBytes": True}, ["mediaMaxBytes"]),
        ({"logLevel": "LOUD"}, ["logLevel", "'LOUD'", "INFO"]),
        ({"limits": "{not json"}, ["limits", "JSON"]),
        ({"limits": {"otp_ttl": 5}}, ["limits", "otp_ttl"]),
        ({"limits": {"otp_ttl_s": -5}}, ["limits", "positive"]),
        ({"limits": {"media_max_bytes": 5}}, ["mediaMaxBytes"]),
        ({"corsOrigins": "ftp://x"}, ["corsOrigins", "ftp://x"]),
        ({"corsOrigins": []}, ["corsOrigins", "non-empty"]),
        ({"manageApiGatewayAccount": "maybe"}, ["manageApiGatewayAccount", "true or false"]),
        ({"pushPlatformApplications": "[1]"}, ["pushPlatformApplications", "JSON object"]),
        ({"pushPlatformApplications": {"gcm": FCM}}, ["pushPlatformApplications", "gcm", "fcm"]),
        (
            {"pushPlatformApplications": {"fcm": "arn:aws:sns:us-east-1:1:topic"}},
            ["pushPlatformApplications", "fcm", "platform application ARN"],
        ),
        ({"pushPlatformApplications": {"fcm": APNS}}, ["fcm", "APNS_SANDBOX", "GCM"]),
        ({"pushPlatformApplications": {"apns": FCM}}, ["apns", "GCM", "APNS"]),
    ],
)
def test_bad_context_is_refused_with_a_message_naming_the_problem(
    context: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ContextError) as refused:
        ParleySettings.from_context(context)
    message = str(refused.value)
    for word in words:
        assert word in message


def test_every_known_key_has_a_parser_for_a_real_attribute() -> None:
    attributes = set(ParleySettings.__dataclass_fields__)
    for key, (attribute, parse) in CONTEXT_KEYS.items():
        assert attribute in attributes, key
        assert callable(parse)
