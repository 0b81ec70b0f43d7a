"""Last seen visibility and contact discovery (moto in-process)."""

from __future__ import annotations

import pytest

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import directory, presence
from parley_server.logic.ports import Caller
from parley_server.models.errors import BadRequest, InvalidPhone, NotFound, RateLimited
from parley_server.store.ratelimits import RateLimiter
from parley_server.store.users import UsersStore
from tests.conftest import FakeAws

ALICE = Caller("a" * 32, "1" * 16)
BOB = Caller("b" * 32, "2" * 16)
CAROL = Caller("c" * 32, "3" * 16)
NOW = 1_700_000_000.0


@pytest.fixture
def users(aws: FakeAws) -> UsersStore:
    store = UsersStore(aws.client("dynamodb"), aws.settings[Setting.USERS_TABLE])
    for p, phone in ((ALICE, "+14155552671"), (BOB, "+12025550123"), (CAROL, "+447911123456")):
        store.create_user(p.user_id, phone, now=NOW)
    store.record_last_seen(BOB.user_id, NOW - 60)
    store.add_contacts(ALICE.user_id, BOB.user_id, now=NOW)
    return store


def seen(users: UsersStore, viewer: Caller, target: Caller) -> float | None:
    return presence.last_seen(viewer, target.user_id, users=users)


def test_by_default_contacts_see_last_seen_and_strangers_do_not(users: UsersStore) -> None:
    assert seen(users, ALICE, BOB) == NOW - 60
    assert seen(users, CAROL, BOB) is None


def test_everybody_and_nobody_settings_are_respected(users: UsersStore) -> None:
    presence.set_visibility(BOB, "everybody", users=users)
    assert seen(users, CAROL, BOB) == NOW - 60
    presence.set_visibility(BOB, "nobody", users=users)
    assert seen(users, ALICE, BOB) is None
    # one's own last seen is always visible to oneself
    assert seen(users, BOB, BOB) == NOW - 60


def test_who_hides_their_last_seen_cannot_see_others(users: UsersStore) -> None:
    presence.set_visibility(BOB, "everybody", users=users)
    presence.set_visibility(ALICE, "nobody", users=users)
    assert seen(users, ALICE, BOB) is None
    presence.set_visibility(ALICE, "contacts", users=users)
    assert seen(users, ALICE, BOB) == NOW - 60


def test_never_seen_is_none_and_unknown_users_are_not_found(users: UsersStore) -> None:
    assert seen(users, BOB, ALICE) is None
    with pytest.raises(NotFound):
        presence.last_seen(ALICE, "d" * 32, users=users)
    with pytest.raises(BadRequest):
        presence.last_seen(ALICE, "../etc", users=users)


def test_an_unknown_setting_is_refused_and_changes_nothing(users: UsersStore) -> None:
    with pytest.raises(BadRequest):
        presence.set_visibility(BOB, "friends", users=users)
    assert seen(users, ALICE, BOB) == NOW - 60
    assert seen(users, CAROL, BOB) is None


def test_lookup_by_phone_normalises_the_number(aws: FakeAws, users: UsersStore) -> None:
    limiter = RateLimiter(aws.client("dynamodb"), aws.settings[Setting.RATELIMITS_TABLE])

    def find(phone: str) -> str:
        return directory.find_user(
            ALICE, phone, users=users, limiter=limiter, limits=Limits(), now=NOW
        )

    assert find("+1 202-555-0123") == BOB.user_id
    with pytest.raises(NotFound):
        find("+1 202-555-0199")
    with pytest.raises(InvalidPhone):
        find("202-555-0123")


def test_lookups_are_rate_limited_per_caller(aws: FakeAws, users: UsersStore) -> None:
    limits = Limits(phone_lookups_per_hour=3)
    limiter = RateLimiter(aws.client("dynamodb"), aws.settings[Setting.RATELIMITS_TABLE])
    start = 3600 * 500_000.0
    for _ in range(3):
        directory.find_user(
            ALICE, "+12025550123", users=users, limiter=limiter, limits=limits, now=start
        )
    with pytest.raises(RateLimited):
        directory.find_user(
            ALICE, "+12025550123", users=users, limiter=limiter, limits=limits, now=start + 1
        )
    assert directory.find_user(
        BOB, "+14155552671", users=users, limiter=limiter, limits=limits, now=start + 1
    )
