"""Shared by the test_http_* files (holds no tests): builds API Gateway HTTP API
(payload format 2.0) events, as tests/events/http_api_v2.json records one, and
invokes the HttpApi handler with them."""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from nacl.signing import SigningKey

from parley_server.catalogue import HTTP_ROUTES

# the phone numbers the test_http_* files sign up with
ALICE = "+14155552671"
BOB = "+12025550123"

EVENT = json.loads((Path(__file__).parent.parent / "events" / "http_api_v2.json").read_text())


def _route_key(method: str, path: str) -> tuple[str, dict[str, str]]:
    """The route API Gateway would match, and its path parameters ("$default" if none)."""
    for route in HTTP_ROUTES:
        route_method, template = route.split(" ", 1)
        if route_method != method:
            continue
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        match = re.fullmatch(pattern, path)
        if match:
            return route, match.groupdict()
    return "$default", {}


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: str | None = None,
    token: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    source_ip: str = "198.51.100.23",
) -> dict[str, Any]:
    """An HTTP API v2 event as API Gateway sends it to the function."""
    event = copy.deepcopy(EVENT)
    route, params = _route_key(method, path)
    event["routeKey"] = event["requestContext"]["routeKey"] = route
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["http"]["sourceIp"] = source_ip
    event["headers"].pop("authorization")
    if token is not None:
        event["headers"]["authorization"] = f"Bearer {token}"
    if params:
        event["pathParameters"] = params
    if query:
        event["rawQueryString"] = urlencode(query)
        event["queryStringParameters"] = dict(query)
    text = raw if raw is not None else (json.dumps(body) if body is not None else None)
    if text is not None:
        event["body"] = text
        event["headers"]["content-type"] = "application/json"
        event["headers"]["content-length"] = str(len(text.encode()))
    event["headers"].update(headers or {})
    return event


@dataclass
class LambdaContextStub:
    function_name: str = "parley-HttpApi"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:parley-HttpApi"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "3e1b5a8c-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/parley-HttpApi"
    log_stream_name: str = "2026/12/05/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def code(self) -> str | None:
        return self.body.get("error", {}).get("code") if isinstance(self.body, dict) else None


def invoke(event: dict[str, Any]) -> Answer:
    from local.iam.enforce import acting_as
    from parley_server.handlers import http_api

    with acting_as("HttpApi"):
        result = http_api.handler(event, LambdaContextStub())
    text = result.get("body") or ""
    if result.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    body = json.loads(text) if text else None
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    return Answer(status=result["statusCode"], headers=headers, body=body)


def call(method: str, path: str, **kwargs: Any) -> Answer:
    return invoke(http_event(method, path, **kwargs))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Device:
    """A signed-in device, as an app holds it."""

    phone: str
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str
    identity: SigningKey = field(default_factory=SigningKey.generate)


def sms_code(phone: str) -> str:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    texts = [
        text
        for number, text in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values()
        if number == phone
    ]
    assert texts, f"no code was texted to {phone}"
    return str(texts[-1].rsplit(" ", 1)[-1])


def sign_up(phone: str, source_ip: str = "198.51.100.23") -> Device:
    asked = call("POST", "/v1/auth/otp", body={"phone": phone}, source_ip=source_ip)
    assert asked.status == 202, asked.body
    answer = call("POST", "/v1/auth/verify", body={"phone": phone, "code": sms_code(phone)})
    assert answer.status == 200, answer.body
    return Device(
        phone=phone,
        user_id=answer.body["user_id"],
        device_id=answer.body["device_id"],
        access_token=answer.body["access_token"],
        refresh_token=answer.body["refresh_token"],
    )


def key_upload(device: Device, otk_ids: range = range(5), spk_id: int = 1) -> dict[str, Any]:
    spk = SigningKey.generate().verify_key.encode()
    return {
        "identity_key": b64(device.identity.verify_key.encode()),
        "signed_prekey": {
            "key_id": spk_id,
            "public_key": b64(spk),
            "signature": b64(device.identity.sign(spk).signature),
        },
        "one_time_prekeys": [
            {"key_id": i, "public_key": b64(bytes([i % 256]) * 32)} for i in otk_ids
        ],
    }


def with_keys(device: Device, otk_ids: range = range(5)) -> Device:
    answer = call("PUT", "/v1/keys", body=key_upload(device, otk_ids), token=device.access_token)
    assert answer.status == 204, answer.body
    return device
