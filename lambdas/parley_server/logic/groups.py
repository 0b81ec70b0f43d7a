"""Group membership use cases: create, read, list, add, remove, leave, admins.

Plain Python over small ports (store/groups.py satisfies them; tests may hand
in fakes). Time comes in as `now`; nothing here reads the environment.

Rules, as a WhatsApp group user expects them:
- The creator is the first admin. Only admins add or remove members and
  promote or dismiss admins; anyone may leave.
- A group never has no admin: dismissing the last admin is refused
  (`last_admin`); when the last admin *leaves*, the longest-standing remaining
  member becomes admin in the same transaction (leaving is always allowed).
  When the last member leaves, the group is deleted.
- Non-members learn nothing: reading or changing a group you are not in is
  404 `not_found`, exactly as for a group that does not exist.
- `version` goes up with every change of who is in the group; clients rotate
  their sender key when it moves. A send may name the version it encrypted
  for; a mismatch is refused (`stale_group`) so the sender can refresh first.
- Each change is one transaction, conditional on the state it was computed
  from, so concurrent changes cannot exceed the member limit or remove the
  last admin; a change that lost a race is recomputed (a few times, then 409).

Messages to a group and their fan-out are in logic/group_fanout.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from parley_server.config import Limits
from parley_server.ids import new_group_id
from parley_server.logic.ports import Caller
from parley_server.models.errors import Conflict, Forbidden, GroupChanged, NotFound
from parley_server.models.groups import (
    ADMIN,
    MEMBER,
    Group,
    GroupChange,
    GroupSummary,
    Member,
    Membership,
    Role,
)

__all__ = [
    "GroupsPort",
    "UsersPort",
    "add_members",
    "create_group",
    "dismiss_admin",
    "get_group",
    "list_groups",
    "promote_admin",
    "remove_member",
]

# A change that lost a race is recomputed this many times before giving up.
_ATTEMPTS = 4


# -- ports ------------------------------------------------------------------------------


class GroupsPort(Protocol):
    def load(self, group_id: str) -> Group | None: ...

    def create(self, group: Group) -> None: ...

    def commit(self, change: GroupChange) -> None: ...

    def memberships(self, user_id: str) -> list[Membership]: ...

    def summaries(self, memberships: Sequence[Membership]) -> list[GroupSummary]: ...


class UsersPort(Protocol):
    def existing(self, user_ids: Iterable[str]) -> set[str]: ...


# -- membership ---------------------------------------------------------------------------


def _ms(now: float) -> int:
    return int(now * 1000)


def _not_found() -> NotFound:
    return NotFound("no such group")


def _visible(groups: GroupsPort, group_id: str, caller: Caller) -> tuple[Group, Member]:
    """The group and the caller's place in it; NotFound for non-members too."""
    group = groups.load(group_id)
    member = group.member(caller.user_id) if group is not None else None
    if group is None or member is None:
        raise _not_found()
    return group, member


def _admin(groups: GroupsPort, group_id: str, caller: Caller) -> Group:
    group, member = _visible(groups, group_id, caller)
    if member.role != ADMIN:
        raise Forbidden("only group admins may do this", code="not_admin")
    return group


def _retrying(attempt: Callable[[], Group | None]) -> Group | None:
    """Run a read-compute-commit attempt until it commits or keeps losing races."""
    for _ in range(_ATTEMPTS - 1):
        try:
            return attempt()
        except GroupChanged:
            pass
    return attempt()


def create_group(
    caller: Caller,
    name: str,
    members: Sequence[str],
    *,
    now: float,
    limits: Limits,
    groups: GroupsPort,
    users: UsersPort,
    new_id: Callable[[], str] = new_group_id,
) -> Group:
    """A new group: the caller (its admin) and `members`, all registered users."""
    me = caller.user_id
    others = [uid for uid in members if uid != me]
    if len(others) + 1 > limits.group_max_members:
        raise Conflict(
            f"a group may have at most {limits.group_max_members} members",
            code="group_full",
            limit=limits.group_max_members,
        )
    _require_known(others, users)
    joined = _ms(now)
    group = Group(
        group_id=new_id(),
        name=name,
        created_by=me,
        created_ms=joined,
        version=1,
        rev=1,
        members=(
            Member(me, ADMIN, joined, me),
            # a millisecond after the creator, so the creator is always the most senior
            *(Member(uid, MEMBER, joined + 1, me) for uid in sorted(others)),
        ),
    )
    groups.create(group)
    return group


def _require_known(user_ids: Sequence[str], users: UsersPort) -> None:
    if not user_ids:
        return
    unknown = sorted(set(user_ids) - users.existing(user_ids))
    if unknown:
        raise NotFound(
            "these user ids belong to nobody", code="unknown_users", user_ids=unknown[:20]
        )


def get_group(caller: Caller, group_id: str, *, groups: GroupsPort) -> Group:
    """The group, if the caller is a member."""
    group, _ = _visible(groups, group_id, caller)
    return group


def list_groups(caller: Caller, *, groups: GroupsPort) -> list[GroupSummary]:
    """The caller's groups (from an eventually consistent index: a moment behind)."""
    return groups.summaries(groups.memberships(caller.user_id))


def add_members(
    caller: Caller,
    group_id: str,
    user_ids: Sequence[str],
    *,
    now: float,
    limits: Limits,
    groups: GroupsPort,
    users: UsersPort,
) -> Group:
    """Add registered users (admins only). Members already in are left as they are."""
    _require_known([uid for uid in user_ids if uid != caller.user_id], users)

    def attempt() -> Group:
        group = _admin(groups, group_id, caller)
        present = set(group.member_ids)
        joined = _ms(now)
        added = tuple(
            Member(uid, MEMBER, joined, caller.user_id) for uid in user_ids if uid not in present
        )
        if not added:
            return group  # nothing changes: the version stays
        count = len(group.members) + len(added)
        if count > limits.group_max_members:
            raise Conflict(
                f"a group may have at most {limits.group_max_members} members "
                f"(it has {len(group.members)})",
                code="group_full",
                limit=limits.group_max_members,
                members=len(group.members),
            )
        change = GroupChange(
            group_id=group_id,
            rev=group.rev,
            version=group.version + 1,
            name=group.name,
            member_count=count,
            admin_count=len(group.admin_ids),
            added=added,
        )
        groups.commit(change)
        members = sorted((*group.members, *added), key=lambda m: m.seniority)
        return _after(group, change, tuple(members))

    result = _retrying(attempt)
    assert result is not None
    return result


def remove_member(
    caller: Caller, group_id: str, user_id: str, *, groups: GroupsPort
) -> Group | None:
    """Remove `user_id` (admins only), or leave (`user_id` is the caller's).

    Returns the group as it is now, or None when the caller left (it is no
    longer theirs to see) or the group ended with its last member.
    """

    def attempt() -> Group | None:
        group, me = _visible(groups, group_id, caller)
        leaving = user_id == caller.user_id
        if not leaving and me.role != ADMIN:
            raise Forbidden("only group admins may remove members", code="not_admin")
        target = group.member(user_id)
        if target is None:
            raise NotFound("that user is not a member of this group", code="not_a_member")
        rest = tuple(m for m in group.members if m.user_id != user_id)
        if not rest:
            groups.commit(
                GroupChange(
                    group_id=group_id,
                    rev=group.rev,
                    version=group.version + 1,
                    name=group.name,
                    member_count=0,
                    admin_count=0,
                    removed=(target,),
                    delete_group=True,
                )
            )
            return None
        promoted: tuple[tuple[Member, Role], ...] = ()
        admins = [m for m in rest if m.role == ADMIN]
        if not admins:
            # Only an admin's own leaving gets here (removing someone else needs an
            # admin who stays): the longest-standing member takes over.
            heir = min(rest, key=lambda m: m.seniority)
            promoted = ((heir, ADMIN),)
            rest = tuple(_with_role(m, ADMIN) if m is heir else m for m in rest)
        change = GroupChange(
            group_id=group_id,
            rev=group.rev,
            version=group.version + 1,
            name=group.name,
            member_count=len(rest),
            admin_count=max(1, len(admins)),
            removed=(target,),
            role_changes=promoted,
        )
        groups.commit(change)
        return None if leaving else _after(group, change, rest)

    return _retrying(attempt)


def promote_admin(caller: Caller, group_id: str, user_id: str, *, groups: GroupsPort) -> Group:
    """Make a member an admin (admins only). Promoting an admin changes nothing."""
    return _set_role(caller, group_id, user_id, ADMIN, groups=groups)


def dismiss_admin(caller: Caller, group_id: str, user_id: str, *, groups: GroupsPort) -> Group:
    """Make an admin a plain member (admins only); never the group's last admin."""
    return _set_role(caller, group_id, user_id, MEMBER, groups=groups)


def _set_role(
    caller: Caller, group_id: str, user_id: str, role: Role, *, groups: GroupsPort
) -> Group:
    def attempt() -> Group:
        group = _admin(groups, group_id, caller)
        target = group.member(user_id)
        if target is None:
            raise NotFound("that user is not a member of this group", code="not_a_member")
        if target.role == role:
            return group
        admins = len(group.admin_ids) + (1 if role == ADMIN else -1)
        if admins < 1:
            raise Conflict("a group needs an admin: promote someone else first", code="last_admin")
        change = GroupChange(
            group_id=group_id,
            rev=group.rev,
            version=group.version,  # nobody's access changes
            name=group.name,
            member_count=len(group.members),
            admin_count=admins,
            role_changes=((target, role),),
        )
        groups.commit(change)
        members = tuple(_with_role(m, role) if m is target else m for m in group.members)
        return _after(group, change, members)

    result = _retrying(attempt)
    assert result is not None
    return result


def _with_role(member: Member, role: Role) -> Member:
    return Member(member.user_id, role, member.joined_ms, member.added_by)


def _after(group: Group, change: GroupChange, members: tuple[Member, ...]) -> Group:
    return Group(
        group_id=group.group_id,
        name=group.name,
        created_by=group.created_by,
        created_ms=group.created_ms,
        version=change.version,
        rev=change.rev + 1,
        members=members,
    )
