"""The group routes through the HttpApi handler, with its exact environment and real
tokens (moto in-process): create, read, list, and signed changes (add, remove,
leave, promote, dismiss, vouch), the chain they make and reading it back.

Every account signs up, uploads its keys and publishes its device list as the app
does (test_http_harness.with_keys); its device signs group changes with the
identity key that list gives it."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from typing import Any

import pytest
from nacl.signing import SigningKey, VerifyKey

from parley_server.catalogue import HTTP_ROUTES, Setting
from parley_server.config import reset_config
from parley_server.handlers import http_api
from parley_server.logic.device_list import LIST_PREFIX
from parley_server.logic.group_changes import PREFIX, canonical, change_hash
from parley_server.models.groups import ADMIN, MEMBER, Group, Member
from parley_server.store.groups import GroupsStore
from tests.conftest import FakeAws
from tests.group_changes import body_of, signed_body
from tests.integration.test_http_harness import (
    Answer,
    Device,
    call,
    create_group,
    group_change,
    link,
    sign_up,
    with_keys,
)

_PHONES = (f"+1415555{n:04d}" for n in itertools.count(2000))
_IPS = (f"198.51.100.{n}" for n in itertools.count(1))


pytestmark = pytest.mark.usefixtures("http_env")


def _user() -> Device:
    """An account as the app makes one: signed up, keys uploaded, device list published."""
    return with_keys(sign_up(next(_PHONES), source_ip=next(_IPS)))


def _as(device: Device, method: str, path: str, body: Any = None, **kwargs: Any) -> Answer:
    return call(method, path, body=body, token=device.access_token, **kwargs)


def _create(owner: Device, *members: Device, name: str = "Climbing") -> dict[str, Any]:
    answer = create_group(owner, [m.user_id for m in members], name=name)
    assert answer.status == 201, answer.body
    return dict(answer.body)


def _group(device: Device, group_id: str, after: int | None = None) -> Answer:
    query = None if after is None else {"changes_after": str(after)}
    return _as(device, "GET", f"/v1/groups/{group_id}", query=query)


def _head_hash(device: Device, group: dict[str, Any]) -> bytes:
    """The hash of the chain's head entry, as a client learns it (b"" for no chain)."""
    if group["head"] == 0:
        return b""
    read = _group(device, group["group_id"], after=group["head"] - 1)
    assert read.status == 200, read.body
    return change_hash(base64.b64decode(read.body["changes"][-1]["body"]))


def _signed(device: Device, group_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    """`device`'s change of `kind`, signed for the group as the service has it now."""
    group = _group(device, group_id)
    assert group.status == 200, group.body
    return group_change(
        device,
        kind,
        group_id,
        seq=group.body["rev"] + 1,
        prev=_head_hash(device, group.body),
        **fields,
    )


def _post(device: Device, group_id: str, body: Any) -> Answer:
    return _as(device, "POST", f"/v1/groups/{group_id}/changes", body)


def _change(device: Device, group_id: str, kind: str, **fields: Any) -> Answer:
    return _post(device, group_id, _signed(device, group_id, kind, **fields))


def _vouch(device: Device, group_id: str) -> Answer:
    group = _group(device, group_id).body
    return _change(device, group_id, "vouch", members=group["members"], admins=group["admins"])


def _entries(device: Device, group_id: str) -> list[dict[str, Any]]:
    """Every entry of the group's chain, page after page."""
    found: list[dict[str, Any]] = []
    while True:
        page = _group(device, group_id, after=found[-1]["seq"] if found else 0)
        assert page.status == 200, page.body
        found += page.body["changes"]
        if not page.body["more"]:
            return found


def _verified(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries' bodies, after checking the chain as a client does: each entry's
    certificate is a device list its account identity signed, its signature verifies
    under the key that list gives its device, and each names the previous one's hash."""
    bodies = []
    prev = b""
    for entry in entries:
        body = base64.b64decode(entry["body"])
        change = json.loads(body)
        assert change["seq"] == entry["seq"]
        assert change["prev"] == (base64.b64encode(prev).decode() if prev else "")
        cert = entry["certificate"]
        listed_bytes = base64.b64decode(cert["body"])
        listed = json.loads(listed_bytes)
        account = base64.b64decode(listed["account_identity"])
        VerifyKey(account).verify(LIST_PREFIX + listed_bytes, base64.b64decode(cert["signature"]))
        assert listed["user_id"] == change["author"]
        [device] = [d for d in listed["devices"] if d["device_id"] == change["device"]]
        VerifyKey(base64.b64decode(device["identity"])).verify(
            PREFIX + body, base64.b64decode(entry["signature"])
        )
        prev = change_hash(body)
        bodies.append(change)
    return bodies


# -- the routes -----------------------------------------------------------------------------


def test_the_group_routes_in_the_catalogue_are_the_signed_ones() -> None:
    groups = {route for route in HTTP_ROUTES if "/v1/groups" in route}

    assert groups == {
        "POST /v1/groups",
        "GET /v1/groups",
        "GET /v1/groups/{group_id}",
        "POST /v1/groups/{group_id}/changes",
    }


def test_the_openapi_document_describes_the_changes_and_the_chain() -> None:
    paths = call("GET", "/v1/openapi.json").body["paths"]

    changes = paths["/v1/groups/{group_id}/changes"]["post"]
    read = paths["/v1/groups/{group_id}"]["get"]
    assert changes["security"] == read["security"] == [{"bearer": []}]
    assert paths["/v1/groups"]["post"]["security"] == [{"bearer": []}]
    assert {"200", "204", "400", "403", "404", "409", "413"} <= set(changes["responses"])
    assert "201" in paths["/v1/groups"]["post"]["responses"]
    [query] = [p for p in read["parameters"] if p["name"] == "changes_after"]
    assert query["in"] == "query"
    assert query["required"] is False


def test_group_routes_need_a_token() -> None:
    for method, path in (
        ("GET", "/v1/groups"),
        ("POST", "/v1/groups"),
        ("POST", f"/v1/groups/{'1' * 32}/changes"),
    ):
        answer = call(method, path, body={"change": {"body": "eA==", "signature": "eA=="}})
        assert (answer.status, answer.code) == (401, "unauthorized")


def test_a_malformed_group_id_or_changes_after_is_a_400() -> None:
    alice = _user()
    gid = _create(alice)["group_id"]

    for answer in (
        _group(alice, "not-a-group"),
        _as(alice, "POST", "/v1/groups/NOT/changes", _signed(alice, gid, "leave")),
        _as(alice, "GET", f"/v1/groups/{gid}", query={"changes_after": "-1"}),
        _as(alice, "GET", f"/v1/groups/{gid}", query={"changes_after": "one"}),
        _as(alice, "GET", f"/v1/groups/{gid}", query={"changes_after": "10000000000"}),
    ):
        assert (answer.status, answer.code) == (400, "invalid_request"), answer.body


# -- creating and reading -------------------------------------------------------------------


def test_the_creator_is_admin_and_every_member_can_read_the_group() -> None:
    alice, bob, carol = _user(), _user(), _user()

    group = _create(alice, bob, carol, name="  Climbing  ")

    assert len(group["group_id"]) == 32
    assert group["name"] == "Climbing"
    assert (group["version"], group["rev"], group["head"]) == (1, 1, 1)
    assert group["members"][0] == alice.user_id
    assert set(group["members"]) == {alice.user_id, bob.user_id, carol.user_id}
    assert group["admins"] == [alice.user_id]
    assert group["created_by"] == alice.user_id
    assert set(group) == {
        "group_id",
        "name",
        "version",
        "members",
        "admins",
        "created_by",
        "created_at",
        "rev",
        "head",
    }
    read = _group(bob, group["group_id"])
    assert read.status == 200
    assert read.body == group
    assert read.headers["cache-control"] == "no-store"


def test_the_create_is_the_first_entry_of_the_chain_with_the_creators_device_list() -> None:
    alice, bob = _user(), _user()
    gid = str(uuid.uuid4().hex)
    body = group_change(
        alice, "create", gid, seq=1, prev=b"", name="Climbing", members=[bob.user_id]
    )
    assert _as(alice, "POST", "/v1/groups", body).status == 201

    read = _group(bob, gid, after=0)

    assert read.status == 200
    assert read.body["more"] is False
    [entry] = read.body["changes"]
    assert entry == {
        "seq": 1,
        "body": body["change"]["body"],
        "signature": body["change"]["signature"],
        "certificate": _as(alice, "GET", "/v1/devices").body["device_list"],
    }
    [created] = _verified([entry])
    assert created["kind"] == "create"
    # without changes_after, no chain in the answer
    assert "changes" not in _group(bob, gid).body


def test_a_non_member_gets_not_found_exactly_as_for_an_unknown_group() -> None:
    alice, mallory = _user(), _user()
    group = _create(alice)
    gid = group["group_id"]

    theirs = _group(mallory, gid)
    chain = _group(mallory, gid, after=0)
    unknown = _group(mallory, "f" * 32)
    change = _post(
        mallory, gid, group_change(mallory, "leave", gid, seq=2, prev=_head_hash(alice, group))
    )

    for answer in (theirs, chain, unknown, change):
        assert (answer.status, answer.code) == (404, "not_found")
        assert answer.body["error"]["message"] == unknown.body["error"]["message"]
        assert set(answer.body["error"]) == {"code", "message"}  # no rev, no head


def test_my_groups_lists_each_group_with_my_role() -> None:
    alice, bob = _user(), _user()
    first = _create(alice, bob, name="Books")
    second = _create(bob, alice, name="Allotment")

    listed = _as(alice, "GET", "/v1/groups")

    assert listed.status == 200
    assert listed.body["groups"] == [
        {
            "group_id": second["group_id"],
            "name": "Allotment",
            "version": 1,
            "member_count": 2,
            "role": "member",
        },
        {
            "group_id": first["group_id"],
            "name": "Books",
            "version": 1,
            "member_count": 2,
            "role": "admin",
        },
    ]
    assert _as(_user(), "GET", "/v1/groups").body == {"groups": []}


def test_creating_with_an_unknown_user_is_refused_and_creates_nothing() -> None:
    alice, bob = _user(), _user()
    stranger = "0" * 32

    answer = create_group(alice, [bob.user_id, stranger])

    assert (answer.status, answer.code) == (404, "unknown_users")
    assert answer.body["error"]["user_ids"] == [stranger]
    assert _as(alice, "GET", "/v1/groups").body == {"groups": []}


def test_creating_with_an_id_in_use_is_refused() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]

    again = _as(
        bob, "POST", "/v1/groups", group_change(bob, "create", gid, seq=1, prev=b"", name="x")
    )

    assert (again.status, again.code) == (409, "group_exists")
    assert _group(alice, gid).body["members"] == [alice.user_id, bob.user_id]


def _create_body(alice: Device, **changes: Any) -> dict[str, Any]:
    fields = body_of(
        group_id=uuid.uuid4().hex,
        seq=1,
        prev=b"",
        author=alice.user_id,
        device=alice.device_id,
        kind="create",
        name="x",
    )
    return {"change": signed_body(alice.identity, canonical({**fields, **changes}))}


@pytest.mark.parametrize(
    ("make", "field", "problem"),
    [
        (lambda a: {}, "change", "the body must be"),
        (lambda a: {"name": "x", "members": []}, "change", "the body must be"),
        (lambda a: ["change"], "change", "the body must be"),
        (lambda a: {"change": "x"}, "change", "exactly the fields body and signature"),
        (lambda a: {"change": {"body": "eA=="}}, "change", "exactly the fields"),
        (lambda a: {"change": {"body": 7, "signature": "eA=="}}, "change.body", "base64"),
        (lambda a: {"change": {"body": "!!", "signature": "eA=="}}, "change.body", "base64"),
        (
            lambda a: {"change": {**_create_body(a)["change"], "signature": "eA=="}},
            "change.signature",
            "64 bytes",
        ),
        (lambda a: _create_body(a, name="   "), "change.name", "must not be empty"),
        (lambda a: _create_body(a, name="x" * 101), "change.name", "at most 100"),
        (lambda a: _create_body(a, name="a\nb"), "change.name", "control characters"),
        (lambda a: _create_body(a, name=7), "change.name", "must be a string"),
        (lambda a: _create_body(a, members=["b" * 32, "a" * 32]), "change.members", "sorted"),
        (lambda a: _create_body(a, members=["B" * 32]), "change.members", "user ids"),
        (lambda a: _create_body(a, members=[a.user_id]), "change.members", "author"),
        (lambda a: _create_body(a, v=2), "change.v", "must be 1"),
        (lambda a: _create_body(a, seq=2), "change.seq", "must be 1"),
        (
            lambda a: _create_body(a, kind="add", name="", members=["b" * 32]),
            "change.kind",
            "changes",
        ),
        (lambda a: _create_body(a, author="b" * 32), "change.author", "caller"),
        (lambda a: _create_body(a, device="f" * 16), "change.device", "caller"),
        (lambda a: _create_body(a, admins=[a.user_id]), "change.admins", "[]"),
    ],
)
def test_a_malformed_create_is_a_400_naming_the_field(make: Any, field: str, problem: str) -> None:
    alice = _user()

    answer = _as(alice, "POST", "/v1/groups", make(alice))

    assert (answer.status, answer.code) == (400, "invalid_group_change"), answer.body
    assert answer.body["error"]["field"] == field
    assert problem in answer.body["error"]["message"]
    assert _as(alice, "GET", "/v1/groups").body == {"groups": []}


def test_too_many_ids_in_one_change_or_too_large_a_body_is_a_413() -> None:
    alice = _user()
    ids = sorted(f"{n:032x}" for n in range(1, 99))

    answer = _as(alice, "POST", "/v1/groups", _create_body(alice, members=ids))
    huge = _as(alice, "POST", "/v1/groups", {"change": {"body": "A" * 90_000, "signature": "x"}})

    assert (answer.status, answer.code) == (413, "payload_too_large")
    assert answer.body["error"]["limit"] == 97
    assert (huge.status, huge.code) == (413, "payload_too_large")
    assert huge.body["error"]["limit"] == 64 * 1024


# -- who signed it --------------------------------------------------------------------------


def test_a_bad_signature_is_refused_and_changes_nothing() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]
    body = _signed(alice, gid, "remove", members=[bob.user_id])
    raw = bytearray(base64.b64decode(body["change"]["signature"]))
    raw[0] ^= 1
    forged = {"change": {**body["change"], "signature": base64.b64encode(bytes(raw)).decode()}}
    by_another_key = _create_body(alice)
    by_another_key["change"]["signature"] = base64.b64encode(
        SigningKey.generate()
        .sign(PREFIX + base64.b64decode(by_another_key["change"]["body"]))
        .signature
    ).decode()

    refused = _post(alice, gid, forged)
    refused_create = _as(alice, "POST", "/v1/groups", by_another_key)

    for answer in (refused, refused_create):
        assert (answer.status, answer.code) == (400, "invalid_signature")
        assert answer.body["error"]["field"] == "change.signature"
    assert _group(alice, gid).body["rev"] == 1
    assert _post(alice, gid, body).status == 200  # the right signature still goes


def test_a_change_signed_as_someone_else_is_refused() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]
    alices = _signed(alice, gid, "leave")

    as_bob = _post(bob, gid, alices)  # Bob sends Alice's signed leave

    assert (as_bob.status, as_bob.code) == (400, "invalid_group_change")
    assert as_bob.body["error"]["field"] == "change.author"
    assert _group(alice, gid).body["members"] == [alice.user_id, bob.user_id]


def test_a_linked_device_signs_its_own_changes_and_no_other_devices() -> None:
    alice, bob, carol = _user(), _user(), _user()
    laptop = link(alice)
    gid = _create(alice, bob)["group_id"]
    group = _group(laptop, gid).body
    prev = _head_hash(alice, group)
    # the phone's signature on a change that names the laptop as its device
    phones = Device(laptop.phone, alice.user_id, laptop.device_id, "", "", alice.identity)
    by_the_phone = group_change(
        phones, "add", gid, seq=group["rev"] + 1, prev=prev, members=[carol.user_id]
    )
    # the laptop's change, sent by the phone
    laptops = group_change(
        laptop, "add", gid, seq=group["rev"] + 1, prev=prev, members=[carol.user_id]
    )

    signed_by_another = _post(laptop, gid, by_the_phone)
    sent_by_another = _post(alice, gid, laptops)
    own = _post(laptop, gid, laptops)

    assert (signed_by_another.status, signed_by_another.code) == (400, "invalid_signature")
    assert (sent_by_another.status, sent_by_another.code) == (400, "invalid_group_change")
    assert sent_by_another.body["error"]["field"] == "change.device"
    assert own.status == 200, own.body
    assert own.body["members"] == [alice.user_id, bob.user_id, carol.user_id]
    # its entry's certificate is the account's list naming the laptop
    [_, added] = _verified(_entries(bob, gid))
    assert (added["author"], added["device"]) == (alice.user_id, laptop.device_id)


def test_an_account_without_a_device_list_cannot_change_groups() -> None:
    unlisted = sign_up(next(_PHONES), source_ip=next(_IPS))  # no keys, no list yet

    answer = create_group(unlisted, [])

    assert (answer.status, answer.code) == (409, "no_device_list")
    assert _as(unlisted, "GET", "/v1/groups").body == {"groups": []}


# -- each kind ------------------------------------------------------------------------------


def test_an_admin_adds_members_and_the_version_moves() -> None:
    alice, bob, carol, dave = _user(), _user(), _user(), _user()
    gid = _create(alice, bob)["group_id"]

    added = _change(alice, gid, "add", members=[carol.user_id])
    again = _change(alice, gid, "add", members=sorted([carol.user_id, dave.user_id]))
    same = _change(alice, gid, "add", members=[bob.user_id])

    assert added.status == 200, added.body
    assert (added.body["version"], added.body["rev"], added.body["head"]) == (2, 2, 2)
    assert added.body["members"] == [alice.user_id, bob.user_id, carol.user_id]
    assert (again.body["version"], again.body["head"]) == (3, 3)
    assert again.body["members"][-1] == dave.user_id
    # already a member: nothing changed, no entry
    assert (same.status, same.body["version"], same.body["head"]) == (200, 3, 3)
    assert _group(carol, gid).status == 200


def test_a_member_who_is_not_admin_cannot_change_the_group() -> None:
    alice, bob, carol = _user(), _user(), _user()
    group = _create(alice, bob, carol)
    gid = group["group_id"]

    add = _change(bob, gid, "add", members=[_user().user_id])
    remove = _change(bob, gid, "remove", members=[carol.user_id])
    promote = _change(bob, gid, "promote", members=[carol.user_id])
    dismiss = _change(bob, gid, "dismiss", members=[alice.user_id])
    vouch = _vouch(bob, gid)

    for answer in (add, remove, promote, dismiss, vouch):
        assert (answer.status, answer.code) == (403, "not_admin")
    after = _group(alice, gid).body
    assert after == group


def test_adding_beyond_the_member_limit_is_refused_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARLEY_LIMITS", '{"group_max_members": 3}')
    reset_config()
    alice, bob, carol, dave = _user(), _user(), _user(), _user()
    gid = _create(alice, bob)["group_id"]

    answer = _change(alice, gid, "add", members=sorted([carol.user_id, dave.user_id]))
    too_big = create_group(alice, [bob.user_id, carol.user_id, dave.user_id])

    assert (answer.status, answer.code) == (409, "group_full")
    assert answer.body["error"]["limit"] == 3
    assert (too_big.status, too_big.code) == (409, "group_full")
    after = _group(alice, gid).body
    assert (after["version"], len(after["members"]), after["head"]) == (1, 2, 1)
    assert _group(carol, gid).status == 404


def test_adding_an_unknown_user_is_refused_and_changes_nothing() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice)["group_id"]

    answer = _change(alice, gid, "add", members=sorted([bob.user_id, "9" * 32]))

    assert (answer.status, answer.code) == (404, "unknown_users")
    assert _group(alice, gid).body["members"] == [alice.user_id]


def test_a_removed_member_can_no_longer_read_the_group() -> None:
    alice, bob, carol = _user(), _user(), _user()
    gid = _create(alice, bob, carol)["group_id"]

    removed = _change(alice, gid, "remove", members=[bob.user_id])

    assert removed.status == 200
    assert (removed.body["version"], removed.body["head"]) == (2, 2)
    assert bob.user_id not in removed.body["members"]
    assert _group(bob, gid).status == 404
    assert _as(bob, "GET", "/v1/groups").body == {"groups": []}
    again = _change(alice, gid, "remove", members=[bob.user_id])
    assert (again.status, again.code) == (404, "not_a_member")


def test_removing_oneself_or_promoting_or_dismissing_oneself_is_refused() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]

    for kind in ("remove", "promote", "dismiss"):
        answer = _change(alice, gid, kind, members=[alice.user_id])
        assert (answer.status, answer.code) == (400, "invalid_group_change")
        assert answer.body["error"]["field"] == "change.members"
    assert (
        "leave instead"
        in _change(alice, gid, "remove", members=[alice.user_id]).body["error"]["message"]
    )
    assert _group(alice, gid).body["rev"] == 1


def test_a_member_leaves_with_204_and_the_version_moves() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]

    left = _change(bob, gid, "leave")

    assert (left.status, left.body) == (204, None)
    after = _group(alice, gid).body
    assert after["members"] == [alice.user_id]
    assert (after["version"], after["head"]) == (2, 2)
    assert _group(bob, gid).status == 404


def test_when_the_last_admin_leaves_the_longest_standing_member_becomes_admin() -> None:
    alice, bob, carol, dave = _user(), _user(), _user(), _user()
    gid = _create(alice, carol, bob)["group_id"]  # bob and carol join together
    _change(alice, gid, "add", members=[dave.user_id])
    senior = min(bob.user_id, carol.user_id)  # same moment: ties go by user id

    left = _change(alice, gid, "leave")

    assert left.status == 204
    after = _group(dave, gid).body
    assert after["admins"] == [senior]
    assert (after["version"], after["head"]) == (3, 3)
    # the entry is the signed leave itself: the heir is the verifiers' rule too
    assert _verified(_entries(dave, gid))[-1]["kind"] == "leave"


def test_when_the_last_member_leaves_the_group_is_gone() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]

    assert _change(bob, gid, "leave").status == 204
    assert _change(alice, gid, "leave").status == 204

    assert _group(alice, gid).status == 404
    assert _as(alice, "GET", "/v1/groups").body == {"groups": []}


def test_admins_promote_and_dismiss_without_moving_the_version() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]

    promoted = _change(alice, gid, "promote", members=[bob.user_id])
    # the new admin may now dismiss the one who promoted them
    dismissed = _change(bob, gid, "dismiss", members=[alice.user_id])
    # a plain member dismissed again: nothing changes
    again = _change(bob, gid, "dismiss", members=[alice.user_id])

    assert promoted.status == 200
    assert promoted.body["admins"] == [alice.user_id, bob.user_id]
    assert (promoted.body["version"], promoted.body["head"]) == (1, 2)
    assert dismissed.body["admins"] == [bob.user_id]
    assert (dismissed.body["version"], dismissed.body["head"]) == (1, 3)
    assert again.body == dismissed.body
    listed = _as(alice, "GET", "/v1/groups").body["groups"]
    assert [g["role"] for g in listed] == ["member"]


def test_promoting_someone_outside_the_group_is_refused() -> None:
    alice, outsider = _user(), _user()
    gid = _create(alice)["group_id"]

    answer = _change(alice, gid, "promote", members=[outsider.user_id])

    assert (answer.status, answer.code) == (404, "not_a_member")


def test_a_vouch_names_the_membership_exactly_and_moves_the_version() -> None:
    alice, bob, carol = _user(), _user(), _user()
    group = _create(alice, bob, carol)
    gid = group["group_id"]
    members, admins = group["members"], group["admins"]

    for wrong_members, wrong_admins in (
        (list(reversed(members)), admins),  # not longest-standing first
        (members[:2], admins),  # someone missing
        (members, [*admins, members[1]]),  # an admin too many
    ):
        refused = _change(alice, gid, "vouch", members=wrong_members, admins=wrong_admins)
        assert (refused.status, refused.code) == (409, "group_changed")
        assert (refused.body["error"]["rev"], refused.body["error"]["head"]) == (1, 1)

    vouched = _vouch(alice, gid)

    assert vouched.status == 200, vouched.body
    assert {k: v for k, v in vouched.body.items() if k not in ("rev", "head", "version")} == {
        k: v for k, v in group.items() if k not in ("rev", "head", "version")
    }
    # members' devices read the group again: whom they trust changed
    assert (vouched.body["rev"], vouched.body["head"], vouched.body["version"]) == (2, 2, 2)
    assert _verified(_entries(carol, gid))[-1]["members"] == members


def test_each_kind_of_change_is_counted_by_its_own_metric(
    capsys: pytest.CaptureFixture[str],
) -> None:
    alice, bob, carol = _user(), _user(), _user()
    capsys.readouterr()
    gid = _create(alice, bob)["group_id"]
    _change(alice, gid, "add", members=[carol.user_id])
    _change(alice, gid, "promote", members=[bob.user_id])
    _change(alice, gid, "dismiss", members=[bob.user_id])
    _change(alice, gid, "remove", members=[carol.user_id])
    _vouch(alice, gid)
    _change(bob, gid, "leave")

    emitted = {
        name
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
        for metrics in json.loads(line)["_aws"]["CloudWatchMetrics"]
        for name in (m["Name"] for m in metrics["Metrics"])
    }
    assert {
        "GroupCreated",
        "GroupMembersAdded",
        "GroupAdminPromoted",
        "GroupAdminDismissed",
        "GroupMemberRemoved",
        "GroupVouched",
        "GroupLeft",
    } <= emitted


# -- the chain ------------------------------------------------------------------------------


def test_a_chain_of_changes_is_served_back_in_order_and_verifies() -> None:
    alice, bob, carol, dave = _user(), _user(), _user(), _user()
    gid = _create(alice, bob)["group_id"]
    _change(alice, gid, "add", members=sorted([carol.user_id, dave.user_id]))
    _change(alice, gid, "promote", members=[bob.user_id])
    _change(bob, gid, "remove", members=[carol.user_id])
    _change(dave, gid, "leave")
    _vouch(bob, gid)

    entries = _entries(bob, gid)
    after_three = _group(bob, gid, after=3).body

    changes = _verified(entries)
    assert [(c["seq"], c["kind"], c["author"]) for c in changes] == [
        (1, "create", alice.user_id),
        (2, "add", alice.user_id),
        (3, "promote", alice.user_id),
        (4, "remove", bob.user_id),
        (5, "leave", dave.user_id),
        (6, "vouch", bob.user_id),
    ]
    assert [e["seq"] for e in after_three["changes"]] == [4, 5, 6]
    assert (after_three["more"], after_three["head"], after_three["rev"]) == (False, 6, 6)
    assert after_three["members"] == [alice.user_id, bob.user_id]
    assert _group(bob, gid, after=6).body["changes"] == []


def test_a_long_chain_is_read_a_page_of_100_at_a_time() -> None:
    alice = _user()
    gid = _create(alice)["group_id"]
    for _ in range(101):
        assert _vouch(alice, gid).status == 200

    first = _group(alice, gid, after=0).body
    second = _group(alice, gid, after=100).body

    assert [e["seq"] for e in first["changes"]] == list(range(1, 101))
    assert first["more"] is True
    assert [e["seq"] for e in second["changes"]] == [101, 102]
    assert second["more"] is False
    assert len(_verified(first["changes"] + second["changes"])) == 102


def test_a_change_signed_for_an_older_state_is_409_with_rev_and_head_and_writes_nothing() -> None:
    alice, bob, carol = _user(), _user(), _user()
    gid = _create(alice, bob)["group_id"]
    stale = _signed(alice, gid, "add", members=[carol.user_id])
    assert _change(alice, gid, "promote", members=[bob.user_id]).status == 200
    before = _group(alice, gid).body
    chain = _entries(alice, gid)
    fresh = _signed(alice, gid, "add", members=[carol.user_id])
    wrong_prev = group_change(
        alice, "add", gid, seq=before["rev"] + 1, prev=b"\x01" * 32, members=[carol.user_id]
    )

    for body in (stale, wrong_prev):
        answer = _post(alice, gid, body)
        assert (answer.status, answer.code) == (409, "group_changed")
        assert (answer.body["error"]["rev"], answer.body["error"]["head"]) == (2, 2)

    assert _group(alice, gid).body == before
    assert _entries(alice, gid) == chain
    assert _post(alice, gid, fresh).status == 200  # signed anew, it goes


def test_of_two_changes_signed_for_the_same_seq_only_the_first_commits() -> None:
    alice, bob, carol, dave = _user(), _user(), _user(), _user()
    gid = _create(alice, bob)["group_id"]
    assert _change(alice, gid, "promote", members=[bob.user_id]).status == 200
    hers = _signed(alice, gid, "add", members=[carol.user_id])
    his = _signed(bob, gid, "add", members=[dave.user_id])

    first = _post(bob, gid, his)
    second = _post(alice, gid, hers)

    assert first.status == 200
    assert (second.status, second.code) == (409, "group_changed")
    assert _group(alice, gid).body["members"] == [alice.user_id, bob.user_id, dave.user_id]
    assert [c["author"] for c in _verified(_entries(alice, gid))][-1] == bob.user_id


def test_members_join_in_the_chains_order_even_when_the_clock_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob, carol, dave = _user(), _user(), _user(), _user()
    real = http_api._now
    gid = _create(alice)["group_id"]
    # the service's clock goes back an hour, then two
    monkeypatch.setattr(http_api, "_now", lambda: real() - 3600)
    _change(alice, gid, "add", members=[max(bob.user_id, carol.user_id)])
    monkeypatch.setattr(http_api, "_now", lambda: real() - 7200)
    _change(alice, gid, "add", members=[min(bob.user_id, carol.user_id)])
    _change(alice, gid, "add", members=[dave.user_id])

    members = _group(alice, gid).body["members"]

    assert members == [
        alice.user_id,
        max(bob.user_id, carol.user_id),
        min(bob.user_id, carol.user_id),
        dave.user_id,
    ]


def test_a_group_made_before_chains_starts_its_chain_with_a_vouch(aws: FakeAws) -> None:
    alice, bob, carol = _user(), _user(), _user()
    gid = uuid.uuid4().hex
    GroupsStore(aws.client("dynamodb"), aws.settings[Setting.GROUPS_TABLE]).create(
        Group(
            group_id=gid,
            name="Old",
            created_by=alice.user_id,
            created_ms=1_700_000_000_000,
            version=4,
            rev=6,
            members=(
                Member(alice.user_id, ADMIN, 1_700_000_000_000, alice.user_id),
                Member(bob.user_id, MEMBER, 1_700_000_000_001, alice.user_id),
            ),
        )
    )

    old = _group(bob, gid, after=0).body
    added = _change(alice, gid, "add", members=[carol.user_id])
    vouched = _vouch(alice, gid)
    left = _change(bob, gid, "leave")

    assert (old["rev"], old["head"], old["changes"], old["more"]) == (6, 0, [], False)
    assert (added.status, added.body["rev"], added.body["head"]) == (200, 7, 0)
    assert (vouched.status, vouched.body["rev"], vouched.body["head"]) == (200, 8, 8)
    assert left.status == 204
    chain = _verified(_entries(alice, gid))
    assert [(c["seq"], c["kind"]) for c in chain] == [(8, "vouch"), (9, "leave")]
    assert chain[0]["members"] == [alice.user_id, bob.user_id, carol.user_id]
