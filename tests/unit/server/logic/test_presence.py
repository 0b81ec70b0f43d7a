"""Last seen visibility and contact discovery (moto in-process)."""

from __future__ import annotations

import pytest

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import contacts, directory, presence
from parley_server.logic.ports import Caller
from parley_server.models.errors import BadRequest, InvalidPhone, NotFound, RateLimited
from tests.unit.conftest import Ports

ALICE = Caller("a" * 32, "1" * 16)
BOB = Caller("b" * 32, "2" * 16)
CAROL = Caller("c" * 32, "3" * 16)
NOW = 1_700_000_000.0


@pytest.fixture
def ports(ports: Ports) -> Ports:
    """Alice, Bob and Carol; Bob was last seen a minute ago and saved Alice as a contact."""
    store = ports.users
    for p, phone in ((ALICE, "+14155552671"), (BOB, "+12025550123"), (CAROL, "+447911123456")):
        store.create_user(p.user_id, phone, now=NOW)
    store.record_last_seen(BOB.user_id, NOW - 60)
    ports.call(contacts.save, BOB, ALICE.user_id, now=NOW, limits=Limits())
    return ports


def seen(ports: Ports, viewer: Caller, target: Caller) -> float | None:
    return ports.call(presence.last_seen, viewer, target.user_id)


def test_by_default_contacts_see_last_seen_and_strangers_do_not(ports: Ports) -> None:
    assert seen(ports, ALICE, BOB) == NOW - 60
    assert seen(ports, CAROL, BOB) is None


def test_contacts_are_whom_the_user_saved_and_only_while_saved(ports: Ports) -> None:
    # Alice saved nobody: Bob is not her contact, whatever he saved
    ports.call(presence.set_visibility, ALICE, "contacts")
    ports.users.record_last_seen(ALICE.user_id, NOW - 5)
    assert seen(ports, BOB, ALICE) is None
    ports.call(contacts.save, ALICE, BOB.user_id, now=NOW, limits=Limits())
    assert seen(ports, BOB, ALICE) == NOW - 5
    assert ports.call(contacts.list_saved, ALICE) == [BOB.user_id]
    ports.call(contacts.remove, ALICE, BOB.user_id, now=NOW, limits=Limits())
    assert seen(ports, BOB, ALICE) is None
    assert ports.call(contacts.list_saved, ALICE) == []


def test_a_record_a_key_fetch_once_wrote_counts_for_nothing(ports: Ports) -> None:
    # what a bundle claim wrote before contacts were the user's say: no `saved`
    ports.ddb.put_item(
        TableName=ports.table(Setting.USERS_TABLE),
        Item={"pk": {"S": f"USER#{BOB.user_id}"}, "sk": {"S": f"CONTACT#{CAROL.user_id}"}},
    )
    assert seen(ports, CAROL, BOB) is None
    assert ports.call(contacts.list_saved, BOB) == [ALICE.user_id]


def test_saving_a_contact_refuses_oneself_unknown_users_and_bad_ids(ports: Ports) -> None:
    with pytest.raises(BadRequest):
        ports.call(contacts.save, ALICE, ALICE.user_id, now=NOW, limits=Limits())
    with pytest.raises(NotFound) as unknown:
        ports.call(contacts.save, ALICE, "d" * 32, now=NOW, limits=Limits())
    assert unknown.value.code == "unknown_user"
    with pytest.raises(BadRequest):
        ports.call(contacts.save, ALICE, "not-a-user", now=NOW, limits=Limits())
    assert ports.call(contacts.list_saved, ALICE) == []


def test_everybody_and_nobody_settings_are_respected(ports: Ports) -> None:
    ports.call(presence.set_visibility, BOB, "everybody")
    assert seen(ports, CAROL, BOB) == NOW - 60
    ports.call(presence.set_visibility, BOB, "nobody")
    assert seen(ports, ALICE, BOB) is None
    # one's own last seen is always visible to oneself
    assert seen(ports, BOB, BOB) == NOW - 60


def test_who_hides_their_last_seen_cannot_see_others(ports: Ports) -> None:
    ports.call(presence.set_visibility, BOB, "everybody")
    ports.call(presence.set_visibility, ALICE, "nobody")
    assert seen(ports, ALICE, BOB) is None
    ports.call(presence.set_visibility, ALICE, "contacts")
    assert seen(ports, ALICE, BOB) == NOW - 60


def test_never_seen_is_none_and_unknown_users_are_not_found(ports: Ports) -> None:
    assert seen(ports, BOB, ALICE) is None
    with pytest.raises(NotFound):
        ports.call(presence.last_seen, ALICE, "d" * 32)
    with pytest.raises(BadRequest):
        ports.call(presence.last_seen, ALICE, "../etc")


def test_an_unknown_setting_is_refused_and_changes_nothing(ports: Ports) -> None:
    with pytest.raises(BadRequest):
        ports.call(presence.set_visibility, BOB, "friends")
    assert seen(ports, ALICE, BOB) == NOW - 60
    assert seen(ports, CAROL, BOB) is None


def test_lookup_by_phone_normalises_the_number(ports: Ports) -> None:
    def find(phone: str) -> str:
        return ports.call(directory.find_user, ALICE, phone, limits=Limits(), now=NOW)

    assert find("+1 202-555-0123") == BOB.user_id
    with pytest.raises(NotFound):
        find("+1 202-555-0199")
    with pytest.raises(InvalidPhone):
        find("202-555-0123")


def test_lookups_are_rate_limited_per_caller(ports: Ports) -> None:
    limits = Limits(phone_lookups_per_hour=3)
    start = 3600 * 500_000.0
    for _ in range(3):
        ports.call(directory.find_user, ALICE, "+12025550123", limits=limits, now=start)
    with pytest.raises(RateLimited):
        ports.call(directory.find_user, ALICE, "+12025550123", limits=limits, now=start + 1)
    assert ports.call(directory.find_user, BOB, "+14155552671", limits=limits, now=start + 1)
