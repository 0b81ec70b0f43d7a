"""Mobile push through SNS platform endpoints: content-free wake-ups and call pushes.

A push says "something is waiting" and nothing else: no sender, no content, no
count. The app wakes, connects and syncs; the message itself only ever travels
end-to-end encrypted over the WebSocket.

A call push ({"type": "call"}, `PushNotifier.ring`) says only "a call is ringing":
high priority, visible (an alert whose text the app localizes from the `loc-key`
INCOMING_CALL: no name, no number), and it lives no longer than the ringing send
that caused it (its TTL), so a phone that was off never rings for a call long over.
The app connects and syncs to read the offer. An iOS VoIP (PushKit) push would need
an APNS_VOIP platform application, which the stack does not create.

The one other push is the challenge sent through a token being registered
({"type": "push_challenge", "challenge": ...}, logic/push.py): only the app that
holds the token receives it, and echoing it proves so. Finding the token's
endpoint for it never deletes or replaces one, which may be another device's. The
HttpApi function finds the endpoint and queues the challenge (ChallengeQueue);
GroupFanout pushes it: the function that texts codes is denied every publish to
an endpoint (stacks/notifications.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from parley_server.models.errors import BadRequest, DependencyUnavailable
from parley_server.store.users import Device

__all__ = ["CALL_LOC_KEY", "PLATFORMS", "ChallengeJob", "ChallengeQueue", "PushNotifier"]

logger = Logger(child=True)

PLATFORMS = ("fcm", "apns")

# SNS's message keys per platform; APNS apps may be production or sandbox.
_WAKE = {"type": "wake"}


def _message(platform: str, data: dict[str, str]) -> str:
    """SNS's JSON message carrying `data` to `platform` (a data-only, background push)."""
    if platform == "apns":
        apns = json.dumps({"aps": {"content-available": 1}, **data})
        return json.dumps({"default": json.dumps(data), "APNS": apns, "APNS_SANDBOX": apns})
    fcm = json.dumps({"data": data, "priority": "high"})
    return json.dumps({"default": json.dumps(data), "GCM": fcm})


_MESSAGES = {platform: _message(platform, _WAKE) for platform in PLATFORMS}
_ATTRIBUTES = {
    "fcm": {},
    # a background push must say so, at the priority Apple requires for it
    "apns": {
        "AWS.SNS.MOBILE.APNS.PUSH_TYPE": {"DataType": "String", "StringValue": "background"},
        "AWS.SNS.MOBILE.APNS.PRIORITY": {"DataType": "String", "StringValue": "5"},
    },
}
_CALL = {"type": "call"}
# What the app shows for a call push: its own localized text for this key (no name,
# no number: the push carries nothing of the call), with its ringtone.
CALL_LOC_KEY = "INCOMING_CALL"


def _string(value: str | int) -> dict[str, str]:
    return {"DataType": "String", "StringValue": str(value)}


def _call_message(platform: str, ttl_s: int) -> str:
    """SNS's JSON message of a call push: visible and high priority, content-free."""
    if platform == "apns":
        apns = json.dumps(
            {"aps": {"alert": {"loc-key": CALL_LOC_KEY}, "sound": "default"}, **_CALL}
        )
        return json.dumps({"default": json.dumps(_CALL), "APNS": apns, "APNS_SANDBOX": apns})
    # FCM: a data message (the app decides how to ring), high priority so that it is
    # delivered at once to a dozing phone, kept by FCM for the ringing send's TTL only
    fcm = json.dumps({"data": _CALL, "priority": "high", "time_to_live": ttl_s})
    return json.dumps({"default": json.dumps(_CALL), "GCM": fcm})


def _call_attributes(platform: str, ttl_s: int) -> dict[str, dict[str, str]]:
    """SNS's message attributes of a call push: the TTL for every platform (SNS gives
    the attribute precedence over a TTL in the body, and drops a push it could not
    hand over in time); for APNs an alert at priority 10 (deliver immediately)."""
    if platform == "apns":
        return {
            "AWS.SNS.MOBILE.APNS.PUSH_TYPE": _string("alert"),
            "AWS.SNS.MOBILE.APNS.PRIORITY": _string(10),
            "AWS.SNS.MOBILE.APNS.TTL": _string(ttl_s),
            "AWS.SNS.MOBILE.APNS_SANDBOX.TTL": _string(ttl_s),
        }
    return {"AWS.SNS.MOBILE.FCM.TTL": _string(ttl_s)}


_CHALLENGE_JOB = "push_challenge"
# Endpoints that can no longer receive: the app was uninstalled or the token expired.
_GONE = {"EndpointDisabled", "NotFound", "InvalidParameter"}
# SNS names the clashing endpoint only in its message (AWS documents this pattern).
_EXISTING = re.compile(r"Endpoint (arn:[^ ]+) already exists with the same [Tt]oken")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class ChallengeJob(msgspec.Struct, frozen=True):
    """A challenge to push through a platform endpoint, queued by the HttpApi function
    (which texts codes, so it publishes to no endpoint) for GroupFanout to push."""

    endpoint: str
    platform: str
    challenge: str

    def to_json(self) -> str:
        return json.dumps({"type": _CHALLENGE_JOB, **msgspec.structs.asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ChallengeJob | None:
        """The job, or None when `text` is not a challenge job (a fan-out job)."""
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict) or raw.get("type") != _CHALLENGE_JOB:
            return None
        endpoint, platform, challenge = (raw.get(k) for k in ("endpoint", "platform", "challenge"))
        if not (
            isinstance(endpoint, str)
            and endpoint.startswith("arn:")
            and platform in PLATFORMS
            and isinstance(challenge, str)
            and 0 < len(challenge) <= 128
        ):
            raise BadRequest("a malformed push challenge job")
        return cls(endpoint, platform, challenge)


class ChallengeQueue:
    """Queues challenge jobs on the fan-out FIFO queue (GroupFanout consumes it), in a
    message group of their own per endpoint, so no group message waits for one."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def enqueue(self, job: ChallengeJob) -> None:
        digest = hashlib.sha256(job.endpoint.encode()).hexdigest()[:32]
        try:
            self._sqs.send_message(
                QueueUrl=self._url,
                MessageBody=job.to_json(),
                MessageGroupId=f"push-{digest}",
                MessageDeduplicationId=hashlib.sha256(job.challenge.encode()).hexdigest(),
            )
        except ClientError as exc:
            raise DependencyUnavailable("push service unavailable") from exc


def _token_refused(exc: ClientError) -> BadRequest | DependencyUnavailable:
    """What an SNS error while registering a token means for the caller."""
    if _code(exc) == "InvalidParameter":
        return BadRequest("push token refused by the platform", code="invalid_push_token")
    return DependencyUnavailable("push service unavailable")


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
        return self._publish(device.push_endpoint, _MESSAGES[platform], _ATTRIBUTES[platform])

    def ring(self, device: Device, ttl_s: int) -> bool:
        """A call push to `device` that lives `ttl_s` seconds; False when it has no
        endpoint or the endpoint cannot receive. Never raises for SNS failures (the
        offer waits in the mailbox, as long as the ringing send lives)."""
        if not device.push_endpoint:
            return False
        platform = device.push_platform if device.push_platform in _MESSAGES else "fcm"
        return self._publish(
            device.push_endpoint,
            _call_message(platform, ttl_s),
            _call_attributes(platform, ttl_s),
        )

    def _publish(self, endpoint: str, message: str, attributes: dict[str, Any]) -> bool:
        try:
            self._sns.publish(
                TargetArn=endpoint,
                MessageStructure="json",
                Message=message,
                MessageAttributes=attributes,
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
        app = self._app(platform)
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
            raise _token_refused(exc) from exc

    def _app(self, platform: str) -> str | None:
        """The platform application for `platform` (None if none is configured)."""
        if platform not in PLATFORMS:
            raise BadRequest(f"platform must be one of {', '.join(PLATFORMS)}")
        return self._apps.get(platform)

    def challenge_endpoint(self, platform: str, token: str) -> str | None:
        """The endpoint to push `token`'s challenge through; None when no platform
        application is configured for `platform` (nothing can be pushed).

        The endpoint SNS keeps for the token is used as it is (created if there is
        none): it may be another device's, and it stays theirs. A disabled one is
        enabled again for the same token. A token the platform refuses is a
        BadRequest (invalid_push_token).
        """
        app = self._app(platform)
        if app is None:
            return None
        try:
            try:
                answer = self._sns.create_platform_endpoint(PlatformApplicationArn=app, Token=token)
                return str(answer["EndpointArn"])
            except ClientError as exc:
                clash = _EXISTING.search(str(exc.response.get("Error", {}).get("Message", "")))
                if _code(exc) != "InvalidParameter" or clash is None:
                    raise
            # SNS holds the token with other attributes (disabled): enable it again
            arn = clash.group(1)
            self._sns.set_endpoint_attributes(
                EndpointArn=arn, Attributes={"Enabled": "true", "Token": token}
            )
            return arn
        except ClientError as exc:
            raise _token_refused(exc) from exc

    def send_challenge(self, job: ChallengeJob) -> bool:
        """Push a queued challenge (GroupFanout); False when the endpoint cannot
        receive (the registration then never verifies). Never raises for SNS."""
        try:
            self._sns.publish(
                TargetArn=job.endpoint,
                MessageStructure="json",
                Message=_message(
                    job.platform, {"type": "push_challenge", "challenge": job.challenge}
                ),
                MessageAttributes=_ATTRIBUTES[job.platform],
            )
        except ClientError as exc:
            logger.info("push challenge not sent", extra={"error_code": _code(exc)})
            return False
        return True

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
