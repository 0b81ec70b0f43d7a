"""Mobile push through SNS platform endpoints: content-free wake-ups only.

A push says "something is waiting" and nothing else: no sender, no content, no
count. The app wakes, connects and syncs; the message itself only ever travels
end-to-end encrypted over the WebSocket.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from parley_server.models.errors import BadRequest, DependencyUnavailable
from parley_server.store.users import Device

__all__ = ["PLATFORMS", "PushNotifier"]

logger = Logger(child=True)

PLATFORMS = ("fcm", "apns")

# SNS's message keys per platform; APNS apps may be production or sandbox.
_WAKE = {"type": "wake"}
_FCM = json.dumps({"data": _WAKE, "priority": "high"})
_APNS = json.dumps({"aps": {"content-available": 1}, **_WAKE})
_MESSAGES = {
    "fcm": json.dumps({"default": json.dumps(_WAKE), "GCM": _FCM}),
    "apns": json.dumps({"default": json.dumps(_WAKE), "APNS": _APNS, "APNS_SANDBOX": _APNS}),
}
_ATTRIBUTES = {
    "fcm": {},
    # a background push must say so, at the priority Apple requires for it
    "apns": {
        "AWS.SNS.MOBILE.APNS.PUSH_TYPE": {"DataType": "String", "StringValue": "background"},
        "AWS.SNS.MOBILE.APNS.PRIORITY": {"DataType": "String", "StringValue": "5"},
    },
}
# Endpoints that can no longer receive: the app was uninstalled or the token expired.
_GONE = {"EndpointDisabled", "NotFound", "InvalidParameter"}
# SNS names the clashing endpoint only in its message (AWS documents this pattern).
_EXISTING = re.compile(r"Endpoint (arn:[^ ]+) already exists with the same [Tt]oken")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class PushNotifier:
    """Registers devices' push tokens and wakes devices up."""

    def __init__(self, sns: Any, platform_apps: dict[str, str]) -> None:
        self._sns = sns
        self._apps = dict(platform_apps)

    def notify(self, device: Device) -> bool:
        """Wake `device`; False when it has no endpoint or the endpoint cannot receive.

        Never raises for SNS failures: push is best effort, the message waits in the
        mailbox until the device syncs.
        """
        if not device.push_endpoint:
            return False
        platform = device.push_platform if device.push_platform in _MESSAGES else "fcm"
        try:
            self._sns.publish(
                TargetArn=device.push_endpoint,
                MessageStructure="json",
                Message=_MESSAGES[platform],
                MessageAttributes=_ATTRIBUTES[platform],
            )
        except ClientError as exc:
            code = _code(exc)
            if code in _GONE:
                logger.info("push endpoint cannot receive", extra={"error_code": code})
            else:
                logger.warning("push failed", extra={"error_code": code})
            return False
        return True

    def endpoint_for(self, platform: str, token: str, existing: str | None = None) -> str | None:
        """The platform endpoint ARN for `token`, creating or renewing it as needed.

        None when no platform application is configured for `platform` (the
        registration is then only recorded). `existing` is the device's current ARN.
        """
        if platform not in PLATFORMS:
            raise BadRequest(f"platform must be one of {', '.join(PLATFORMS)}")
        app = self._apps.get(platform)
        if app is None:
            if existing:
                self._delete(existing)
            return None
        try:
            if existing:
                if self._still_good(existing, app, token):
                    return existing
                self._delete(existing)
            return self._create(app, token)
        except ClientError as exc:
            if _code(exc) == "InvalidParameter":
                raise BadRequest(
                    "push token refused by the platform", code="invalid_push_token"
                ) from exc
            raise DependencyUnavailable("push service unavailable") from exc

    def _still_good(self, arn: str, app: str, token: str) -> bool:
        """True when `arn` belongs to `app`, carries `token` and is enabled."""
        if f":endpoint/{_platform_segment(app)}" not in arn:
            return False
        try:
            attributes = self._sns.get_endpoint_attributes(EndpointArn=arn)["Attributes"]
        except ClientError as exc:
            if _code(exc) == "NotFound":
                return False
            raise
        enabled = str(attributes.get("Enabled", "true")).lower() == "true"
        return enabled and attributes.get("Token") == token

    def _create(self, app: str, token: str) -> str:
        try:
            answer = self._sns.create_platform_endpoint(PlatformApplicationArn=app, Token=token)
        except ClientError as exc:
            clash = _EXISTING.search(str(exc.response.get("Error", {}).get("Message", "")))
            if _code(exc) != "InvalidParameter" or clash is None:
                raise
            # An old endpoint (e.g. disabled) holds this token: replace it.
            self._delete(clash.group(1))
            answer = self._sns.create_platform_endpoint(PlatformApplicationArn=app, Token=token)
        return str(answer["EndpointArn"])

    def forget(self, arn: str) -> None:
        """Delete a device's platform endpoint for good (its account is being deleted).

        An endpoint already gone is no error; any other failure is, so that the
        deletion is asked again rather than leaving the endpoint behind.
        """
        try:
            self._sns.delete_endpoint(EndpointArn=arn)
        except ClientError as exc:
            if _code(exc) != "NotFound":
                raise DependencyUnavailable("push service unavailable") from exc

    def _delete(self, arn: str) -> None:
        try:
            self._sns.delete_endpoint(EndpointArn=arn)
        except ClientError as exc:
            # a stale endpoint left behind only costs a failed publish later
            logger.info("could not delete push endpoint", extra={"error_code": _code(exc)})


def _platform_segment(app_arn: str) -> str:
    """'GCM/name' from arn:aws:sns:region:acct:app/GCM/name."""
    return app_arn.split(":app/", 1)[-1]
