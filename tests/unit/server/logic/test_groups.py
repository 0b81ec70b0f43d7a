"""Group membership rules, signed changes and their race-safety, against the real
store in moto. Every change is signed by a device's Ed25519 key that the account's
stored device list gives (tests/device_lists.py installs it).

Races are staged deterministically: a store that lets a competing change commit
between a change's read and its write, exactly where a concurrent request could.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from msgspec.structs import replace
from nacl.signing import SigningKey

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import groups
from parley_server.logic.group_changes import PREFIX, change_hash
from parley_server.logic.groups import UsersPort
from parley_server.models.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    GroupChanged,
    NotFound,
    PayloadTooLarge,
)
from parley_server.models.groups import (
    ADMIN,
    MEMBER,
    ChainEntry,
    FanoutJob,
    Group,
    GroupChange,
    Member,
)
from parley_server.store.groups import CHANGES_PAGE, GroupsStore
from parley_server.store.users import KnownUsers
from tests.conftest import FakeAws
from tests.device_lists import device_key, list_devices
from tests.group_changes import Signer
from tests.unit.conftest import Ports

A, B, C, D, E = ("a" * 32, "b" * 32, "c" * 32, "d" * 32, "e" * 32)
GID = "1" * 32
NOW = 1_800_000_000.0


class Everyone:
    """Every user id is a registered user."""

    def existing(self, user_ids: Any) -> set[str]:
        return set(user_ids)


class Racing(GroupsStore):
    """Runs `meanwhile` once, just before the first commit: a concurrent change."""

    def __init__(self, ddb: Any, table: str, meanwhile: Callable[[], object]) -> None:
        super().__init__(ddb, table)
        self.meanwhile: Callable[[], object] | None = meanwhile
        self.commits = 0

    def commit(self, change: GroupChange) -> None:
        self.commits += 1
        if self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()
        super().commit(change)


class Jammed(GroupsStore):
    """Its first `times` commits fail as a transaction conflict would: the group
    itself does not move."""

    def __init__(self, ddb: Any, table: str, times: int) -> None:
        super().__init__(ddb, table)
        self.times = times
        self.commits = 0

    def commit(self, change: GroupChange) -> None:
        self.commits += 1
        if self.commits <= self.times:
            raise GroupChanged("the transaction conflicted with another")
        super().commit(change)


class World(Ports):
    """The groups table in moto, where every user id is a registered user and every
    member's device is on its account's device list."""

    @property
    def known_users(self) -> UsersPort:
        return Everyone()

    def racing(self, meanwhile: Callable[[], object]) -> Racing:
        return Racing(self.ddb, self.table(Setting.GROUPS_TABLE), meanwhile)

    def jammed(self, times: int) -> Jammed:
        return Jammed(self.ddb, self.table(Setting.GROUPS_TABLE), times)

    def signer(self, user_id: str, *devices: str) -> Signer:
        """The first of `devices` (the account's primary) of `user_id`, listed."""
        listed = list(devices) or [user_id[:16]]
        list_devices(self.users, user_id, listed)
        return Signer(user_id, listed[0], device_key(user_id, listed[0]))

    def group(self, group_id: str = GID) -> Group:
        found = self.groups.load(group_id)
        assert found is not None
        return found

    def entries(self, group_id: str = GID) -> list[ChainEntry]:
        return list(self.groups.changes(group_id, 0, self.group(group_id).head).entries)


@pytest.fixture
def ports(aws: FakeAws) -> World:
    return World(aws)


@pytest.fixture
def a(ports: World) -> Signer:
    return ports.signer(A)


@pytest.fixture
def b(ports: World) -> Signer:
    return ports.signer(B)


def _create(
    ports: World, a: Signer, *members: str, limits: Limits | None = None, now: float = NOW
) -> Group:
    return ports.call(
        groups.create_group,
        a.caller,
        a.create(GID, "Climbing", members),
        now=now,
        limits=limits or Limits(),
    )


def _change(ports: World, signer: Signer, kind: str, now: float = NOW, **fields: Any) -> Any:
    """`signer`'s change of `kind`, signed for the group as it is, applied."""
    change = signer.next(kind, ports.group(), **fields)
    return ports.call(groups.apply_change, signer.caller, GID, change, now=now, limits=Limits())


def _apply(ports: World, signer: Signer, change: Any, **given: Any) -> Any:
    return ports.call(
        groups.apply_change, signer.caller, GID, change, now=NOW, limits=Limits(), **given
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _legacy(ports: World, *members: str) -> None:
    """A group made before chains: no head, no entries (A its admin, then `members`)."""
    ports.groups.create(
        Group(
            group_id=GID,
            name="Old",
            created_by=A,
            created_ms=1_700_000_000_000,
            version=1,
            rev=1,
            members=(
                Member(A, ADMIN, 1_700_000_000_000, A),
                *(Member(uid, MEMBER, 1_700_000_000_001, A) for uid in members),
            ),
        )
    )


# -- creating -------------------------------------------------------------------------------


def test_a_signed_create_makes_the_group_and_the_first_entry_of_its_chain(
    ports: World, a: Signer
) -> None:
    change = a.create(GID, "  Climbing  ", [C, B])

    group = ports.call(groups.create_group, a.caller, change, now=NOW, limits=Limits())

    assert group == ports.group()
    assert (group.group_id, group.name, group.rev, group.version) == (GID, "Climbing", 1, 1)
    assert group.member_ids == [A, B, C]
    assert group.admin_ids == [A]
    assert [m.joined_ms for m in group.members] == [1_800_000_000_000, *[1_800_000_000_001] * 2]
    assert (group.head, group.head_hash) == (1, change_hash(change.body))
    [entry] = ports.entries()
    listed = ports.users.device_list(A)
    assert entry == ChainEntry(1, change.body, change.signature, listed.body, listed.signature)


def test_a_create_with_an_id_in_use_is_refused_and_changes_nothing(
    ports: World, a: Signer, b: Signer
) -> None:
    _create(ports, a, B)

    with pytest.raises(Conflict) as refused:
        ports.call(
            groups.create_group, b.caller, b.create(GID, "Mine", [C]), now=NOW, limits=Limits()
        )

    assert refused.value.code == "group_exists"
    assert ports.group().member_ids == [A, B]
    assert len(ports.entries()) == 1


def test_a_create_beyond_the_member_limit_is_refused(ports: World, a: Signer) -> None:
    with pytest.raises(Conflict) as refused:
        _create(ports, a, B, C, limits=Limits(group_max_members=2))

    assert refused.value.code == "group_full"
    assert ports.groups.load(GID) is None


def test_a_create_naming_unregistered_users_is_refused(ports: World, a: Signer) -> None:
    with pytest.raises(NotFound) as refused:
        ports.call(
            groups.create_group,
            a.caller,
            a.create(GID, "x", [B]),
            now=NOW,
            limits=Limits(),
            users=KnownUsers(ports.ddb, ports.table(Setting.USERS_TABLE)),
        )

    assert refused.value.code == "unknown_users"
    assert ports.groups.load(GID) is None


# -- who signed it --------------------------------------------------------------------------


def test_a_change_must_be_the_callers_own(ports: World, a: Signer, b: Signer) -> None:
    group = _create(ports, a, B)
    add = a.next("add", group, members=[C])
    as_bob = b.caller

    with pytest.raises(BadRequest) as author:
        ports.call(groups.add_members, as_bob, GID, add, now=NOW, limits=Limits())
    other_device = Signer(A, "f" * 16, a.key).next("add", group, members=[C])
    with pytest.raises(BadRequest) as device:
        ports.call(groups.add_members, a.caller, GID, other_device, now=NOW, limits=Limits())

    assert (author.value.code, author.value.details["field"]) == (
        "invalid_group_change",
        "change.author",
    )
    assert device.value.details["field"] == "change.device"
    assert ports.group().rev == 1


def test_a_change_signed_by_another_key_or_another_device_of_the_account_is_refused(
    ports: World,
) -> None:
    phone = ports.signer(A, "a" * 16, "f" * 16)  # the primary and a laptop
    laptop_key = device_key(A, "f" * 16)
    group = _create(ports, phone, B)
    forged = Signer(A, phone.device_id, SigningKey.generate()).next("add", group, members=[C])
    # the laptop's signature, sent as the phone's change by the phone
    laptops = Signer(A, phone.device_id, laptop_key).next("add", group, members=[C])

    for change in (forged, laptops):
        with pytest.raises(BadRequest) as refused:
            ports.call(groups.add_members, phone.caller, GID, change, now=NOW, limits=Limits())
        assert refused.value.code == "invalid_signature"
    # the laptop's own change, sent by the laptop, is fine
    laptop = Signer(A, "f" * 16, laptop_key)
    done = ports.call(
        groups.add_members, laptop.caller, GID, laptop.next("add", group, members=[C]),
        now=NOW, limits=Limits(),
    )  # fmt: skip
    assert done.member_ids == [A, B, C]


def test_a_device_off_the_list_or_an_account_without_one_cannot_change_groups(
    ports: World, a: Signer
) -> None:
    group = _create(ports, a, B)
    unlisted = Signer(A, "e" * 16, SigningKey.generate())
    listless = Signer(D, "d" * 16, SigningKey.generate())

    with pytest.raises(Conflict) as off_list:
        ports.call(
            groups.add_members, unlisted.caller, GID, unlisted.next("add", group, members=[C]),
            now=NOW, limits=Limits(),
        )  # fmt: skip
    with pytest.raises(Conflict) as no_list:
        ports.call(
            groups.create_group, listless.caller, listless.create("2" * 32, "x"),
            now=NOW, limits=Limits(),
        )  # fmt: skip

    assert off_list.value.code == no_list.value.code == "no_device_list"
    assert ports.group().rev == 1
    assert ports.groups.load("2" * 32) is None


def test_a_change_for_another_group_or_of_the_wrong_kind_is_refused(
    ports: World, a: Signer
) -> None:
    group = _create(ports, a, B)
    elsewhere = a.change("add", "2" * 32, seq=2, prev=group.head_hash, members=[C])

    with pytest.raises(BadRequest) as wrong_group:
        _apply(ports, a, elsewhere)
    with pytest.raises(BadRequest) as create_here:
        _apply(ports, a, a.create(GID, "again"))
    with pytest.raises(BadRequest) as add_as_remove:
        ports.call(groups.remove_member, a.caller, GID, a.next("add", group, members=[C]))

    assert wrong_group.value.details["field"] == "change.group_id"
    assert create_here.value.details["field"] == "change.kind"
    assert add_as_remove.value.details["field"] == "change.kind"


# -- following on ---------------------------------------------------------------------------


def test_a_change_signed_for_an_older_state_is_409_with_rev_and_head_and_writes_nothing(
    ports: World, a: Signer
) -> None:
    group = _create(ports, a, B)
    stale = a.next("add", group, members=[D])
    _change(ports, a, "add", members=[C])
    moved = ports.group()
    wrong_prev = a.change("add", GID, seq=moved.rev + 1, prev=group.head_hash, members=[D])
    no_prev = a.change("add", GID, seq=moved.rev + 1, prev=b"", members=[D])
    ahead = a.change("add", GID, seq=moved.rev + 2, prev=moved.head_hash, members=[D])

    for change in (stale, wrong_prev, no_prev, ahead):
        with pytest.raises(Conflict) as refused:
            _apply(ports, a, change)
        assert refused.value.code == "group_changed"
        assert not isinstance(refused.value, GroupChanged)  # not retried
        assert refused.value.details == {"rev": 2, "head": 2}

    assert ports.group() == moved
    assert [e.seq for e in ports.entries()] == [1, 2]


def test_of_two_changes_signed_for_the_same_seq_only_one_commits(
    ports: World, a: Signer, b: Signer
) -> None:
    group = _create(ports, a, B)
    _change(ports, a, "promote", members=[B])
    group = ports.group()
    hers = a.next("add", group, members=[C])
    his = b.next("add", group, members=[D])

    def bob_adds() -> None:
        _apply(ports, b, his)

    racing = ports.racing(bob_adds)

    with pytest.raises(Conflict) as refused:
        _apply(ports, a, hers, groups=racing)

    assert refused.value.code == "group_changed"
    assert refused.value.details == {"rev": 3, "head": 3}
    assert racing.commits == 1  # lost the race once: never recomputed
    after = ports.group()
    assert after.member_ids == [A, B, D]
    assert [e.body for e in ports.entries()][-1] == his.body


def test_a_commit_that_failed_while_the_group_stood_still_is_tried_again(
    ports: World, a: Signer
) -> None:
    group = _create(ports, a, B)
    jammed = ports.jammed(times=2)

    done = _apply(ports, a, a.next("add", group, members=[C]), groups=jammed)

    assert jammed.commits == 3
    assert done.member_ids == [A, B, C]
    assert ports.group().head == 2


def test_a_commit_that_keeps_failing_gives_up_with_409_and_changes_nothing(
    ports: World, a: Signer
) -> None:
    group = _create(ports, a, B)
    jammed = ports.jammed(times=10)

    with pytest.raises(Conflict) as refused:
        _apply(ports, a, a.next("remove", group, members=[B]), groups=jammed)

    assert jammed.commits == 4
    assert (refused.value.code, refused.value.details) == ("group_changed", {"rev": 1, "head": 1})
    assert ports.group() == group


def test_concurrent_adds_cannot_exceed_the_member_limit(ports: World, a: Signer) -> None:
    limits = Limits(group_max_members=3)
    group = _create(ports, a, B, limits=limits)
    # the store's own guard: a change computed from an old rev cannot commit
    stale = GroupChange(
        group_id=GID,
        rev=group.rev,
        version=group.version + 1,
        name=group.name,
        member_count=3,
        admin_count=1,
        added=(Member(D, MEMBER, 1, A),),
    )
    _change(ports, a, "add", members=[C])

    with pytest.raises(GroupChanged):
        ports.groups.commit(stale)

    full = ports.group()
    assert full.member_ids == [A, B, C]
    with pytest.raises(Conflict) as refused:
        ports.call(
            groups.add_members, a.caller, GID, a.next("add", full, members=[D]),
            now=NOW, limits=limits,
        )  # fmt: skip
    assert (refused.value.code, refused.value.details["limit"]) == ("group_full", 3)


# -- each kind ------------------------------------------------------------------------------


def test_each_kind_commits_its_effect_and_its_entry(ports: World, a: Signer, b: Signer) -> None:
    _create(ports, a, B)

    added = _change(ports, a, "add", members=[C, D])
    promoted = _change(ports, a, "promote", members=[B])
    dismissed = _change(ports, b, "dismiss", members=[A])
    removed = _change(ports, b, "remove", members=[C])
    vouched = _change(ports, b, "vouch", members=[A, B, D], admins=[B])
    left = _change(ports, a, "leave")

    assert (added.member_ids, added.version) == ([A, B, C, D], 2)
    assert (promoted.admin_ids, promoted.version) == ([A, B], 2)
    assert (dismissed.admin_ids, dismissed.version) == ([B], 2)
    assert (removed.member_ids, removed.version) == ([A, B, D], 3)
    # a vouch changes whom members' devices trust: the version moves, so they read it
    assert (vouched.member_ids, vouched.admin_ids, vouched.version) == ([A, B, D], [B], 4)
    assert left is None
    group = ports.group()
    assert (group.member_ids, group.version, group.rev, group.head) == ([B, D], 5, 7, 7)
    entries = ports.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6, 7]
    kinds = [json.loads(e.body)["kind"] for e in entries]
    assert kinds == ["create", "add", "promote", "dismiss", "remove", "vouch", "leave"]
    # each entry names the hash of the one before it
    for before, entry in itertools.pairwise(entries):
        assert json.loads(entry.body)["prev"] == _b64(change_hash(before.body))
    assert group.head_hash == change_hash(entries[-1].body)
    assert all(e.signature and e.cert_body and e.cert_signature for e in entries)


def test_the_certificate_is_the_authors_device_list_when_the_change_was_made(
    ports: World, a: Signer
) -> None:
    _create(ports, a, B)
    first = ports.users.device_list(A)
    list_devices(ports.users, A, [a.device_id, "f" * 16])  # a laptop is linked

    _change(ports, a, "add", members=[C])

    created, added = ports.entries()
    assert (created.cert_body, created.cert_signature) == (first.body, first.signature)
    assert added.cert_body == ports.users.device_list(A).body != first.body


def test_changes_that_change_nothing_commit_nothing_and_write_no_entry(
    ports: World, a: Signer
) -> None:
    group = _create(ports, a, B, C)

    assert _change(ports, a, "add", members=[B, C]) == group  # both in already
    assert _change(ports, a, "dismiss", members=[B]) == group  # no admin
    assert ports.group() == group
    _change(ports, a, "promote", members=[B])
    promoted = ports.group()

    assert _change(ports, a, "promote", members=[B]) == promoted
    assert ports.group() == promoted
    assert len(ports.entries()) == 2


def test_only_admins_change_a_group_but_anyone_may_leave(ports: World, a: Signer) -> None:
    c = ports.signer(C)
    _create(ports, a, B, C)

    for kind, fields in (
        ("add", {"members": [D]}),
        ("remove", {"members": [B]}),
        ("promote", {"members": [B]}),
        ("dismiss", {"members": [A]}),
        ("vouch", {"members": [A, B, C], "admins": [A]}),
    ):
        with pytest.raises(Forbidden) as refused:
            _change(ports, c, kind, **fields)
        assert refused.value.code == "not_admin"
    assert ports.group().rev == 1

    assert _change(ports, c, "leave") is None
    assert ports.group().member_ids == [A, B]


def test_changes_naming_someone_outside_the_group_are_refused(ports: World, a: Signer) -> None:
    _create(ports, a, B)

    for kind in ("remove", "promote", "dismiss"):
        with pytest.raises(NotFound) as refused:
            _change(ports, a, kind, members=[E])
        assert refused.value.code == "not_a_member"
    assert ports.group().rev == 1


def test_a_non_member_is_told_not_found_for_every_change_and_learns_no_rev(
    ports: World, a: Signer
) -> None:
    e = ports.signer(E)
    group = _create(ports, a, B)

    for change in (
        e.change("leave", GID, seq=9, prev=b""),
        e.next("add", group, members=[D]),
        e.next("vouch", group, members=[A, B], admins=[A]),
    ):
        with pytest.raises(NotFound) as refused:
            _apply(ports, e, change)
        assert (refused.value.code, refused.value.details) == ("not_found", {})
    with pytest.raises(NotFound):
        ports.call(groups.get_group, e.caller, GID)
    with pytest.raises(NotFound):
        ports.call(groups.group_changes, e.caller, GID, 0)


def test_a_vouch_must_name_the_members_and_admins_exactly_as_they_are(
    ports: World, a: Signer
) -> None:
    group = _create(ports, a, C, B)  # B and C join together: B first (ties by user id)

    for members, admins in (
        ([A, C, B], [A]),  # not longest-standing first
        ([A, B], [A]),  # someone missing
        ([A, B, C, D], [A]),  # someone extra
        ([A, B, C], [A, B]),  # B is no admin
    ):
        with pytest.raises(Conflict) as refused:
            _apply(ports, a, a.next("vouch", group, members=members, admins=admins))
        assert (refused.value.code, refused.value.details) == (
            "group_changed",
            {"rev": 1, "head": 1},
        )

    vouched = _apply(ports, a, a.vouch(group))

    assert (vouched.rev, vouched.head, vouched.version) == (2, 2, 2)
    assert vouched.members == group.members


# -- seniority ------------------------------------------------------------------------------


def test_members_added_by_one_change_join_after_everyone_even_when_the_clock_goes_back(
    ports: World, a: Signer
) -> None:
    _create(ports, a, B, now=NOW)  # A at NOW, B a millisecond later

    _change(ports, a, "add", now=NOW - 3600, members=[D, E])
    _change(ports, a, "add", now=NOW - 7200, members=[C])

    joined = {m.user_id: m.joined_ms for m in ports.group().members}
    start = int(NOW * 1000)
    assert joined == {A: start, B: start + 1, D: start + 2, E: start + 2, C: start + 3}
    assert ports.group().member_ids == [A, B, D, E, C]  # the chain's order


def test_members_added_later_join_at_the_time_of_the_change(ports: World, a: Signer) -> None:
    _create(ports, a, B)

    _change(ports, a, "add", now=NOW + 60, members=[C])

    assert ports.group().member(C) == Member(C, MEMBER, int((NOW + 60) * 1000), A)


# -- the last admin, the last member ----------------------------------------------------------


def test_when_the_last_admin_leaves_the_longest_standing_member_becomes_admin(
    ports: World, a: Signer
) -> None:
    _create(ports, a, C, B)
    _change(ports, a, "add", now=NOW + 1, members=[D])

    assert _change(ports, a, "leave") is None

    group = ports.group()
    assert (group.member_ids, group.admin_ids) == ([B, C, D], [B])
    assert json.loads(ports.entries()[-1].body)["kind"] == "leave"


def test_the_last_admin_leaving_while_the_heir_leaves_is_refused_and_signed_again(
    ports: World, a: Signer, b: Signer
) -> None:
    _create(ports, a, B)
    _change(ports, a, "add", now=NOW + 1, members=[C])
    group = ports.group()
    hers = a.next("leave", group)

    def heir_leaves() -> None:
        _change(ports, b, "leave")

    with pytest.raises(Conflict) as refused:
        _apply(ports, a, hers, groups=ports.racing(heir_leaves))
    assert refused.value.code == "group_changed"
    assert _change(ports, a, "leave") is None

    group = ports.group()
    assert (group.member_ids, group.admin_ids) == ([C], [C])


def test_the_last_member_leaving_deletes_the_group_and_its_chain(ports: World, a: Signer) -> None:
    _create(ports, a)
    _change(ports, a, "vouch", members=[A], admins=[A])

    assert _change(ports, a, "leave") is None

    assert ports.groups.load(GID) is None
    assert ports.groups.roster(GID) is None
    assert ports.groups.memberships(A) == []
    assert list(ports.groups.changes(GID, 0, 10).entries) == []
    # the id is free again
    _create(ports, a, B)
    assert ports.group().member_ids == [A, B]


# -- groups made before chains --------------------------------------------------------------


def test_a_group_without_a_chain_takes_changes_without_entries_until_a_vouch_starts_it(
    ports: World, a: Signer
) -> None:
    _legacy(ports, B)

    added = _change(ports, a, "add", members=[C])
    assert (added.rev, added.head, added.head_hash) == (2, 0, b"")
    assert ports.entries() == []
    with pytest.raises(Conflict) as refused:  # a prev where there is no chain yet
        _apply(ports, a, a.change("remove", GID, seq=3, prev=b"\x01" * 32, members=[B]))
    assert refused.value.details == {"rev": 2, "head": 0}

    vouched = _change(ports, a, "vouch", members=[A, B, C], admins=[A])
    removed = _change(ports, a, "remove", members=[B])

    assert (vouched.rev, vouched.head) == (3, 3)
    assert (removed.rev, removed.head, removed.member_ids) == (4, 4, [A, C])
    entries = ports.entries()
    assert [e.seq for e in entries] == [3, 4]
    assert json.loads(entries[0].body)["prev"] == ""
    assert json.loads(entries[1].body)["prev"] == _b64(change_hash(entries[0].body))
    assert ports.group().head_hash == change_hash(entries[1].body)


# -- reading the chain ----------------------------------------------------------------------


def test_the_chain_is_read_after_any_seq_a_page_at_a_time(ports: World, a: Signer) -> None:
    _create(ports, a, B)
    for _ in range(CHANGES_PAGE + 4):
        _change(ports, a, "vouch", members=[A, B], admins=[A])
    head = ports.group().head
    assert head == CHANGES_PAGE + 5

    _, first = ports.call(groups.group_changes, a.caller, GID, 0)
    _, rest = ports.call(groups.group_changes, a.caller, GID, first.entries[-1].seq)
    _, none = ports.call(groups.group_changes, a.caller, GID, head)
    _, far = ports.call(groups.group_changes, a.caller, GID, 10**12)

    assert [e.seq for e in first.entries] == list(range(1, CHANGES_PAGE + 1))
    assert first.more
    assert [e.seq for e in rest.entries] == list(range(CHANGES_PAGE + 1, head + 1))
    assert not rest.more
    assert (none.entries, none.more) == ((), False)
    assert (far.entries, far.more) == ((), False)
    # exactly a page left: no `more`
    _, last_page = ports.call(groups.group_changes, a.caller, GID, head - CHANGES_PAGE)
    assert (len(last_page.entries), last_page.more) == (CHANGES_PAGE, False)


def test_a_group_is_read_as_of_one_moment_even_when_a_change_commits_meanwhile(
    ports: World, a: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(ports, a, B)
    store = ports.groups
    query = store._query_partition
    raced: list[int] = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        if not raced:  # Alice's add commits between the reads of the group
            raced.append(1)
            _change(ports, a, "add", members=[C])
        return query(*args, **kwargs)

    monkeypatch.setattr(store, "_query_partition", racing)
    group = store.load(GID)

    assert group is not None
    # the members, version and head of one moment: C with the add that brought them
    assert (group.member_ids, group.version, group.head) == ([A, B, C], 2, 2)


def test_the_chain_served_ends_at_the_head_read_with_the_group(ports: World, a: Signer) -> None:
    _create(ports, a, B)
    before = ports.group()
    _change(ports, a, "promote", members=[B])  # committed after the group was read

    served = ports.groups.changes(GID, 0, before.head)

    assert [e.seq for e in served.entries] == [1]
    assert not served.more
    assert [e.seq for e in ports.groups.changes(GID, 0, ports.group().head).entries] == [1, 2]


def test_reading_a_group_or_its_roster_never_reads_its_chain(ports: World, a: Signer) -> None:
    _create(ports, a, B)
    _change(ports, a, "vouch", members=[A, B], admins=[A])

    roster = ports.groups.roster(GID)

    assert roster is not None
    assert sorted(roster.members) == [A, B]
    assert roster.version == 2


def test_a_transaction_holds_the_meta_the_chain_entry_and_98_member_items(
    ports: World,
) -> None:
    entry = ChainEntry(1, b"{}", b"")
    members = tuple(Member(f"{n:032x}", MEMBER, 1, A) for n in range(99))
    group = Group(GID, "x", A, 1, 1, 1, members, head=1, head_hash=b"\x00" * 32)

    with pytest.raises(PayloadTooLarge) as too_many:
        ports.groups.create(group, entry)
    ports.groups.create(replace(group, members=members[:98]), entry)

    assert too_many.value.details["limit"] == 98
    assert len(ports.group().members) == 98
    added = tuple(Member(f"{n:032x}", MEMBER, 2, A) for n in range(100, 199))
    change = GroupChange(GID, 1, 2, "x", 197, 0, added=added, entry=ChainEntry(2, b"{}", b""))
    with pytest.raises(PayloadTooLarge) as too_many:
        ports.groups.commit(change)
    assert too_many.value.details["limit"] == 98
    assert ports.group().rev == 1


# -- a deleted account ----------------------------------------------------------------------


def test_a_deleted_account_leaves_with_the_services_unsigned_entry(ports: World, a: Signer) -> None:
    _create(ports, a, B, C)

    groups.leave_deleted_account(A, GID, now=NOW + 5, groups=ports.groups)

    group = ports.group()
    assert (group.member_ids, group.admin_ids, group.version, group.rev) == ([B, C], [B], 2, 2)
    entry = ports.entries()[-1]
    assert (entry.seq, entry.signature, entry.cert_body, entry.cert_signature) == (
        2,
        b"",
        None,
        None,
    )
    assert json.loads(entry.body) == {
        "v": 1,
        "group_id": GID,
        "seq": 2,
        "prev": _b64(change_hash(ports.entries()[0].body)),
        "at": int((NOW + 5) * 1000),
        "author": A,
        "device": "",
        "kind": "leave",
        "name": "",
        "members": [],
        "admins": [],
    }
    assert group.head_hash == change_hash(entry.body)
    assert change_hash(entry.body) == hashlib.sha256(PREFIX + entry.body).digest()


def test_a_deleted_account_leaves_a_group_without_a_chain_without_an_entry(
    ports: World,
) -> None:
    _legacy(ports, B)

    groups.leave_deleted_account(A, GID, now=NOW, groups=ports.groups)

    group = ports.group()
    assert (group.member_ids, group.admin_ids, group.head) == ([B], [B], 0)
    assert ports.entries() == []


def test_a_deleted_accounts_leave_is_recomputed_when_it_loses_a_race(
    ports: World, a: Signer, b: Signer
) -> None:
    _create(ports, a, B, C)

    def bob_leaves() -> None:
        _change(ports, b, "leave")

    racing = ports.racing(bob_leaves)
    groups.leave_deleted_account(A, GID, now=NOW, groups=racing)

    assert racing.commits == 2
    group = ports.group()
    assert (group.member_ids, group.admin_ids, group.head) == ([C], [C], 3)
    assert [json.loads(e.body)["author"] for e in ports.entries()] == [A, B, A]


def test_a_deleted_account_that_is_no_member_is_not_found(ports: World, a: Signer) -> None:
    _create(ports, a, B)

    with pytest.raises(NotFound):
        groups.leave_deleted_account(E, GID, now=NOW, groups=ports.groups)


# -- fan-out jobs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "{}",
        '{"v": 2}',
        '{"v": 1, "group": "g", "from": "f", "from_device": "d", "client_id": "c", '
        '"body": "!!", "ord": "o", "expires_at": 1, "members": [], "chunk": 0}',
        '{"v": 1, "group": "g", "from": "f", "from_device": "d", "client_id": "c", '
        '"body": "", "ord": "o", "expires_at": "1", "members": [], "chunk": 0}',
        "not json",
    ],
)
def test_a_malformed_fanout_job_is_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        FanoutJob.from_json(raw)


def test_a_fanout_job_survives_its_json_form() -> None:
    job = FanoutJob(
        group_id="1" * 32,
        sender=A,
        sender_device="d" * 16,
        client_id="m-1",
        body=b"\x00\xffsender key ciphertext",
        ord="00001800000000000000#0000abcd",
        expires_at=1_900_000_000,
        members=(A, B),
        chunk=3,
    )

    assert FanoutJob.from_json(job.to_json()) == job
