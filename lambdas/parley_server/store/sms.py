"""Text messages (one-time codes) through SNS."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from parley_server.models.errors import SmsUnavailable

__all__ = ["SmsSender"]


class SmsSender:
    """Sends transactional SMS (SNS delivers these on the high-reliability route)."""

    def __init__(self, sns: Any) -> None:
        self._sns = sns

    def send(self, phone: str, text: str) -> None:
        """Send `text` to an E.164 number; SmsUnavailable if SNS refuses or fails."""
        try:
            self._sns.publish(
                PhoneNumber=phone,
                Message=text,
                MessageAttributes={
                    "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
                },
            )
        except ClientError as exc:
            raise SmsUnavailable("could not send the text message") from exc
