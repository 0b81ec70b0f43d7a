"""Text messages (one-time codes) through SNS."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from parley_server.models.errors import SmsUnavailable
from parley_server.models.sms import SmsOrigination

__all__ = ["SmsSender"]


class SmsSender:
    """Sends SMS as `origination` says: transactional by default (SNS's
    high-reliability route), from the configured origination number or sender
    ID when there is one, else from whatever SNS picks."""

    def __init__(self, sns: Any, origination: SmsOrigination | None = None) -> None:
        self._sns = sns
        self._attributes = (origination or SmsOrigination()).message_attributes()

    def send(self, phone: str, text: str) -> None:
        """Send `text` to an E.164 number; SmsUnavailable if SNS refuses or fails."""
        try:
            self._sns.publish(PhoneNumber=phone, Message=text, MessageAttributes=self._attributes)
        except ClientError as exc:
            raise SmsUnavailable("could not send the text message") from exc
