"""Group membership rules and their race-safety, against the real store in moto.

Races are staged deterministically: a store that lets a competing change commit
between a change's read and its write, exactly where a concurrent request could.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import groups
from parley_server.logic.groups import UsersPort
from parley_server.logic.ports import Caller
from parley_server.models.errors import BadRequest, Conflict, Forbidden, NotFound
from parley_server.models.groups import FanoutJob, GroupChange
from parley_server.store.groups import GroupsStore
from tests.conftest import FakeAws
from tests.unit.conftest import Ports

A, B, C, D, E = ("a" * 32, "b" * 32, "c" * 32, "d" * 32, "e" * 32)
NOW = 1_800_000_000.0


def _caller(user_id: str) -> Caller:
    return Caller(user_id, "0" * 16)


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


class World(Ports):
    """The groups table in moto, where every user id is a registered user."""

    @property
    def known_users(self) -> UsersPort:
        return Everyone()

    def racing(self, meanwhile: Callable[[], object]) -> Racing:
        return Racing(self.ddb, self.table(Setting.GROUPS_TABLE), meanwhile)


@pytest.fixture
def ports(aws: FakeAws) -> World:
    return World(aws)


def _create(ports: World, *members: str, limits: Limits | None = None) -> str:
    group = ports.call(
        groups.create_group,
        _caller(A),
        "Climbing",
        list(members),
        now=NOW,
        limits=limits or Limits(),
    )
    return group.group_id


def test_a_change_computed_from_an_old_revision_is_refused_and_changes_nothing(
    ports: World,
) -> None:
    gid = _create(ports, B)
    before = ports.groups.load(gid)
    assert before is not None
    ports.call(groups.add_members, _caller(A), gid, [C], now=NOW + 1, limits=Limits())
    stale = GroupChange(
        group_id=gid,
        rev=before.rev,
        version=before.version + 1,
        name=before.name,
        member_count=3,
        admin_count=1,
        added=(),
        removed=(before.members[1],),
    )

    with pytest.raises(Conflict) as refused:
        ports.groups.commit(stale)

    assert refused.value.code == "group_changed"
    after = ports.groups.load(gid)
    assert after is not None
    assert after.member_ids == [A, B, C]


def test_concurrent_adds_cannot_exceed_the_member_limit(ports: World) -> None:
    limits = Limits(group_max_members=3)
    gid = _create(ports, B, limits=limits)

    def other_admin_adds() -> None:
        ports.call(groups.add_members, _caller(A), gid, [C], now=NOW + 1, limits=limits)

    racing = ports.racing(other_admin_adds)

    with pytest.raises(Conflict) as refused:
        ports.call(groups.add_members, _caller(A), gid, [D], now=NOW, limits=limits, groups=racing)

    assert refused.value.code == "group_full"
    group = ports.groups.load(gid)
    assert group is not None
    assert group.member_ids == [A, B, C]
    assert group.version == 2


def test_two_admins_dismissing_each_other_at_once_leave_one_admin(ports: World) -> None:
    gid = _create(ports, B)
    ports.call(groups.promote_admin, _caller(A), gid, B)

    def b_dismisses_a() -> None:
        ports.call(groups.dismiss_admin, _caller(B), gid, A)

    racing = ports.racing(b_dismisses_a)

    with pytest.raises(Forbidden) as refused:
        ports.call(groups.dismiss_admin, _caller(A), gid, B, groups=racing)

    assert refused.value.code == "not_admin"
    group = ports.groups.load(gid)
    assert group is not None
    assert group.admin_ids == [B]


def test_the_last_admin_leaving_while_the_heir_leaves_hands_over_to_the_next(ports: World) -> None:
    gid = _create(ports, B)
    ports.call(groups.add_members, _caller(A), gid, [C], now=NOW + 1, limits=Limits())

    def heir_leaves() -> None:
        ports.call(groups.remove_member, _caller(B), gid, B)

    racing = ports.racing(heir_leaves)

    assert ports.call(groups.remove_member, _caller(A), gid, A, groups=racing) is None

    group = ports.groups.load(gid)
    assert group is not None
    assert group.member_ids == [C]
    assert group.admin_ids == [C]
    assert racing.commits == 2  # lost the race once, then recomputed


def test_a_change_that_keeps_losing_races_gives_up_with_409_and_changes_nothing(
    ports: World,
) -> None:
    gid = _create(ports, B)

    class AlwaysRacing(GroupsStore):
        def commit(self, change: GroupChange) -> None:
            ports.groups.commit(  # someone else's harmless change wins every time
                GroupChange(
                    group_id=change.group_id,
                    rev=change.rev,
                    version=change.version,
                    name="renamed",
                    member_count=2,
                    admin_count=1,
                )
            )
            super().commit(change)

    loser = AlwaysRacing(ports.ddb, ports.table(Setting.GROUPS_TABLE))

    with pytest.raises(Conflict) as refused:
        ports.call(groups.remove_member, _caller(A), gid, B, groups=loser)

    assert refused.value.code == "group_changed"
    group = ports.groups.load(gid)
    assert group is not None
    assert group.member_ids == [A, B]


def test_a_member_can_remove_nobody_but_themselves(ports: World) -> None:
    gid = _create(ports, B, C)

    with pytest.raises(Forbidden):
        ports.call(groups.remove_member, _caller(B), gid, C)
    assert ports.call(groups.remove_member, _caller(B), gid, B) is None

    group = ports.groups.load(gid)
    assert group is not None
    assert group.member_ids == [A, C]


def test_the_last_member_leaving_deletes_the_group(ports: World) -> None:
    gid = _create(ports)

    assert ports.call(groups.remove_member, _caller(A), gid, A) is None

    assert ports.groups.load(gid) is None
    assert ports.groups.roster(gid) is None
    assert ports.groups.memberships(A) == []


def test_a_non_member_is_told_not_found_for_every_change(ports: World) -> None:
    gid = _create(ports, B)

    for attempt in (
        lambda: ports.call(groups.get_group, _caller(E), gid),
        lambda: ports.call(groups.remove_member, _caller(E), gid, E),
        lambda: ports.call(groups.promote_admin, _caller(E), gid, E),
        lambda: ports.call(groups.add_members, _caller(E), gid, [D], now=NOW, limits=Limits()),
    ):
        with pytest.raises(NotFound) as refused:
            attempt()
        assert refused.value.code == "not_found"


def test_the_roster_names_the_members_and_the_version(ports: World) -> None:
    gid = _create(ports, C, B)
    ports.call(groups.remove_member, _caller(A), gid, C)

    roster = ports.groups.roster(gid)

    assert roster is not None
    assert sorted(roster.members) == [A, B]
    assert roster.version == 2


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
