"""Linking a device through the HttpApi handler: the whole pairing flow (start,
approve, status, complete), the signed device list in the answers, messages only
to listed devices, unlinking by publishing a list, and the refusals."""

from __future__ import annotations

import base64
import json

import pytest
from nacl.signing import SigningKey

from parley_server.logic.device_list import DEVICE_PREFIX
from tests.integration.conftest import SignIn, http
from tests.integration.test_http_harness import (
    b64,
    complete,
    current_list,
    key_upload,
    sign_body,
    start_and_approve,
)
from tests.integration.ws_harness import Device, Harness


@pytest.fixture
def ws(http_ws: Harness) -> Harness:
    return http_ws


def notices(ws: Harness, device: Device) -> list[dict[str, object]]:
    return [e for e in ws.events(device) if e.get("event") == "devices_changed"]


def test_a_device_is_linked_end_to_end(ws: Harness, sign_in: SignIn) -> None:
    phone = sign_in()
    carol = sign_in("+12025550123")
    online = ws.connect(Device(phone.user_id, phone.device_id))
    ws.function_env("HttpApi")

    approval = start_and_approve(phone)
    status = http(
        ws,
        "POST",
        f"/v1/devices/pairings/{approval.ref}/status",
        body={"claim": approval.claim},
    )
    assert status.status == 200, status.body
    assert status.body["state"] == "approved"
    assert status.body["user_id"] == phone.user_id
    assert base64.b64decode(status.body["details"]) == approval.details
    assert base64.b64decode(status.body["account_signature"]) == approval.account_signature
    assert status.body["account_identity"] == b64(phone.identity.verify_key.encode())
    assert status.headers["cache-control"] == "no-store"

    ws.function_env("HttpApi")
    laptop = complete(phone, approval)
    assert laptop.user_id == phone.user_id

    # the others are told, the new device is not
    assert notices(ws, online) == [
        {
            "event": "devices_changed",
            "reason": "linked",
            "device_id": laptop.device_id,
        }
    ]
    # its own device list answer: roles and key indexes, and the signed list v2
    mine = http(ws, "GET", "/v1/devices", token=laptop.access_token)
    assert [(d["device_id"], d["role"], d["key_index"]) for d in mine.body["devices"]] == [
        (phone.device_id, "primary", 0),
        (laptop.device_id, "companion", 1),
    ]
    listed = json.loads(base64.b64decode(mine.body["device_list"]["body"]))
    assert listed["version"] == 2
    assert [d["device_id"] for d in listed["devices"]] == [phone.device_id, laptop.device_id]
    # a sender's bundle carries the same list, and both devices
    bundle = http(ws, "GET", f"/v1/keys/{phone.user_id}", token=carol.access_token)
    assert bundle.body["device_list"] == mine.body["device_list"]
    assert {d["device_id"] for d in bundle.body["devices"]} == {
        phone.device_id,
        laptop.device_id,
    }
    # a send must cover both listed devices
    carol_online = ws.connect(Device(carol.user_id, carol.device_id))
    refused = ws.send(carol_online, phone.user_id, {phone.device_id: b"x"}, client_id="m1")
    assert refused["code"] == "mismatched_devices"
    assert refused["missing"] == [laptop.device_id]

    # the pairing is spent
    again = http(
        ws,
        "POST",
        f"/v1/devices/pairings/{approval.ref}/complete",
        body={
            "claim": approval.claim,
            "device_signature": b64(b"\x00" * 64),
            "keys": key_upload(approval.device),
        },
    )
    assert (again.status, again.code) == (409, "pairing_used")


def test_unlinking_publishes_a_list_without_the_device(ws: Harness, sign_in: SignIn) -> None:
    phone = sign_in()
    laptop = sign_in()  # linked
    online = ws.connect(Device(laptop.user_id, laptop.device_id))
    ws.function_env("HttpApi")
    listed = current_list(phone)
    without = {**listed, "version": listed["version"] + 1, "devices": listed["devices"][:1]}

    # a companion cannot publish, nor sign the primary out
    forbidden = http(
        ws, "PUT", "/v1/devices/list", body=sign_body(phone, without), token=laptop.access_token
    )
    assert (forbidden.status, forbidden.code) == (403, "forbidden")
    other = http(ws, "DELETE", f"/v1/devices/{phone.device_id}", token=laptop.access_token)
    assert other.status == 403

    published = http(
        ws, "PUT", "/v1/devices/list", body=sign_body(phone, without), token=phone.access_token
    )
    assert published.status == 204, published.body
    assert ws.endpoint.closed == [online.connection_id]
    assert http(ws, "GET", "/v1/devices", token=laptop.access_token).status == 401
    # a rollback to the old list is refused
    back = http(
        ws, "PUT", "/v1/devices/list", body=sign_body(phone, listed), token=phone.access_token
    )
    assert (back.status, back.code) == (409, "device_list_version")


def test_a_companion_may_sign_itself_out_and_the_others_are_told(
    ws: Harness, sign_in: SignIn
) -> None:
    phone = sign_in()
    laptop = sign_in()
    online = ws.connect(Device(phone.user_id, phone.device_id))
    answer = http(ws, "DELETE", f"/v1/devices/{laptop.device_id}", token=laptop.access_token)
    assert answer.status == 204
    assert [n["reason"] for n in notices(ws, online)] == ["unlinked"]
    assert [d["device_id"] for d in current_list(phone)["devices"]] == [
        phone.device_id,
        laptop.device_id,
    ]  # the list is the primary's to change; the device is signed out meanwhile
    bundle = http(ws, "GET", f"/v1/keys/{phone.user_id}", token=phone.access_token)
    assert [d["device_id"] for d in bundle.body["devices"]] == [phone.device_id]


def test_pairing_refusals_change_nothing(ws: Harness, sign_in: SignIn) -> None:
    phone = sign_in()
    # unknown pairing and wrong claim: the same 404
    unknown = http(
        ws, "POST", f"/v1/devices/pairings/{'f' * 32}/status", body={"claim": b64(b"\x00" * 32)}
    )
    assert (unknown.status, unknown.code) == (404, "not_found")
    started = http(
        ws,
        "POST",
        "/v1/devices/pairings",
        body={"identity_key": b64(SigningKey.generate().verify_key.encode())},
    )
    assert started.status == 201
    assert set(started.body) == {"ref", "device_id", "claim", "expires_in"}
    assert started.body["expires_in"] == 300
    wrong = http(
        ws,
        "POST",
        f"/v1/devices/pairings/{started.body['ref']}/status",
        body={"claim": b64(b"\x00" * 32)},
    )
    assert (wrong.status, wrong.body) == (unknown.status, unknown.body)
    pending = http(
        ws,
        "POST",
        f"/v1/devices/pairings/{started.body['ref']}/status",
        body={"claim": started.body["claim"]},
    )
    assert pending.body == {"state": "pending"}
    # malformed input: 400 before anything happens
    for body in (
        {"identity_key": "***"},
        {"identity_key": b64(b"short")},
        {"identity_key": b64(b"\x01" * 32), "extra": 1},
    ):
        bad = http(ws, "POST", "/v1/devices/pairings", body=body)
        assert bad.status == 400, body
    approve_bad = http(
        ws,
        "POST",
        f"/v1/devices/pairings/{started.body['ref']}/approve",
        body={
            "details": "not base64!",
            "account_signature": b64(b"\x00" * 64),
            "hmac": b64(b"\x00" * 32),
            "device_list": {"body": b64(b"{}"), "signature": b64(b"\x00" * 64)},
        },
        token=phone.access_token,
    )
    assert approve_bad.status == 400
    bad_ref = http(
        ws, "POST", "/v1/devices/pairings/NOT-A-REF/status", body={"claim": b64(b"\x00" * 32)}
    )
    assert bad_ref.status == 400
    # the approval endpoint needs a token; completing an unapproved pairing is refused
    valid_shape = {
        "details": b64(b"{}"),
        "account_signature": b64(b"\x00" * 64),
        "hmac": b64(b"\x00" * 32),
        "device_list": {"body": b64(b"{}"), "signature": b64(b"\x00" * 64)},
    }
    anonymous = http(
        ws, "POST", f"/v1/devices/pairings/{started.body['ref']}/approve", body=valid_shape
    )
    assert anonymous.status == 401
    key = SigningKey.generate()
    early = http(
        ws,
        "POST",
        f"/v1/devices/pairings/{started.body['ref']}/complete",
        body={
            "claim": started.body["claim"],
            "device_signature": b64(key.sign(DEVICE_PREFIX).signature),
            "keys": {
                "identity_key": b64(key.verify_key.encode()),
                "signed_prekey": {
                    "key_id": 1,
                    "public_key": b64(b"\x02" * 32),
                    "signature": b64(key.sign(b"\x02" * 32).signature),
                },
            },
        },
    )
    assert (early.status, early.code) == (409, "pairing_pending")


def test_an_account_without_a_list_has_nothing_to_deliver_to(ws: Harness, sign_in: SignIn) -> None:
    from tests.integration.test_http_harness import ALICE, sign_up

    carol = sign_in("+12025550123")
    alice = sign_up(ALICE)
    uploaded = http(ws, "PUT", "/v1/keys", body=key_upload(alice), token=alice.access_token)
    assert uploaded.status == 204
    mine = http(ws, "GET", "/v1/devices", token=alice.access_token)
    assert mine.body["device_list"] is None
    bundle = http(ws, "GET", f"/v1/keys/{alice.user_id}", token=carol.access_token)
    assert bundle.status == 404
    # the first list must be the primary alone, signed by its identity key
    stranger = SigningKey.generate()
    first = {
        "user_id": alice.user_id,
        "version": 1,
        "ts": 1,
        "account_identity": b64(alice.identity.verify_key.encode()),
        "devices": [
            {
                "device_id": alice.device_id,
                "key_index": 0,
                "identity": b64(alice.identity.verify_key.encode()),
            }
        ],
    }
    forged = sign_body(alice, first)
    forged["signature"] = b64(stranger.sign(base64.b64decode(forged["body"])).signature)
    refused = http(ws, "PUT", "/v1/devices/list", body=forged, token=alice.access_token)
    assert (refused.status, refused.code) == (400, "invalid_signature")
    done = http(
        ws, "PUT", "/v1/devices/list", body=sign_body(alice, first), token=alice.access_token
    )
    assert done.status == 204
    bundle = http(ws, "GET", f"/v1/keys/{alice.user_id}", token=carol.access_token)
    assert [d["device_id"] for d in bundle.body["devices"]] == [alice.device_id]
