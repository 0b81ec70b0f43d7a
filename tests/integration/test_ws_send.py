"""`send` through its handler, with WsSend's exact environment, against moto and a
loopback @connections endpoint."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from parley_server.catalogue import Setting
from parley_server.models.frames import CONNECTING_S
from tests.conftest import REGION, FakeAws
from tests.integration.ws_harness import Harness, b64, harness


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


def test_send_to_online_recipient_is_stored_delivered_and_answered_sent(ws: Harness) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice, bob = ws.connect(alice), ws.connect(bob)
    before = time.time()

    answer = ws.send(alice, bob.user_id, {bob.device_id: b"ciphertext"}, client_id="c-1")

    assert answer["event"] == "sent"
    assert answer["id"] == "c-1"
    assert before * 1000 - 1 <= answer["ts"] <= time.time() * 1000
    (message,) = ws.events(bob)
    assert message == {
        "event": "message",
        "id": f"m#{alice.user_id}#{alice.device_id}#c-1",
        "client_id": "c-1",
        "from": alice.user_id,
        "from_device": alice.device_id,
        "body": b64(b"ciphertext"),
        "ts": answer["ts"],
    }
    (item,) = ws.mailbox_items(bob)
    assert item["body"]["B"] == b"ciphertext"
    # stored with the 30-day TTL until Bob acks it
    ttl = int(item["expires_at"]["N"]) - before
    assert 30 * 24 * 3600 - 2 <= ttl <= 30 * 24 * 3600 + 2


def test_two_devices_of_one_recipient_each_get_their_own_ciphertext(ws: Harness) -> None:
    (alice,) = ws.user()
    phone, laptop = ws.user(devices=2)
    alice, phone, laptop = ws.connect(alice), ws.connect(phone), ws.connect(laptop)

    ws.send(alice, phone.user_id, {phone.device_id: b"for phone", laptop.device_id: b"for laptop"})

    assert [base64.b64decode(e["body"]) for e in ws.events(phone)] == [b"for phone"]
    assert [base64.b64decode(e["body"]) for e in ws.events(laptop)] == [b"for laptop"]
    assert len(ws.mailbox_items(phone)) == len(ws.mailbox_items(laptop)) == 1


def test_retried_send_with_the_same_client_id_stores_no_second_envelope(ws: Harness) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice = ws.connect(alice)

    first = ws.send(alice, bob.user_id, {bob.device_id: b"hello"}, client_id="same")
    again = ws.send(alice, bob.user_id, {bob.device_id: b"hello"}, client_id="same")

    assert again == first
    assert len(ws.mailbox_items(bob)) == 1


def test_forged_from_fields_are_ignored(ws: Harness) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    (mallory,) = ws.user()
    bob = ws.connect(bob)

    answer = ws.frame(
        ws.connect(mallory),
        {
            "action": "send",
            "id": "forged",
            "to": bob.user_id,
            "from": alice.user_id,
            "from_device": alice.device_id,
            "payloads": {bob.device_id: b64(b"trust me")},
        },
    )

    assert json.loads(answer["body"])["event"] == "sent"
    (message,) = ws.events(bob)
    assert (message["from"], message["from_device"]) == (mallory.user_id, mallory.device_id)


def test_mismatched_devices_names_missing_and_extra_and_stores_nothing(ws: Harness) -> None:
    (alice,) = ws.user()
    phone, laptop = ws.user(devices=2)
    alice = ws.connect(alice)
    unknown = "0123456789abcdef"
    before = ws.snapshot()

    answer = ws.send(alice, phone.user_id, {phone.device_id: b"x", unknown: b"y"}, client_id="mm")

    assert answer["event"] == "error"
    assert answer["ref"] == "mm"
    assert answer["code"] == "mismatched_devices"
    assert answer["missing"] == [laptop.device_id]
    assert answer["extra"] == [unknown]
    assert ws.snapshot() == before


def test_a_gone_connection_is_removed_and_the_live_one_still_gets_the_message(
    ws: Harness,
) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    stale, live = ws.connect(bob), ws.connect(bob)
    assert stale.connection_id is not None
    ws.endpoint.gone.add(stale.connection_id)
    ws.open_since(stale, CONNECTING_S)

    answer = ws.send(ws.connect(alice), bob.user_id, {bob.device_id: b"x"})

    assert answer["event"] == "sent"
    assert ws.connection_ids(bob.user_id) == {live.connection_id}
    assert len(ws.events(live, "message")) == 1
    assert len(ws.mailbox_items(bob)) == 1  # still waiting for Bob's ack


def test_a_connection_gone_while_its_connect_may_still_run_is_kept(ws: Harness) -> None:
    # API Gateway answers 410 for a connection until its $connect is over: a record
    # younger than that is not forgotten (the device syncs once it is open)
    (alice,) = ws.user()
    (bob,) = ws.user()
    opening = ws.connect(bob)
    assert opening.connection_id is not None
    ws.endpoint.gone.add(opening.connection_id)
    ws.open_since(opening, CONNECTING_S - 5)

    assert ws.send(ws.connect(alice), bob.user_id, {bob.device_id: b"x"})["event"] == "sent"

    assert ws.connection_ids(bob.user_id) == {opening.connection_id}
    assert len(ws.mailbox_items(bob)) == 1


def test_send_to_an_offline_device_wakes_it_with_a_content_free_push(ws: Harness) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    sns = ws.aws.client("sns")
    # named as the local stack's application, which the enforced IAM policy names
    app = sns.create_platform_application(
        Name="parley-local-fcm", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    endpoint = sns.create_platform_endpoint(PlatformApplicationArn=app, Token="bob-token")
    ws.users().set_push(bob.user_id, bob.device_id, "fcm", "bob-token", endpoint["EndpointArn"])

    ws.send(ws.connect(alice), bob.user_id, {bob.device_id: b"secret words"})

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    backend = sns_backends[DEFAULT_ACCOUNT_ID][REGION]
    (pushed,) = backend.platform_endpoints[endpoint["EndpointArn"]].messages.values()
    assert b64(b"secret words") not in pushed
    assert alice.user_id not in pushed
    assert len(ws.mailbox_items(bob)) == 1


def test_sends_over_the_per_device_rate_are_refused_and_store_nothing(ws: Harness) -> None:
    ws.aws.settings[Setting.LIMITS] = json.dumps({"send_rate_per_s": 2})
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice = ws.connect(alice)

    answers = [
        ws.send(alice, bob.user_id, {bob.device_id: b"x"}, client_id=f"r{i}") for i in range(8)
    ]

    refused = [a for a in answers if a["event"] == "error"]
    accepted = [a for a in answers if a["event"] == "sent"]
    assert refused, "eight sends in a burst must exceed two per second"
    assert {a["code"] for a in refused} == {"rate_limited"}
    assert all(a["retry_after"] >= 1 for a in refused)
    assert {a["ref"] for a in refused}.isdisjoint(a["id"] for a in accepted)
    stored = {item["sk"]["S"].rsplit("#", 1)[1] for item in ws.mailbox_items(bob)}
    assert stored == {a["id"] for a in accepted}


# -- bad input: a clear error with the client id as ref, and nothing changed ----------


def _send_frame(bob: Any, **fields: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "action": "send",
        "id": "bad-1",
        "to": bob.user_id,
        "payloads": {bob.device_id: b64(b"x")},
    }
    frame.update(fields)
    return {k: v for k, v in frame.items() if v is not ...}


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"to": ...}, "invalid_request", "to"),
        ({"payloads": ...}, "invalid_request", "payloads"),
        ({"to": 42}, "invalid_request", "to"),
        ({"payloads": ["x"]}, "invalid_request", "payloads"),
        ({"payloads": "x"}, "invalid_request", "payloads"),
        ({"id": 12}, "invalid_request", "id"),
        ({"id": ...}, "invalid_request", "id"),
        ({"payloads": {"DEVICE": b64(b"x")}}, "invalid_request", "payloads"),
        ({"payloads": {"{device}": "***not base64***"}}, "invalid_base64", "payloads.{device}"),
        (
            {"payloads": {"{device}": b64(b"\0" * (64 * 1024 + 1))}},
            "payload_too_large",
            "payloads.{device}",
        ),
    ],
)
def test_bad_send_frames_are_refused_clearly_and_change_nothing(
    ws: Harness, fields: dict[str, Any], code: str, field: str
) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice, bob = ws.connect(alice), ws.connect(bob)
    if isinstance(fields.get("payloads"), dict):
        fields = {
            "payloads": {
                k.replace("{device}", bob.device_id): v for k, v in fields["payloads"].items()
            }
        }
    before = ws.snapshot()

    answer = json.loads(ws.frame(alice, _send_frame(bob, **fields))["body"])

    assert answer["event"] == "error"
    assert answer["code"] == code
    assert answer["field"] == field.replace("{device}", bob.device_id)
    assert answer["message"]
    if fields.get("id", "bad-1") == "bad-1":
        assert answer["ref"] == "bad-1"
    assert ws.snapshot() == before
    assert ws.events(bob) == []


def test_send_to_a_nonexistent_user_is_unknown_user_and_changes_nothing(ws: Harness) -> None:
    (alice,) = ws.user()
    alice = ws.connect(alice)
    before = ws.snapshot()

    answer = ws.send(alice, "c" * 32, {"d" * 16: b"x"}, client_id="nobody")

    assert (answer["event"], answer["code"], answer["ref"]) == ("error", "unknown_user", "nobody")
    assert ws.snapshot() == before


def test_send_to_an_unknown_group_is_not_found(ws: Harness) -> None:
    (alice,) = ws.user()
    answer = ws.frame(
        ws.connect(alice), {"action": "send", "id": "g-1", "to": "g:" + "a" * 32, "body": b64(b"x")}
    )
    body = json.loads(answer["body"])
    assert (body["event"], body["code"], body["ref"]) == ("error", "not_found", "g-1")


# -- to one's own other devices -------------------------------------------------------------


def test_a_send_to_oneself_goes_to_ones_other_devices_and_their_ack_ticks_nothing(
    ws: Harness,
) -> None:
    phone, laptop, tablet = ws.user(devices=3)
    phone, laptop = ws.connect(phone), ws.connect(laptop)  # the tablet is offline

    answer = ws.send(phone, phone.user_id, {laptop.device_id: b"l", tablet.device_id: b"t"}, "s1")

    assert answer["event"] == "sent"
    (got,) = ws.events(laptop, "message")
    assert (got["from"], got["from_device"], base64.b64decode(got["body"])) == (
        phone.user_id,
        phone.device_id,
        b"l",
    )
    assert len(ws.mailbox_items(tablet)) == 1
    assert ws.mailbox_items(phone) == []
    ws.frame(laptop, {"action": "ack", "ids": [got["id"]]})
    assert ws.mailbox_items(laptop) == []
    assert ws.mailbox_items(phone) == []  # no delivered receipt for one's own copy
    assert ws.events(phone, "receipt") == []


def test_a_send_to_oneself_must_not_include_the_sending_device(ws: Harness) -> None:
    phone, laptop = ws.user(devices=2)
    phone = ws.connect(phone)
    before = ws.snapshot()

    answer = ws.send(phone, phone.user_id, {phone.device_id: b"p", laptop.device_id: b"l"}, "s2")

    assert (answer["code"], answer["missing"], answer["extra"]) == (
        "mismatched_devices",
        [],
        [phone.device_id],
    )
    assert ws.snapshot() == before


def test_a_send_to_oneself_with_no_other_device_left_names_them_all_extra(
    ws: Harness,
) -> None:
    phone, laptop = ws.user(devices=2)
    phone = ws.connect(phone)
    ws.users().revoke_device(laptop.user_id, laptop.device_id, time.time())  # signed out
    before = ws.snapshot()

    answer = ws.send(phone, phone.user_id, {laptop.device_id: b"copy"}, "s3")

    assert (answer["code"], answer["missing"], answer["extra"]) == (
        "mismatched_devices",
        [],
        [laptop.device_id],
    )
    assert ws.snapshot() == before


# -- ephemeral and ringing sends (call signalling) ------------------------------------


def _pushable(ws: Harness, device: Any, platform: str = "fcm") -> str:
    """Give `device` a push endpoint in moto, under the application the enforced IAM
    policy names; its ARN."""
    sns = ws.aws.client("sns")
    sns_platform = {"fcm": "GCM", "apns": "APNS"}[platform]
    app = sns.create_platform_application(
        Name=f"parley-local-{platform}", Platform=sns_platform, Attributes={}
    )["PlatformApplicationArn"]
    token = f"{device.device_id}-token"
    arn: str = sns.create_platform_endpoint(PlatformApplicationArn=app, Token=token)["EndpointArn"]
    ws.users().set_push(device.user_id, device.device_id, platform, token, arn)
    return arn


def _pushed(arn: str) -> list[dict[str, Any]]:
    """The data of each push published to the endpoint (its "default" body)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    endpoint = sns_backends[DEFAULT_ACCOUNT_ID][REGION].platform_endpoints[arn]
    return [json.loads(json.loads(m)["default"]) for m in endpoint.messages.values()]


def _ephemeral(to: Any, devices: list[Any], client_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "action": "send",
        "id": client_id,
        "to": to.user_id,
        "payloads": {d.device_id: b64(b"sdp") for d in devices},
        **fields,
    }


def test_a_ringing_send_rings_an_offline_phone_and_a_quiet_one_wakes_nobody(ws: Harness) -> None:
    (alice,) = ws.user()
    laptop, phone = ws.user(devices=2)
    alice, laptop = ws.connect(alice), ws.connect(laptop)
    arn = _pushable(ws, phone)
    before = time.time()

    quiet = ws.frame(alice, _ephemeral(laptop, [laptop, phone], "ice-1", ephemeral=True, ttl=30))
    ringing = ws.frame(
        alice, _ephemeral(laptop, [laptop, phone], "offer-1", ephemeral=True, ring=True, ttl=45)
    )

    assert json.loads(quiet["body"])["event"] == "sent"
    assert json.loads(ringing["body"])["event"] == "sent"
    # the live laptop got both at once; the offline phone got one push: the call's
    assert [e["client_id"] for e in ws.events(laptop, "message")] == ["ice-1", "offer-1"]
    assert _pushed(arn) == [{"type": "call"}]
    # each envelope waits only as long as its ttl
    expiry = {
        item["sk"]["S"].rsplit("#", 1)[1]: int(item["expires_at"]["N"]) - before
        for item in ws.mailbox_items(phone)
    }
    assert set(expiry) == {"ice-1", "offer-1"}
    assert 28 <= expiry["ice-1"] <= 32
    assert 43 <= expiry["offer-1"] <= 47


@pytest.mark.parametrize(
    "fields",
    [
        {"ephemeral": True},
        {"ephemeral": True, "ttl": 301},
        {"ring": True, "ttl": 30},
        {"ephemeral": "yes", "ttl": 30},
        {"ephemeral": True, "ring": 1, "ttl": 30},
    ],
)
def test_a_bad_ephemeral_send_is_refused_and_stores_and_pushes_nothing(
    ws: Harness, fields: dict[str, Any]
) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice = ws.connect(alice)
    arn = _pushable(ws, bob)
    before = ws.snapshot()

    answer = json.loads(ws.frame(alice, _ephemeral(bob, [bob], "bad-call", **fields))["body"])

    assert answer["event"] == "error"
    assert answer["code"] == "invalid_request"
    assert answer["ref"] == "bad-call"
    assert answer["field"] in ("ephemeral", "ring", "ttl")
    assert ws.snapshot() == before
    assert _pushed(arn) == []


def test_a_ringing_group_send_is_refused(ws: Harness) -> None:
    (alice,) = ws.user()
    alice = ws.connect(alice)
    before = ws.snapshot()

    answer = ws.frame(
        alice,
        {
            "action": "send",
            "id": "group-call",
            "to": "g:" + "c" * 32,
            "body": b64(b"offer"),
            "ephemeral": True,
            "ring": True,
            "ttl": 30,
        },
    )

    error = json.loads(answer["body"])
    assert (error["event"], error["code"], error["field"]) == (
        "error",
        "invalid_request",
        "ephemeral",
    )
    assert "group calls are not supported" in error["message"]
    assert ws.snapshot() == before


def test_a_frame_of_several_messages_is_stored_posted_and_answered_in_its_order(
    ws: Harness,
) -> None:
    (alice,) = ws.user()
    phone, laptop = ws.user(devices=2)
    alice, laptop = ws.connect(alice), ws.connect(laptop)
    ids = ["z9", "k5", "a1"]
    messages = [
        {
            "id": cid,
            "payloads": {
                phone.device_id: b64(b"p" + cid.encode()),
                laptop.device_id: b64(b"l" + cid.encode()),
            },
        }
        for cid in ids
    ]

    answer = ws.frame(
        alice, {"action": "send", "to": phone.user_id, **messages[0], "more": messages[1:]}
    )

    sent = json.loads(answer["body"])
    assert sent["event"] == "sent"
    answered = [(sent["id"], sent["ts"])] + [(m["id"], m["ts"]) for m in sent["more"]]
    assert [cid for cid, _ in answered] == ids
    live = ws.events(laptop, "message")
    assert [(e["client_id"], e["ts"]) for e in live] == answered
    assert [base64.b64decode(e["body"]) for e in live] == [b"l" + c.encode() for c in ids]
    # stamped in the frame's order, which sync follows
    stored = sorted(ws.mailbox_items(phone), key=lambda item: item["ord"]["S"])
    assert [item["sk"]["S"].rsplit("#", 1)[1] for item in stored] == ids
    assert [item["body"]["B"] for item in stored] == [b"p" + c.encode() for c in ids]


def test_a_bad_message_in_more_refuses_the_whole_frame_and_stores_nothing(ws: Harness) -> None:
    (alice,) = ws.user()
    (bob,) = ws.user()
    alice = ws.connect(alice)
    good = {"id": "ok", "payloads": {bob.device_id: b64(b"fine")}}
    bad = {"id": "bad", "payloads": {bob.device_id: "not base64!"}}

    answer = ws.frame(
        alice, {"action": "send", "to": bob.user_id, **good, "more": [good | {"id": "ok2"}, bad]}
    )

    error = json.loads(answer["body"])
    assert (error["event"], error["ref"], error["field"]) == (
        "error",
        "ok",
        f"more.1.payloads.{bob.device_id}",
    )
    assert ws.mailbox_items(bob) == []
