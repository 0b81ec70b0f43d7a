"""DELETE /v1/account through the HttpApi handler, against moto: a user deletes their
account with a fresh code for the purpose, and afterwards the service holds nothing
of it (every table and the bucket are read back), the people they talked to see it
gone, their groups carry on without them, refusals change nothing, and a deletion
cut short finishes when asked again."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from parley_server.catalogue import HTTP_ROUTES, Setting
from parley_server.logic.group_changes import change_hash
from parley_server.models.errors import DependencyUnavailable
from parley_server.store.mailbox import Mailbox
from parley_server.store.users import UsersStore
from tests.integration.conftest import Clock, SignIn, http
from tests.integration.test_http_harness import (
    ALICE,
    BOB,
    Answer,
    create_group,
    register_push,
)
from tests.integration.test_http_harness import Device as Signed
from tests.integration.ws_harness import Device, Harness

CAROL = "+14155550123"
_CODE = re.compile(r"\b([0-9]{6})\b")


@pytest.fixture
def ws(http_ws: Harness) -> Harness:
    return http_ws


def texts_to(phone: str) -> list[str]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    backend = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return [text for number, text in backend.sms_messages.values() if number == phone]


def deletion_code(ws: Harness, clock: Clock, phone: str = ALICE) -> str:
    """Ask for a code to delete the account of `phone`; the code texted."""
    clock.offset += 60
    asked = http(ws, "POST", "/v1/auth/otp", body={"phone": phone, "purpose": "delete_account"})
    assert asked.status == 202, asked.body
    text = texts_to(phone)[-1]
    assert "DELETE" in text
    found = _CODE.search(text)
    assert found is not None
    return found.group(1)


def delete(ws: Harness, who: Signed, code: str) -> Answer:
    return http(ws, "DELETE", "/v1/account", body={"code": code}, token=who.access_token)


# -- reading what is stored -----------------------------------------------------------


def scan(ws: Harness, setting: Setting) -> list[dict[str, Any]]:
    # tests may Scan; the service never does
    items: list[dict[str, Any]] = ws.aws.client("dynamodb").scan(
        TableName=ws.aws.settings[setting]
    )["Items"]
    return items


def mentioning(ws: Harness, setting: Setting, *needles: str) -> list[dict[str, Any]]:
    """The items of a table in which any of `needles` appears anywhere."""
    return [
        item
        for item in scan(ws, setting)
        if any(n in json.dumps(item, default=str) for n in needles)
    ]


def object_exists(ws: Harness, key: str) -> bool:
    s3 = ws.aws.client("s3")
    listed = s3.list_objects_v2(Bucket=ws.aws.settings[Setting.MEDIA_BUCKET], Prefix=key)
    return any(o["Key"] == key for o in listed.get("Contents", []))


def group(ws: Harness, group_id: str) -> dict[str, Any] | None:
    """A group's META and members, straight from the table (None once it is deleted)."""
    items = ws.aws.client("dynamodb").query(
        TableName=ws.aws.settings[Setting.GROUPS_TABLE],
        KeyConditionExpression="group_id = :g",
        ExpressionAttributeValues={":g": {"S": group_id}},
        ConsistentRead=True,
    )["Items"]
    meta = next((i for i in items if i["sk"]["S"] == "META"), None)
    if meta is None:
        return None
    return {
        "version": int(meta["version"]["N"]),
        "members": {
            i["sk"]["S"].removeprefix("MEMBER#"): i["role"]["S"]
            for i in items
            if i["sk"]["S"].startswith("MEMBER#")
        },
    }


# -- a world with something of everything ----------------------------------------------


@dataclass
class World:
    phone: Signed  # Alice's phone: the device that deletes
    laptop: Signed  # Alice's second device, online
    laptop_online: Device
    bob: Signed
    carol: Signed
    media_key: str
    media_id: str
    endpoint: str
    groups: dict[str, str]  # "alone" | "hers" | "bobs" -> group id


def fcm_app(ws: Harness) -> str:
    """A platform application in moto, named as the local stack's (whose ARNs the
    enforced IAM policy names), given to the HttpApi function."""
    app: str = ws.aws.client("sns").create_platform_application(
        Name="parley-local-fcm", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    ws.aws.settings[Setting.PUSH_APPS] = json.dumps({"fcm": app})
    return app


@pytest.fixture
def world(ws: Harness, sign_in: SignIn) -> World:
    fcm_app(ws)
    phone = sign_in()
    laptop = sign_in()
    bob = sign_in(BOB)
    carol = sign_in(CAROL)
    # push: the phone registers a token, which makes an SNS platform endpoint
    ws.function_env("HttpApi")
    register_push(ws.aws, ws.function_env, phone, "fcm", "t" * 40)
    (endpoint,) = [
        d.push_endpoint for d in ws.users().devices(phone.user_id) if d.push_endpoint is not None
    ]
    # contacts: Bob claims Alice's bundle (which records them as contacts both ways)
    assert http(ws, "GET", f"/v1/keys/{phone.user_id}", token=bob.access_token).status == 200
    # media: Alice uploads a file
    created = http(ws, "POST", "/v1/media", body={"size": 5}, token=phone.access_token)
    assert created.status == 200, created.body
    media_id = created.body["media_id"]
    media_key = f"m/{phone.user_id}/{media_id}"
    ws.aws.client("s3").put_object(
        Bucket=ws.aws.settings[Setting.MEDIA_BUCKET], Key=media_key, Body=b"12345"
    )
    # mail waiting for both of Alice's devices (the laptop is online, the phone not)
    online = ws.connect(Device(laptop.user_id, laptop.device_id))
    bobs = ws.connect(Device(bob.user_id, bob.device_id))
    sent = ws.send(bobs, phone.user_id, {phone.device_id: b"one", laptop.device_id: b"two"})
    assert sent["event"] == "sent", sent
    # groups: one of hers alone, one she runs with Bob and Carol, one of Bob's she is in
    ids = {}
    for name, owner, members in (
        ("alone", phone, []),
        ("hers", phone, [bob.user_id, carol.user_id]),
        ("bobs", bob, [phone.user_id, carol.user_id]),
    ):
        ws.function_env("HttpApi")
        made = create_group(owner, members, name=name)
        assert made.status == 201, made.body
        ids[name] = made.body["group_id"]
    return World(phone, laptop, online, bob, carol, media_key, media_id, endpoint, ids)


def assert_nothing_left(ws: Harness, w: World) -> None:
    uid = w.phone.user_id
    alice_devices = (w.phone.device_id, w.laptop.device_id)
    # the users table: profile, devices, contacts (Bob's of her too), media ids, the
    # number, refresh tokens and their families: nothing names her any more
    assert mentioning(ws, Setting.USERS_TABLE, uid, ALICE) == []
    assert mentioning(ws, Setting.PREKEYS_TABLE, uid) == []
    assert mentioning(ws, Setting.CONNECTIONS_TABLE, uid) == []
    assert mentioning(ws, Setting.OTP_TABLE, ALICE) == []
    for device_id in alice_devices:
        assert ws.mailbox_items(Device(uid, device_id)) == []
    assert [i for i in scan(ws, Setting.GROUPS_TABLE) if i.get("member", {}).get("S") == uid] == []
    # the media object and its record
    assert not object_exists(ws, w.media_key)
    # the push endpoint
    with pytest.raises(ws.aws.client("sns").exceptions.NotFoundException):
        ws.aws.client("sns").get_endpoint_attributes(EndpointArn=w.endpoint)


def test_the_route_is_declared() -> None:
    assert "DELETE /v1/account" in HTTP_ROUTES


def test_deleting_an_account_removes_everything_the_service_held_for_it(
    ws: Harness, world: World, clock: Clock
) -> None:
    w = world
    before = {name: group(ws, gid) for name, gid in w.groups.items()}
    code = deletion_code(ws, clock)

    answer = delete(ws, w.phone, code)

    assert (answer.status, answer.body) == (204, None)
    assert_nothing_left(ws, w)
    # her open connection was closed
    assert ws.endpoint.closed == [w.laptop_online.connection_id]
    # her tokens stop working, both devices', the refresh tokens too
    for device in (w.phone, w.laptop):
        assert http(ws, "GET", "/v1/devices", token=device.access_token).status == 401
        refresh = http(ws, "POST", "/v1/auth/refresh", body={"refresh_token": device.refresh_token})
        assert refresh.status == 401
    # what Bob sees: no such user, wherever he looks
    bob = w.bob
    assert (
        http(ws, "GET", "/v1/users", query={"phone": ALICE}, token=bob.access_token).status == 404
    )
    assert http(ws, "GET", f"/v1/keys/{w.phone.user_id}", token=bob.access_token).status == 404
    assert http(ws, "GET", f"/v1/presence/{w.phone.user_id}", token=bob.access_token).status == 404
    bobs = ws.connect(Device(bob.user_id, bob.device_id))
    refused = ws.send(bobs, w.phone.user_id, {w.phone.device_id: b"still there?"})
    assert (refused["event"], refused["code"]) == ("error", "unknown_user")
    # groups: the one she was alone in is closed; the one she ran has a new admin, the
    # longest-standing member (Bob and Carol joined together: the lower id); in Bob's
    # she is simply gone. Each moved its version, so members rotate their sender keys.
    assert group(ws, w.groups["alone"]) is None
    heir = min(bob.user_id, w.carol.user_id)
    other = max(bob.user_id, w.carol.user_id)
    hers = before["hers"]
    assert hers is not None
    assert group(ws, w.groups["hers"]) == {
        "version": hers["version"] + 1,
        "members": {heir: "admin", other: "member"},
    }
    bobs_group = before["bobs"]
    assert bobs_group is not None
    assert group(ws, w.groups["bobs"]) == {
        "version": bobs_group["version"] + 1,
        "members": {bob.user_id: "admin", w.carol.user_id: "member"},
    }
    seen = http(ws, "GET", f"/v1/groups/{w.groups['hers']}", token=w.carol.access_token)
    assert seen.status == 200
    assert w.phone.user_id not in seen.body["members"]
    assert seen.body["admins"] == [heir]
    # the chain records her leave as the service's own entry: unsigned, no certificate
    chain = http(
        ws,
        "GET",
        f"/v1/groups/{w.groups['hers']}",
        query={"changes_after": "1"},
        token=w.carol.access_token,
    ).body
    [entry] = chain["changes"]
    assert (entry["seq"], entry["signature"], entry["certificate"]) == (2, "", None)
    assert chain["head"] == chain["rev"] == 2
    left = json.loads(base64.b64decode(entry["body"]))
    assert {k: left[k] for k in ("seq", "author", "device", "kind", "members", "admins")} == {
        "seq": 2,
        "author": w.phone.user_id,
        "device": "",
        "kind": "leave",
        "members": [],
        "admins": [],
    }
    first = base64.b64decode(
        http(
            ws,
            "GET",
            f"/v1/groups/{w.groups['hers']}",
            query={"changes_after": "0"},
            token=w.carol.access_token,
        ).body["changes"][0]["body"]
    )
    assert base64.b64decode(left["prev"]) == change_hash(first)


def test_the_number_can_sign_up_afresh_as_a_new_account(
    ws: Harness, sign_in: SignIn, clock: Clock
) -> None:
    alice = sign_in()
    assert delete(ws, alice, deletion_code(ws, clock)).status == 204

    again = sign_in()

    assert again.user_id != alice.user_id
    assert [
        d["device_id"]
        for d in http(ws, "GET", "/v1/devices", token=again.access_token).body["devices"]
    ] == [again.device_id]


# -- refusals -------------------------------------------------------------------------


def snapshot(ws: Harness) -> dict[str, Any]:
    """Every table but the codes' (a wrong code spends an attempt, as at sign-in),
    and but the phone numbers' failed codes (a wrong code at sign-in counts one)."""
    tables = [s for s in Setting if s.value.endswith("_TABLE") and s != Setting.OTP_TABLE]
    return {
        s.value: sorted(
            json.dumps(i, sort_keys=True, default=str)
            for i in scan(ws, s)
            if not i.get("key", {}).get("S", "").startswith("otp-failed#")
        )
        for s in tables
        if s in ws.aws.settings
    }


@pytest.mark.parametrize(
    ("body", "raw", "status", "code"),
    [
        (None, None, 400, "invalid_request"),
        ({}, None, 400, "invalid_request"),
        ({"code": "12345"}, None, 400, "invalid_request"),
        ({"code": "12345a"}, None, 400, "invalid_request"),
        ({"code": 123456}, None, 400, "invalid_request"),
        ({"confirm": ALICE}, None, 400, "invalid_request"),
        ({"code": "123456", "confirm": ALICE}, None, 400, "invalid_request"),
        (None, "{not json", 400, "invalid_request"),
    ],
)
def test_malformed_requests_are_refused_and_change_nothing(
    ws: Harness,
    world: World,
    body: Any,
    raw: str | None,
    status: int,
    code: str,
) -> None:
    before = snapshot(ws)

    answer = http(ws, "DELETE", "/v1/account", body=body, raw=raw, token=world.phone.access_token)

    assert (answer.status, answer.code) == (status, code)
    assert answer.body["error"]["message"]
    assert snapshot(ws) == before


@pytest.mark.parametrize("token", [None, "junk"])
def test_without_a_valid_token_nothing_is_deleted(
    ws: Harness, world: World, clock: Clock, token: str | None
) -> None:
    code = deletion_code(ws, clock)
    before = snapshot(ws)

    answer = http(ws, "DELETE", "/v1/account", body={"code": code}, token=token)

    assert answer.status == 401
    assert snapshot(ws) == before
    # the code is still good for its owner
    assert delete(ws, world.phone, code).status == 204


def test_a_wrong_code_is_refused_and_changes_nothing(
    ws: Harness, world: World, clock: Clock
) -> None:
    code = deletion_code(ws, clock)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    before = snapshot(ws)

    answer = delete(ws, world.phone, wrong)

    assert (answer.status, answer.code) == (401, "invalid_code")
    assert answer.body["error"]["attempts_left"] == 4
    assert snapshot(ws) == before
    assert http(ws, "GET", "/v1/devices", token=world.phone.access_token).status == 200


def test_without_a_code_asked_for_there_is_nothing_to_match(ws: Harness, world: World) -> None:
    before = snapshot(ws)

    answer = delete(ws, world.phone, "123456")

    assert (answer.status, answer.code) == (401, "invalid_code")
    assert snapshot(ws) == before


def test_a_sign_in_code_cannot_delete_and_a_deletion_code_cannot_sign_in(
    ws: Harness, world: World, clock: Clock
) -> None:
    clock.offset += 60
    assert http(ws, "POST", "/v1/auth/otp", body={"phone": ALICE}).status == 202
    sign_in_code = _CODE.findall(texts_to(ALICE)[-1])[-1]
    before = snapshot(ws)

    refused = delete(ws, world.phone, sign_in_code)

    assert (refused.status, refused.code) == (401, "invalid_code")
    assert snapshot(ws) == before

    code = deletion_code(ws, clock)
    before = snapshot(ws)
    verify = http(ws, "POST", "/v1/auth/verify", body={"phone": ALICE, "code": code})
    assert (verify.status, verify.code) == (401, "invalid_code")
    assert snapshot(ws) == before


def test_a_code_for_another_purpose_is_refused(ws: Harness) -> None:
    answer = http(ws, "POST", "/v1/auth/otp", body={"phone": ALICE, "purpose": "anything"})
    assert (answer.status, answer.code) == (400, "invalid_request")
    assert texts_to(ALICE) == []


# -- cut short, then finished -----------------------------------------------------------


def _failing_once(monkeypatch: pytest.MonkeyPatch, owner: type, name: str, when: Any) -> None:
    """Make `owner.name` raise DependencyUnavailable the first time `when(args)` holds."""
    real = getattr(owner, name)
    state = {"failed": False}

    def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not state["failed"] and when(args):
            state["failed"] = True
            raise DependencyUnavailable("injected failure")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)


@pytest.mark.parametrize("step", ["closing a connection", "a mailbox", "the last record"])
def test_a_deletion_cut_short_finishes_when_asked_again(
    ws: Harness, world: World, clock: Clock, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    w = world
    if step == "closing a connection":
        ws.endpoint.fail_closes = True
    elif step == "a mailbox":
        _failing_once(monkeypatch, Mailbox, "clear", lambda args: True)
    else:
        own = f"DEVICE#{w.phone.device_id}"
        _failing_once(monkeypatch, UsersStore, "delete_records", lambda args: args[1] == [own])
    code = deletion_code(ws, clock)

    failed = delete(ws, w.phone, code)

    assert (failed.status, failed.code) == (503, "service_unavailable")
    # already: senders no longer see her, and her tokens work for nothing but this
    bobs = ws.connect(Device(w.bob.user_id, w.bob.device_id))
    refused = ws.send(bobs, w.phone.user_id, {w.phone.device_id: b"hello?"})
    assert refused["code"] == "unknown_user"
    assert http(ws, "GET", "/v1/devices", token=w.phone.access_token).status == 401
    assert http(ws, "GET", "/v1/devices", token=w.laptop.access_token).status == 401
    ws.endpoint.fail_closes = False

    # asked again with the same request (its code was spent): it finishes
    again = delete(ws, w.phone, code)

    assert again.status == 204, again.body
    assert_nothing_left(ws, w)
    assert group(ws, w.groups["alone"]) is None
    # and once done, the token is as dead as the account
    assert delete(ws, w.phone, code).status == 401


def test_any_device_of_the_account_may_finish_a_deletion_once_it_has_started(
    ws: Harness, world: World, clock: Clock
) -> None:
    """The code was checked when the deletion started; from then on every device of
    the account (its tokens good for nothing else) may see it through."""
    ws.endpoint.fail_closes = True
    code = deletion_code(ws, clock)
    assert delete(ws, world.phone, code).status == 503
    ws.endpoint.fail_closes = False

    assert delete(ws, world.laptop, "000000").status == 204

    assert_nothing_left(ws, world)


def test_a_test_number_deletes_with_its_derived_code_and_nothing_is_texted(
    ws: Harness, clock: Clock
) -> None:
    """What `make smoke` does to clean up: sign up a test number, delete it."""
    from parley_server.logic.testnumbers import code_for
    from tests.conftest import TEST_NUMBER

    code = code_for(b"k" * 64, TEST_NUMBER)  # the `aws` fixture's signing secret
    clock.offset += 60
    assert http(ws, "POST", "/v1/auth/otp", body={"phone": TEST_NUMBER}).status == 202
    signed = http(ws, "POST", "/v1/auth/verify", body={"phone": TEST_NUMBER, "code": code})
    assert signed.status == 200, signed.body
    token = signed.body["access_token"]
    asked = http(
        ws, "POST", "/v1/auth/otp", body={"phone": TEST_NUMBER, "purpose": "delete_account"}
    )
    assert asked.status == 202, asked.body

    answer = http(ws, "DELETE", "/v1/account", body={"code": code}, token=token)

    assert answer.status == 204, answer.body
    assert texts_to(TEST_NUMBER) == []
    assert mentioning(ws, Setting.USERS_TABLE, signed.body["user_id"], TEST_NUMBER) == []
