"""The group routes through the HttpApi handler, with its exact environment and real
tokens (moto in-process): create, read, list, add, remove, leave, admins."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from parley_server.catalogue import HTTP_ROUTES
from parley_server.config import reset_config
from tests.integration.test_http_harness import Answer, Device, call, sign_up

_PHONES = (f"+1415555{n:04d}" for n in itertools.count(2000))
_IPS = (f"198.51.100.{n}" for n in itertools.count(1))


pytestmark = pytest.mark.usefixtures("http_env")


def _user() -> Device:
    return sign_up(next(_PHONES), source_ip=next(_IPS))


def _as(device: Device, method: str, path: str, body: Any = None) -> Answer:
    return call(method, path, body=body, token=device.access_token)


def _create(owner: Device, *members: Device, name: str = "Climbing") -> dict[str, Any]:
    answer = _as(
        owner, "POST", "/v1/groups", {"name": name, "members": [m.user_id for m in members]}
    )
    assert answer.status == 201, answer.body
    return dict(answer.body)


def _group(device: Device, group_id: str) -> Answer:
    return _as(device, "GET", f"/v1/groups/{group_id}")


def test_every_group_route_is_in_the_catalogue() -> None:
    assert {
        "POST /v1/groups",
        "GET /v1/groups",
        "GET /v1/groups/{group_id}",
        "POST /v1/groups/{group_id}/members",
        "DELETE /v1/groups/{group_id}/members/{user_id}",
        "POST /v1/groups/{group_id}/admins",
        "DELETE /v1/groups/{group_id}/admins/{user_id}",
    } <= set(HTTP_ROUTES)


def test_the_creator_is_admin_and_every_member_can_read_the_group() -> None:
    alice, bob, carol = _user(), _user(), _user()

    group = _create(alice, bob, carol, name="  Climbing  ")

    assert len(group["group_id"]) == 32
    assert group["name"] == "Climbing"
    assert group["version"] == 1
    assert group["members"][0] == alice.user_id
    assert set(group["members"]) == {alice.user_id, bob.user_id, carol.user_id}
    assert group["admins"] == [alice.user_id]
    assert group["created_by"] == alice.user_id
    read = _group(bob, group["group_id"])
    assert read.status == 200
    assert read.body == group
    assert read.headers["cache-control"] == "no-store"


def test_a_non_member_gets_not_found_exactly_as_for_an_unknown_group() -> None:
    alice, mallory = _user(), _user()
    group = _create(alice)

    theirs = _group(mallory, group["group_id"])
    unknown = _group(mallory, "f" * 32)

    assert (theirs.status, theirs.code) == (404, "not_found")
    assert (unknown.status, unknown.code) == (404, "not_found")
    assert theirs.body["error"]["message"] == unknown.body["error"]["message"]


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

    answer = _as(alice, "POST", "/v1/groups", {"name": "x", "members": [bob.user_id, stranger]})

    assert (answer.status, answer.code) == (404, "unknown_users")
    assert answer.body["error"]["user_ids"] == [stranger]
    assert _as(alice, "GET", "/v1/groups").body == {"groups": []}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"members": []}, "`name` is required"),
        ({"name": "   "}, "`name` must not be empty"),
        ({"name": "x" * 101}, "at most 100"),
        ({"name": "a\nb"}, "control characters"),
        ({"name": 7}, "`name` must be a string"),
        ({"name": "x", "members": "b" * 32}, "`members` must be a list"),
        ({"name": "x", "members": ["B" * 32]}, "`members` must be a user id"),
        ({"name": "x", "admins": []}, "unknown field"),
        (["name"], "JSON object"),
    ],
)
def test_a_malformed_create_is_a_400_naming_the_problem(body: Any, problem: str) -> None:
    alice = _user()

    answer = _as(alice, "POST", "/v1/groups", body)

    assert (answer.status, answer.code) == (400, "invalid_request")
    assert problem in answer.body["error"]["message"]


def test_too_many_ids_in_one_request_is_a_413() -> None:
    alice = _user()

    answer = _as(alice, "POST", "/v1/groups", {"name": "x", "members": ["a" * 32] * 99})

    assert (answer.status, answer.code) == (413, "payload_too_large")
    assert answer.body["error"]["limit"] == 98


def test_group_routes_need_a_token() -> None:
    answer = call("GET", "/v1/groups")
    assert (answer.status, answer.code) == (401, "unauthorized")


def test_a_malformed_group_id_is_a_400() -> None:
    answer = _group(_user(), "not-a-group")
    assert (answer.status, answer.code) == (400, "invalid_request")


def test_an_admin_adds_members_and_the_version_moves() -> None:
    alice, bob, carol, dave = _user(), _user(), _user(), _user()
    group = _create(alice, bob)
    gid = group["group_id"]

    added = _as(alice, "POST", f"/v1/groups/{gid}/members", {"user_ids": [carol.user_id]})
    again = _as(
        alice, "POST", f"/v1/groups/{gid}/members", {"user_ids": [carol.user_id, dave.user_id]}
    )
    same = _as(alice, "POST", f"/v1/groups/{gid}/members", {"user_ids": [bob.user_id]})

    assert added.status == 200
    assert added.body["version"] == 2
    assert added.body["members"] == [alice.user_id, bob.user_id, carol.user_id]
    assert again.body["version"] == 3
    assert again.body["members"][-1] == dave.user_id
    assert same.body["version"] == 3  # already a member: nothing changed
    assert _group(carol, gid).status == 200


def test_a_member_who_is_not_admin_cannot_change_the_group() -> None:
    alice, bob, carol = _user(), _user(), _user()
    gid = _create(alice, bob, carol)["group_id"]

    add = _as(bob, "POST", f"/v1/groups/{gid}/members", {"user_ids": [_user().user_id]})
    remove = _as(bob, "DELETE", f"/v1/groups/{gid}/members/{carol.user_id}")
    promote = _as(bob, "POST", f"/v1/groups/{gid}/admins", {"user_id": bob.user_id})
    dismiss = _as(bob, "DELETE", f"/v1/groups/{gid}/admins/{alice.user_id}")

    for answer in (add, remove, promote, dismiss):
        assert (answer.status, answer.code) == (403, "not_admin")
    after = _group(alice, gid).body
    assert after["version"] == 1
    assert len(after["members"]) == 3
    assert after["admins"] == [alice.user_id]


def test_adding_beyond_the_member_limit_is_refused_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARLEY_LIMITS", '{"group_max_members": 3}')
    reset_config()
    alice, bob, carol, dave = _user(), _user(), _user(), _user()
    gid = _create(alice, bob)["group_id"]

    answer = _as(
        alice, "POST", f"/v1/groups/{gid}/members", {"user_ids": [carol.user_id, dave.user_id]}
    )
    too_big = _as(
        alice,
        "POST",
        "/v1/groups",
        {"name": "x", "members": [bob.user_id, carol.user_id, dave.user_id]},
    )

    assert (answer.status, answer.code) == (409, "group_full")
    assert answer.body["error"]["limit"] == 3
    assert (too_big.status, too_big.code) == (409, "group_full")
    after = _group(alice, gid).body
    assert (after["version"], len(after["members"])) == (1, 2)
    assert _group(carol, gid).status == 404


def test_adding_an_unknown_user_is_refused_and_changes_nothing() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice)["group_id"]

    answer = _as(alice, "POST", f"/v1/groups/{gid}/members", {"user_ids": [bob.user_id, "9" * 32]})

    assert (answer.status, answer.code) == (404, "unknown_users")
    assert _group(alice, gid).body["members"] == [alice.user_id]


def test_a_removed_member_can_no_longer_read_the_group() -> None:
    alice, bob, carol = _user(), _user(), _user()
    gid = _create(alice, bob, carol)["group_id"]

    removed = _as(alice, "DELETE", f"/v1/groups/{gid}/members/{bob.user_id}")

    assert removed.status == 200
    assert removed.body["version"] == 2
    assert bob.user_id not in removed.body["members"]
    assert _group(bob, gid).status == 404
    assert _as(bob, "GET", "/v1/groups").body == {"groups": []}
    again = _as(alice, "DELETE", f"/v1/groups/{gid}/members/{bob.user_id}")
    assert (again.status, again.code) == (404, "not_a_member")


def test_a_member_leaves_with_204_and_the_version_moves() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]

    left = _as(bob, "DELETE", f"/v1/groups/{gid}/members/{bob.user_id}")

    assert (left.status, left.body) == (204, None)
    after = _group(alice, gid).body
    assert after["members"] == [alice.user_id]
    assert after["version"] == 2


def test_when_the_last_admin_leaves_the_longest_standing_member_becomes_admin() -> None:
    alice, bob, carol, dave = _user(), _user(), _user(), _user()
    gid = _create(alice, carol, bob)["group_id"]  # bob and carol join together
    _as(alice, "POST", f"/v1/groups/{gid}/members", {"user_ids": [dave.user_id]})
    senior = min(bob.user_id, carol.user_id)  # same moment: ties go by user id

    left = _as(alice, "DELETE", f"/v1/groups/{gid}/members/{alice.user_id}")

    assert left.status == 204
    after = _group(dave, gid).body
    assert after["admins"] == [senior]
    assert after["version"] == 3


def test_when_the_last_member_leaves_the_group_is_gone() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]

    assert _as(bob, "DELETE", f"/v1/groups/{gid}/members/{bob.user_id}").status == 204
    assert _as(alice, "DELETE", f"/v1/groups/{gid}/members/{alice.user_id}").status == 204

    assert _group(alice, gid).status == 404
    assert _as(alice, "GET", "/v1/groups").body == {"groups": []}


def test_admins_promote_and_dismiss_without_moving_the_version() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]

    promoted = _as(alice, "POST", f"/v1/groups/{gid}/admins", {"user_id": bob.user_id})
    # the new admin may now dismiss the one who promoted them
    dismissed = _as(bob, "DELETE", f"/v1/groups/{gid}/admins/{alice.user_id}")

    assert promoted.status == 200
    assert promoted.body["admins"] == [alice.user_id, bob.user_id]
    assert promoted.body["version"] == 1
    assert dismissed.body["admins"] == [bob.user_id]
    assert dismissed.body["version"] == 1
    listed = _as(alice, "GET", "/v1/groups").body["groups"]
    assert [g["role"] for g in listed] == ["member"]


def test_dismissing_the_last_admin_is_refused() -> None:
    alice, bob = _user(), _user()
    gid = _create(alice, bob)["group_id"]

    answer = _as(alice, "DELETE", f"/v1/groups/{gid}/admins/{alice.user_id}")

    assert (answer.status, answer.code) == (409, "last_admin")
    assert _group(alice, gid).body["admins"] == [alice.user_id]


def test_promoting_someone_outside_the_group_is_refused() -> None:
    alice, outsider = _user(), _user()
    gid = _create(alice)["group_id"]

    answer = _as(alice, "POST", f"/v1/groups/{gid}/admins", {"user_id": outsider.user_id})

    assert (answer.status, answer.code) == (404, "not_a_member")
