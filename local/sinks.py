"""What AWS would send outside, caught: SMS and mobile push published through SNS.

Handlers publish with the same boto3 calls as on AWS; moto's server keeps what
was published in its backend, which is read here, in moto's own process
(local/moto_process.py serves the records to the gateway's /_local/sms and
/_local/push). Each new message is also echoed to the console once.

A push record: {"id", "platform", "token", "endpoint_arn", "message", "type", "at"}.
"message" is SNS's JSON as published (its "default" key holds the push's data);
"type" is that data's type, so a test sees what kind of push a device got without
parsing it: "wake" (something waits), "call" (a ringing send: high priority,
visible), "push_challenge" (a token being registered); None for anything else.
moto keeps only the message of a push, not its attributes (APNs push type,
priority, TTL): store/push.py's tests check those.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["SnsSinks", "push_type"]


def _now_iso() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def push_type(message: str) -> str | None:
    """The type of the data a push carries (SNS's JSON message, its "default" body)."""
    try:
        outer = json.loads(message)
        data = json.loads(outer["default"]) if isinstance(outer, dict) else None
    except (ValueError, KeyError, TypeError):
        return None
    kind = data.get("type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


class SnsSinks:
    """SMS messages and push notifications seen in moto's SNS backend, oldest first."""

    def __init__(
        self,
        *,
        account_id: str,
        region: str,
        push_apps: Mapping[str, str],
        echo: Callable[[str], None] | None = print,
    ) -> None:
        self.account_id = account_id
        self.region = region
        # platform application ARN -> "fcm" / "apns"
        self._platforms = {arn: platform for platform, arn in push_apps.items()}
        self._echo = echo
        self._seen: set[str] = set()
        self._sms: list[dict[str, Any]] = []
        self._push: list[dict[str, Any]] = []
        # polled by the console's echo, a save and the sinks' readers at once
        self._polling = threading.Lock()

    def _backend(self) -> Any:
        from moto.sns.models import sns_backends

        return sns_backends[self.account_id][self.region]

    def poll(self) -> None:
        """Take in whatever was published since the last poll."""
        with self._polling:
            self._poll()

    def _poll(self) -> None:
        backend = self._backend()
        # Copies first: moto's request threads add to these while we read.
        sms = list(backend.sms_messages.items())
        endpoints = list(backend.platform_endpoints.values())
        for message_id, (phone, message) in sms:
            if message_id in self._seen:
                continue
            self._seen.add(message_id)
            record = {"id": message_id, "phone": phone, "message": message, "at": _now_iso()}
            self._sms.append(record)
            if self._echo:
                self._echo(f"[sms] to {phone}: {message}")
        for endpoint in endpoints:
            for message_id, message in list(endpoint.messages.items()):
                if message_id in self._seen:
                    continue
                self._seen.add(message_id)
                application = endpoint.application
                platform = self._platforms.get(application.arn, application.platform)
                record = {
                    "id": message_id,
                    "platform": platform,
                    "token": endpoint.token,
                    "endpoint_arn": endpoint.arn,
                    "message": message,
                    "type": push_type(message),
                    "at": _now_iso(),
                }
                self._push.append(record)
                if self._echo:
                    self._echo(f"[push] {platform} {record['type']} {endpoint.token}: {message}")

    def history(self) -> dict[str, list[dict[str, Any]]]:
        """Everything taken in so far (for local/state.py to save)."""
        return {"sms": list(self._sms), "push": list(self._push)}

    def restore(self, history: Mapping[str, Any]) -> None:
        """Put back a saved history (before anything new is taken in); not echoed again."""
        with self._polling:
            self._restore(history)

    def _restore(self, history: Mapping[str, Any]) -> None:
        for kind, into in (("sms", self._sms), ("push", self._push)):
            for record in history.get(kind) or []:
                if isinstance(record, dict) and record.get("id") not in self._seen:
                    self._seen.add(str(record.get("id")))
                    restored = dict(record)
                    if kind == "push" and "type" not in restored:
                        # saved before pushes had a type: read it from the message
                        restored["type"] = push_type(str(restored.get("message", "")))
                    into.append(restored)

    def sms(self) -> list[dict[str, Any]]:
        self.poll()
        return list(self._sms)

    def push(self) -> list[dict[str, Any]]:
        self.poll()
        return list(self._push)
