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
    """Upload the device's keys; an account's first device (its primary) then publishes
    device list version 1 naming itself, as the client does after sign-up."""
    answer = call("PUT", "/v1/keys", body=key_upload(device, otk_ids), token=device.access_token)
    assert answer.status == 204, answer.body
    mine = call("GET", "/v1/devices", token=device.access_token)
    assert mine.status == 200, mine.body
    if mine.body["device_list"] is None:
        published = call(
            "PUT", "/v1/devices/list", body=signed_list(device, [device]), token=device.access_token
        )
        assert published.status == 204, published.body
    return device


def signed_list(
    primary: Device, devices: list[Device], version: int = 1, key_indexes: list[int] | None = None
) -> dict[str, str]:
    """A device list naming `devices` (the primary first), signed by the primary."""
    import json

    from parley_server.logic.device_list import LIST_PREFIX

    indexes = key_indexes if key_indexes is not None else list(range(len(devices)))
    body = json.dumps(
        {
            "user_id": primary.user_id,
            "version": version,
            "ts": 1_700_000_000_000,
            "account_identity": b64(primary.identity.verify_key.encode()),
            "devices": [
                {
                    "device_id": d.device_id,
                    "key_index": i,
                    "identity": b64(d.identity.verify_key.encode()),
                }
                for d, i in zip(devices, indexes, strict=True)
            ],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return {
        "body": b64(body),
        "signature": b64(primary.identity.sign(LIST_PREFIX + body).signature),
    }


def canonical(obj: Any) -> bytes:
    """What the spec signs: JSON with sorted keys and no spaces, as bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def current_list(device: Device) -> dict[str, Any]:
    """The account's device list body, as its device sees it (GET /v1/devices)."""
    mine = call("GET", "/v1/devices", token=device.access_token)
    assert mine.status == 200, mine.body
    assert mine.body["device_list"] is not None
    listed: dict[str, Any] = json.loads(base64.b64decode(mine.body["device_list"]["body"]))
    return listed


def sign_body(primary: Device, obj: dict[str, Any]) -> dict[str, str]:
    """A device list body signed by the account's primary, in its wire form."""
    from parley_server.logic.device_list import LIST_PREFIX

    body = canonical(obj)
    return {
        "body": b64(body),
        "signature": b64(primary.identity.sign(LIST_PREFIX + body).signature),
    }


@dataclass
class Approval:
    """A pairing the primary approved (what the companion then completes)."""

    ref: str
    claim: str
    device: Device
    details: bytes
    account_signature: bytes
    secret: bytes


def start_and_approve(primary: Device, source_ip: str = "198.51.100.99") -> Approval:
    """A new device asks to be linked, and the primary approves it with a new list."""
    import hashlib
    import hmac
    import os

    from parley_server.logic.device_list import ACCOUNT_PREFIX, HMAC_PREFIX

    companion = SigningKey.generate()
    started = call(
        "POST",
        "/v1/devices/pairings",
        body={"identity_key": b64(companion.verify_key.encode())},
        source_ip=source_ip,
    )
    assert started.status == 201, started.body
    listed = current_list(primary)
    key_index = max(d["key_index"] for d in listed["devices"]) + 1
    new = Device(
        phone=primary.phone,
        user_id=primary.user_id,
        device_id=started.body["device_id"],
        access_token="",
        refresh_token="",
        identity=companion,
    )
    details = canonical(
        {
            "user_id": primary.user_id,
            "device_id": new.device_id,
            "key_index": key_index,
            "identity": b64(companion.verify_key.encode()),
            "ts": 1_700_000_000_000,
        }
    )
    account_signature = primary.identity.sign(ACCOUNT_PREFIX + details).signature
    secret = os.urandom(16)
    mac = hmac.new(secret, HMAC_PREFIX + details + account_signature, hashlib.sha256).digest()
    entry = {
        "device_id": new.device_id,
        "key_index": key_index,
        "identity": b64(companion.verify_key.encode()),
    }
    new_list = {
        **listed,
        "version": listed["version"] + 1,
        "devices": [*listed["devices"], entry],
    }
    approved = call(
        "POST",
        f"/v1/devices/pairings/{started.body['ref']}/approve",
        body={
            "details": b64(details),
            "account_signature": b64(account_signature),
            "hmac": b64(mac),
            "device_list": sign_body(primary, new_list),
        },
        token=primary.access_token,
    )
    assert approved.status == 204, approved.body
    return Approval(
        started.body["ref"], started.body["claim"], new, details, account_signature, secret
    )


def complete(primary: Device, approval: Approval) -> Device:
    """The companion countersigns its approval and uploads its keys: it is linked."""
    from parley_server.logic.device_list import DEVICE_PREFIX

    signature = approval.device.identity.sign(
        DEVICE_PREFIX
        + approval.details
        + approval.account_signature
        + primary.identity.verify_key.encode()
    ).signature
    done = call(
        "POST",
        f"/v1/devices/pairings/{approval.ref}/complete",
        body={
            "claim": approval.claim,
            "device_signature": b64(signature),
            "keys": key_upload(approval.device),
        },
    )
    assert done.status == 200, done.body
    assert done.body["device_id"] == approval.device.device_id
    approval.device.access_token = done.body["access_token"]
    approval.device.refresh_token = done.body["refresh_token"]
    return approval.device


def link(primary: Device) -> Device:
    """A new device linked to the primary's account (pairing, approval, completion)."""
    return complete(primary, start_and_approve(primary))


def group_change(
    device: Device,
    kind: str,
    group_id: str,
    *,
    seq: int,
    prev: bytes,
    name: str = "",
    members: list[str] | tuple[str, ...] = (),
    admins: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """A group change signed by `device` (its identity key, as its account's device
    list gives it), as the request body the group routes take: {"change": {...}}."""
    from tests.group_changes import Signer

    signer = Signer(device.user_id, device.device_id, device.identity)
    return {
        "change": signer.wire(
            kind, group_id, seq=seq, prev=prev, name=name, members=members, admins=admins
        )
    }


def create_group(device: Device, members: list[str], name: str = "Climbing") -> Answer:
    """POST /v1/groups: a new group (a fresh id) with `members`, by `device`'s signed create."""
    import uuid

    body = group_change(
        device, "create", uuid.uuid4().hex, seq=1, prev=b"", name=name, members=sorted(members)
    )
    return call("POST", "/v1/groups", body=body, token=device.access_token)


def push_challenges(token: str) -> list[str]:
    """The challenges pushed to `token` so far (moto's endpoints), oldest first."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    endpoints = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].platform_endpoints
    pushed = [
        json.loads(json.loads(message)["default"])
        for endpoint in list(endpoints.values())
        if endpoint.token == token
        for message in endpoint.messages.values()
    ]
    return [str(p["challenge"]) for p in pushed if p.get("type") == "push_challenge"]


def run_fanout_queue(aws: Any, use_env: Any) -> None:
    """Run GroupFanout on what waits in its queue (push challenges among it), as
    Lambda's event source would, then set the process up as HttpApi again."""
    from local.event_sources import sqs_record
    from local.iam.enforce import acting_as
    from parley_server.catalogue import Setting
    from parley_server.handlers import group_fanout

    sqs = aws.client("sqs")
    url = aws.settings[Setting.GROUP_FANOUT_QUEUE]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn = attributes["Attributes"]["QueueArn"]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        use_env("GroupFanout")
        event = {"Records": [sqs_record(m, queue_arn=arn, region="us-east-1") for m in messages]}
        with acting_as("GroupFanout"):
            answer = group_fanout.handler(event, LambdaContextStub())
        assert answer == {"batchItemFailures": []}, answer
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    use_env("HttpApi")


def register_push(aws: Any, use_env: Any, device: Device, platform: str, token: str) -> None:
    """PUT /v1/push, the challenge pushed (GroupFanout), and sent back: a verified token."""
    asked = call(
        "PUT", "/v1/push", body={"platform": platform, "token": token}, token=device.access_token
    )
    assert asked.status == 202, asked.body
    run_fanout_queue(aws, use_env)
    verified = call(
        "POST",
        "/v1/push/verify",
        body={"challenge": push_challenges(token)[-1]},
        token=device.access_token,
    )
    assert verified.status == 204, verified.body
