"""Who a text message comes from: the SMS origination settings.

One parser for the CDK app (the `smsOrigination` context key, checked at
synth) and for the functions (PARLEY_SMS_ORIGINATION, read at cold start), so
what synthesizes is exactly what the SMS adapter accepts.

The JSON object has three optional keys:
  originationNumber  an E.164 number the account owns (toll-free, 10DLC, long
                     or short code); US destinations need one that is registered
  senderId           1-11 letters and digits, at least one letter; shown instead
                     of a number where the destination country allows it
  smsType            "Transactional" (the default: one-time codes) or "Promotional"
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from parley_server.models.errors import ConfigError

__all__ = ["SMS_TYPES", "SmsOrigination"]

SMS_TYPES = ("Transactional", "Promotional")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_SENDER_ID = re.compile(r"^(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{1,11}$")
_KEYS = ("originationNumber", "senderId", "smsType")


class SmsOrigination(msgspec.Struct, frozen=True):
    """How SNS should send the service's text messages."""

    origination_number: str | None = None
    sender_id: str | None = None
    sms_type: str = "Transactional"

    @classmethod
    def parse(cls, value: Any) -> SmsOrigination:
        """From the decoded JSON object; ConfigError naming what is wrong."""
        if not isinstance(value, dict):
            raise ConfigError(
                'must be a JSON object like {"originationNumber": "+18885550100"} '
                'or {"senderId": "Parley"}'
            )
        unknown = sorted(set(value) - set(_KEYS))
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown}; known keys: {list(_KEYS)}")
        number = value.get("originationNumber")
        if number is not None and not (isinstance(number, str) and _E164.match(number)):
            raise ConfigError(
                f"originationNumber {number!r} is not an E.164 number (+ and up to 15 digits)"
            )
        sender = value.get("senderId")
        if sender is not None and not (isinstance(sender, str) and _SENDER_ID.match(sender)):
            raise ConfigError(
                f"senderId {sender!r} must be 1 to 11 letters and digits, at least one a letter"
            )
        sms_type = value.get("smsType", "Transactional")
        matched = [
            t for t in SMS_TYPES if isinstance(sms_type, str) and t.lower() == sms_type.lower()
        ]
        if not matched:
            raise ConfigError(f"smsType {sms_type!r} must be one of {list(SMS_TYPES)}")
        return cls(origination_number=number, sender_id=sender, sms_type=matched[0])

    @classmethod
    def from_json(cls, text: str | None) -> SmsOrigination:
        """From PARLEY_SMS_ORIGINATION; empty or "{}" means SNS's own choice of sender."""
        try:
            value = json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"is not JSON ({exc.msg})") from None
        return cls.parse(value)

    def to_json(self) -> str:
        """The setting's value ("{}" for the defaults); from_json reads it back."""
        value: dict[str, str] = {}
        if self.origination_number:
            value["originationNumber"] = self.origination_number
        if self.sender_id:
            value["senderId"] = self.sender_id
        if self.sms_type != "Transactional":
            value["smsType"] = self.sms_type
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def message_attributes(self) -> dict[str, dict[str, str]]:
        """SNS Publish MessageAttributes for one text message."""
        attributes = {"AWS.SNS.SMS.SMSType": _string(self.sms_type)}
        if self.origination_number:
            attributes["AWS.MM.SMS.OriginationNumber"] = _string(self.origination_number)
        if self.sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = _string(self.sender_id)
        return attributes


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}
