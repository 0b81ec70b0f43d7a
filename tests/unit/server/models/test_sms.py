"""Who one-time codes come from: the SMS origination setting, its parser (shared
by the CDK app and the functions), and the SNS Publish attributes it becomes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley_server.catalogue import Setting
from parley_server.config import Config
from parley_server.models.errors import ConfigError
from parley_server.models.sms import SmsOrigination
from parley_server.store.aws import client
from parley_server.store.sms import SmsSender
from tests.conftest import FakeAws

PHONE = "+14155552671"
NUMBER = "+18885550100"


def _sent_sms() -> list[tuple[str, str]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    return list(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values())


def _record_publishes(sns: Any) -> list[dict[str, Any]]:
    """Every Publish the client makes, as its parameters (a botocore hook)."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(json.loads(json.dumps(params)))

    sns.meta.events.register("provide-client-params.sns.Publish", record)
    return calls


# -- parsing ---------------------------------------------------------------


def test_empty_means_transactional_from_whatever_sns_picks() -> None:
    for text in (None, "", "{}"):
        origination = SmsOrigination.from_json(text)
        assert origination == SmsOrigination()
        assert origination.message_attributes() == {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
        }
        assert origination.to_json() == "{}"


def test_every_key_is_read_and_round_trips() -> None:
    value = {"originationNumber": NUMBER, "senderId": "Parley1", "smsType": "promotional"}
    origination = SmsOrigination.parse(value)
    assert origination == SmsOrigination(
        origination_number=NUMBER, sender_id="Parley1", sms_type="Promotional"
    )
    assert SmsOrigination.from_json(origination.to_json()) == origination


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ([NUMBER], "must be a JSON object"),
        ("+18885550100", "must be a JSON object"),
        ({"from": NUMBER}, "unknown key"),
        ({"originationNumber": "18885550100"}, "E.164"),
        ({"originationNumber": "+0888555010"}, "E.164"),
        ({"originationNumber": "+1 888 555 0100"}, "E.164"),
        ({"originationNumber": "+1234567890123456"}, "E.164"),
        ({"originationNumber": 18885550100}, "E.164"),
        ({"senderId": ""}, "1 to 11"),
        ({"senderId": "ParleyMessage"}, "1 to 11"),
        ({"senderId": "123456"}, "at least one a letter"),
        ({"senderId": "Par ley"}, "1 to 11"),
        ({"senderId": "Parley-1"}, "1 to 11"),
        ({"smsType": "Urgent"}, "smsType"),
        ({"smsType": 1}, "smsType"),
    ],
)
def test_bad_values_are_refused_with_a_reason(value: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        SmsOrigination.parse(value)


def test_the_functions_setting_is_parsed_and_a_bad_one_names_itself() -> None:
    good = Config.from_environ({Setting.SMS_ORIGINATION.value: json.dumps({"senderId": "Parley"})})
    assert good.sms_origination == SmsOrigination(sender_id="Parley")
    assert Config.from_environ({}).sms_origination == SmsOrigination()
    bad = Config.from_environ({Setting.SMS_ORIGINATION.value: "{not json"})
    with pytest.raises(ConfigError, match="PARLEY_SMS_ORIGINATION is not JSON"):
        _ = bad.sms_origination


# -- the adapter, against moto -------------------------------------------------


def test_the_sender_publishes_the_configured_attributes(aws: FakeAws) -> None:
    sns = aws.client("sns")
    calls = _record_publishes(sns)
    origination = SmsOrigination(origination_number=NUMBER, sender_id="Parley")

    SmsSender(sns, origination).send(PHONE, "Your Parley code is 123456")

    (publish,) = calls
    assert publish["PhoneNumber"] == PHONE
    assert publish["MessageAttributes"] == {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
        "AWS.MM.SMS.OriginationNumber": {"DataType": "String", "StringValue": NUMBER},
        "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "Parley"},
    }
    # SNS (moto) took it as a text message
    assert _sent_sms() == [(PHONE, "Your Parley code is 123456")]


def test_without_origination_only_the_sms_type_is_sent(aws: FakeAws) -> None:
    sns = aws.client("sns")
    calls = _record_publishes(sns)
    SmsSender(sns).send(PHONE, "hello")
    assert calls[0]["MessageAttributes"] == {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
    }


def test_the_http_api_sends_codes_with_its_origination_setting(
    aws: FakeAws, function_env: Any
) -> None:
    from tests.integration.test_http_harness import call

    aws.settings[Setting.SMS_ORIGINATION] = json.dumps(
        {"originationNumber": NUMBER, "smsType": "Transactional"}
    )
    env = function_env("HttpApi")
    assert json.loads(env[Setting.SMS_ORIGINATION.value]) == {
        "originationNumber": NUMBER,
        "smsType": "Transactional",
    }
    calls = _record_publishes(client("sns"))

    assert call("POST", "/v1/auth/otp", body={"phone": PHONE}).status == 202

    (publish,) = calls
    attributes = publish["MessageAttributes"]
    assert attributes["AWS.MM.SMS.OriginationNumber"]["StringValue"] == NUMBER
    assert attributes["AWS.SNS.SMS.SMSType"]["StringValue"] == "Transactional"
    assert "AWS.SNS.SMS.SenderID" not in attributes
    assert [phone for phone, _ in _sent_sms()] == [PHONE]
