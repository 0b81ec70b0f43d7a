"""Group membership use cases: create, read, list, and the signed changes (add,
remove, leave, promote, dismiss, vouch); the leave of a deleted account.

Plain Python over small ports (store/groups.py and store/users.py satisfy them;
tests may hand in fakes). Time comes in as `now`; nothing here reads the environment.

Rules, as a WhatsApp group user expects them:
- The creator is the first admin. Only admins add or remove members, promote or
  dismiss admins and vouch for the membership; anyone may leave.
- A group never has no admin: dismissing the last admin is refused
  (`last_admin`); when the last admin *leaves*, the longest-standing remaining
  member becomes admin in the same transaction (leaving is always allowed).
  When the last member leaves, the group is deleted, and its chain with it.
- Non-members learn nothing: reading or changing a group you are not in is
  404 `not_found`, exactly as for a group that does not exist.
- `version` goes up with every change of who is in the group; clients rotate
  their sender key when it moves. A send may name the version it encrypted
  for; a mismatch is refused (`stale_group`) so the sender can refresh first.

Signed changes (logic/group_changes.py; docs/API.md, "Signed group changes"):
every change is a document the caller's device signed. It must be the caller's
(author and device), verify under that device's identity key as the account's
stored device list gives it, and follow on from the group as it is: `seq` is
rev + 1 and `prev` the hash of the chain's head. A change signed for an older
state is refused with 409 `group_changed` (and the group's `rev` and `head`):
the signature covers `seq` and `prev`, so only the client can sign it anew. The
change is kept as the next entry of the group's chain, with the author's device
list as its certificate, in the same transaction as its effect. Members added by
one change join at max(now, the latest join + 1 ms): seniority follows the chain.

A group made before chains (no head) takes every change with prev "" and seq
rev + 1, and keeps no entry for it, until an admin's vouch starts its chain.

Each change is one transaction, conditional on the state it was computed from,
so concurrent changes cannot exceed the member limit, remove the last admin or
fork the chain. A commit that failed while the group did not move (a
transaction conflict) is tried again, a few times; one whose group moved is the
stale change above. The service's own leave (account deletion) is recomputed.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from parley_server.config import Limits
from parley_server.logic.device_list import read_list
from parley_server.logic.group_changes import (
    SignedChange,
    change_hash,
    service_leave,
    verify,
)
from parley_server.logic.ports import Caller
from parley_server.models.errors import (
    BadRequest,
    Conflict,
    DependencyUnavailable,
    Forbidden,
    GroupChanged,
    NotFound,
)
from parley_server.models.groups import (
    ADMIN,
    MEMBER,
    ChainEntry,
    ChainPage,
    Group,
    GroupChange,
    GroupSummary,
    Member,
    Membership,
    Role,
)
from parley_server.store.users import DeviceListRecord

__all__ = [
    "DeviceListsPort",
    "GroupsPort",
    "UsersPort",
    "add_members",
    "apply_change",
    "create_group",
    "dismiss_admin",
    "get_group",
    "group_changes",
    "leave_deleted_account",
    "leave_group",
    "list_groups",
    "promote_admin",
    "remove_member",
    "vouch",
]

# A commit that failed while the group did not move is tried this many times in all.
_ATTEMPTS = 4
# a stored device list was checked against the companion limit when it was installed
_ANY_COMPANIONS = 1 << 16

T = TypeVar("T")


# -- ports ------------------------------------------------------------------------------


class GroupsPort(Protocol):
    def load(self, group_id: str) -> Group | None: ...

    def create(self, group: Group, entry: ChainEntry | None = None) -> None: ...

    def commit(self, change: GroupChange) -> None: ...

    def changes(self, group_id: str, after: int, head: int) -> ChainPage: ...

    def forget_changes(self, group_id: str) -> int: ...

    def memberships(self, user_id: str) -> list[Membership]: ...

    def summaries(self, memberships: Sequence[Membership]) -> list[GroupSummary]: ...


class UsersPort(Protocol):
    def existing(self, user_ids: Iterable[str]) -> set[str]: ...


class DeviceListsPort(Protocol):
    def device_list(self, user_id: str) -> DeviceListRecord: ...


# -- shared rules -----------------------------------------------------------------------


def _ms(now: float) -> int:
    return int(now * 1000)


def _not_found() -> NotFound:
    return NotFound("no such group")


def _invalid(message: str, field: str) -> BadRequest:
    return BadRequest(message, code="invalid_group_change", field=field)


def _stale(group: Group) -> Conflict:
    """The group is not as the change was signed for: read it again and sign anew."""
    return Conflict(
        "the group has changed since this change was signed: read it again and sign anew",
        code="group_changed",
        rev=group.rev,
        head=group.head,
    )


def _visible(groups: GroupsPort, group_id: str, user_id: str) -> tuple[Group, Member]:
    """The group and the user's place in it; NotFound for non-members too."""
    group = groups.load(group_id)
    member = group.member(user_id) if group is not None else None
    if group is None or member is None:
        raise _not_found()
    return group, member


def _following(groups: GroupsPort, change: SignedChange, caller: Caller) -> tuple[Group, Member]:
    """The group as the change must follow on from: the caller a member (else 404), the
    change's seq the group's rev + 1 and its prev the chain's head (else 409)."""
    group, me = _visible(groups, change.group_id, caller.user_id)
    if change.seq != group.rev + 1 or change.prev != group.head_hash:
        raise _stale(group)
    return group, me


def _require_admin(member: Member) -> None:
    if member.role != ADMIN:
        raise Forbidden("only group admins may do this", code="not_admin")


def _require_known(user_ids: Sequence[str], users: UsersPort) -> None:
    if not user_ids:
        return
    unknown = sorted(set(user_ids) - users.existing(user_ids))
    if unknown:
        raise NotFound(
            "these user ids belong to nobody", code="unknown_users", user_ids=unknown[:20]
        )


def _retrying(attempt: Callable[[], T], gave_up: Callable[[], Exception] | None = None) -> T:
    """Run a read-compute-commit attempt until it commits, it fails for good, or its
    commits keep failing (then `gave_up()`'s error, or the last GroupChanged)."""
    for _ in range(_ATTEMPTS - 1):
        try:
            return attempt()
        except GroupChanged:
            pass
    try:
        return attempt()
    except GroupChanged as exc:
        if gave_up is None:
            raise
        raise gave_up() from exc


def _gave_up(groups: GroupsPort, group_id: str, caller: Caller) -> Callable[[], Exception]:
    def error() -> Exception:
        try:
            group, _ = _visible(groups, group_id, caller.user_id)
        except NotFound as gone:
            return gone
        return _stale(group)

    return error


def _with_role(member: Member, role: Role) -> Member:
    return Member(member.user_id, role, member.joined_ms, member.added_by)


def _commit(
    groups: GroupsPort,
    group: Group,
    members: tuple[Member, ...],
    *,
    version: int,
    chain: dict[str, Any],
    added: tuple[Member, ...] = (),
    removed: tuple[Member, ...] = (),
    role_changes: tuple[tuple[Member, Role], ...] = (),
) -> Group:
    """Commit the change that leaves `group` with `members` at `version` (its counts
    are theirs), conditional on the group being as it was read; the group after it."""
    commit = GroupChange(
        group_id=group.group_id,
        rev=group.rev,
        version=version,
        name=group.name,
        member_count=len(members),
        admin_count=sum(m.role == ADMIN for m in members),
        added=added,
        removed=removed,
        role_changes=role_changes,
        **chain,
    )
    groups.commit(commit)
    return _after(group, commit, members)


def _after(group: Group, change: GroupChange, members: tuple[Member, ...]) -> Group:
    return Group(
        group_id=group.group_id,
        name=group.name,
        created_by=group.created_by,
        created_ms=group.created_ms,
        version=change.version,
        rev=change.rev + 1,
        members=members,
        head=change.entry.seq if change.entry is not None else group.head,
        head_hash=change.head_hash if change.entry is not None else group.head_hash,
    )


# -- the signed change's author ---------------------------------------------------------


def _certified(
    caller: Caller,
    change: SignedChange,
    *,
    kind: str,
    group_id: str | None,
    device_lists: DeviceListsPort,
) -> ChainEntry:
    """Check that `change` is the caller's own change of this kind (for this group),
    signed by the caller's device as the account's device list gives its key; the
    chain entry it makes, with that device list as its certificate."""
    if change.kind != kind:
        where = "POST /v1/groups" if change.kind == "create" else "POST /v1/groups/{id}/changes"
        raise _invalid(f"`{change.kind}` changes are sent to {where}", "change.kind")
    if group_id is not None and change.group_id != group_id:
        raise _invalid("change.group_id is not the group of the path", "change.group_id")
    if change.author != caller.user_id:
        raise _invalid("change.author must be the caller's user id", "change.author")
    if change.device != caller.device_id:
        raise _invalid("change.device must be the caller's device id", "change.device")
    record = device_lists.device_list(caller.user_id)
    if record.body is None or record.signature is None or record.account_identity is None:
        raise Conflict(
            "the account has no device list: publish one before changing groups",
            code="no_device_list",
        )
    listed = read_list(
        base64.b64encode(record.body).decode("ascii"),
        base64.b64encode(record.signature).decode("ascii"),
        user_id=caller.user_id,
        account_identity=record.account_identity,
        max_companions=_ANY_COMPANIONS,
    )
    device = next((d for d in listed.devices if d.device_id == caller.device_id), None)
    if device is None:
        raise Conflict("this device is not on the account's device list", code="no_device_list")
    verify(change, device.identity)
    return ChainEntry(
        seq=change.seq,
        body=change.body,
        signature=change.signature,
        cert_body=record.body,
        cert_signature=record.signature,
    )


def _chain(group: Group, change: SignedChange, entry: ChainEntry) -> dict[str, Any]:
    """The GroupChange fields that append `entry`: only to a group that has a chain,
    or for the vouch that starts one."""
    if group.head == 0 and change.kind != "vouch":
        return {}
    return {"entry": entry, "head_hash": change.hash}


# -- reading ----------------------------------------------------------------------------


def get_group(caller: Caller, group_id: str, *, groups: GroupsPort) -> Group:
    """The group, if the caller is a member."""
    group, _ = _visible(groups, group_id, caller.user_id)
    return group


def group_changes(
    caller: Caller, group_id: str, after: int, *, groups: GroupsPort
) -> tuple[Group, ChainPage]:
    """The group, if the caller is a member, and its chain's entries after `after`, up
    to its head as read with it (a change committed in between waits for the next
    read, so what is served always ends at the head the answer names)."""
    group, _ = _visible(groups, group_id, caller.user_id)
    return group, groups.changes(group_id, after, group.head)


def list_groups(caller: Caller, *, groups: GroupsPort) -> list[GroupSummary]:
    """The caller's groups (from an eventually consistent index: a moment behind)."""
    return groups.summaries(groups.memberships(caller.user_id))


# -- changes ----------------------------------------------------------------------------


def create_group(
    caller: Caller,
    change: SignedChange,
    *,
    now: float,
    limits: Limits,
    groups: GroupsPort,
    users: UsersPort,
    device_lists: DeviceListsPort,
) -> Group:
    """A new group, as the caller's signed `create` says: its id (chosen by the
    client), its name, the caller (its admin) and the other first members, all
    registered users. The create is the first entry of its chain."""
    entry = _certified(caller, change, kind="create", group_id=None, device_lists=device_lists)
    me = caller.user_id
    others = list(change.members)
    if len(others) + 1 > limits.group_max_members:
        raise Conflict(
            f"a group may have at most {limits.group_max_members} members",
            code="group_full",
            limit=limits.group_max_members,
        )
    _require_known(others, users)
    joined = _ms(now)
    group = Group(
        group_id=change.group_id,
        name=change.name,
        created_by=me,
        created_ms=joined,
        version=1,
        rev=1,
        members=(
            Member(me, ADMIN, joined, me),
            # a millisecond after the creator, so the creator is always the most senior
            *(Member(uid, MEMBER, joined + 1, me) for uid in others),
        ),
        head=1,
        head_hash=change.hash,
    )
    try:
        groups.create(group, entry)
    except GroupChanged as exc:
        raise Conflict(
            "a group with this id exists: choose a fresh id", code="group_exists"
        ) from exc
    return group


def add_members(
    caller: Caller,
    group_id: str,
    change: SignedChange,
    *,
    now: float,
    limits: Limits,
    groups: GroupsPort,
    users: UsersPort,
    device_lists: DeviceListsPort,
) -> Group:
    """Add registered users (admins only). Members already in are left as they are;
    an add of members who are all in changes nothing."""
    entry = _certified(caller, change, kind="add", group_id=group_id, device_lists=device_lists)
    known: set[str] = set()

    def attempt() -> Group:
        group, me = _following(groups, change, caller)
        _require_admin(me)
        present = set(group.member_ids)
        new = [uid for uid in change.members if uid not in present]
        if not new:
            return group  # nothing changes: no entry, the version stays
        # only a member learns which ids belong to nobody (once, whatever the retries)
        _require_known([uid for uid in new if uid not in known], users)
        known.update(new)
        count = len(group.members) + len(new)
        if count > limits.group_max_members:
            raise Conflict(
                f"a group may have at most {limits.group_max_members} members "
                f"(it has {len(group.members)})",
                code="group_full",
                limit=limits.group_max_members,
                members=len(group.members),
            )
        # seniority follows the chain: later changes' members join later, even if
        # the clock went back
        latest = max(m.joined_ms for m in group.members)
        joined = max(_ms(now), latest + 1)
        added = tuple(Member(uid, MEMBER, joined, caller.user_id) for uid in new)
        members = tuple(sorted((*group.members, *added), key=lambda m: m.seniority))
        return _commit(
            groups,
            group,
            members,
            version=group.version + 1,
            chain=_chain(group, change, entry),
            added=added,
        )

    return _retrying(attempt, _gave_up(groups, group_id, caller))


def remove_member(
    caller: Caller,
    group_id: str,
    change: SignedChange,
    *,
    groups: GroupsPort,
    device_lists: DeviceListsPort,
) -> Group:
    """Remove another member (admins only); the group as it is now."""
    entry = _certified(caller, change, kind="remove", group_id=group_id, device_lists=device_lists)

    def attempt() -> Group:
        group, me = _following(groups, change, caller)
        _require_admin(me)
        target = group.member(change.target)
        if target is None:
            raise NotFound("that user is not a member of this group", code="not_a_member")
        rest = tuple(m for m in group.members if m is not target)  # the caller, an admin, stays
        return _commit(
            groups,
            group,
            rest,
            version=group.version + 1,
            chain=_chain(group, change, entry),
            removed=(target,),
        )

    return _retrying(attempt, _gave_up(groups, group_id, caller))


def leave_group(
    caller: Caller,
    group_id: str,
    change: SignedChange,
    *,
    groups: GroupsPort,
    device_lists: DeviceListsPort,
) -> None:
    """The caller leaves (always allowed). The group is no longer theirs to see."""
    entry = _certified(caller, change, kind="leave", group_id=group_id, device_lists=device_lists)

    def attempt() -> None:
        group, me = _following(groups, change, caller)
        _leave(groups, group, me, _chain(group, change, entry))

    _retrying(attempt, _gave_up(groups, group_id, caller))


def _leave(groups: GroupsPort, group: Group, leaver: Member, chain: dict[str, Any]) -> None:
    """Commit `leaver`'s leave: the group ends with its last member (and its chain
    goes); a group left without an admin gets its longest-standing member as admin."""
    rest = tuple(m for m in group.members if m is not leaver)
    if not rest:
        groups.commit(
            GroupChange(
                group_id=group.group_id,
                rev=group.rev,
                version=group.version + 1,
                name=group.name,
                member_count=0,
                admin_count=0,
                removed=(leaver,),
                delete_group=True,
            )
        )
        if group.head:
            # the group is gone: what a failure leaves of its chain, nobody can read
            with contextlib.suppress(DependencyUnavailable):
                groups.forget_changes(group.group_id)
        return
    promoted: tuple[tuple[Member, Role], ...] = ()
    admins = [m for m in rest if m.role == ADMIN]
    if not admins:
        # the last admin left: the longest-standing member takes over (verifiers of
        # the chain apply the same rule to the leave)
        heir = min(rest, key=lambda m: m.seniority)
        promoted = ((heir, ADMIN),)
        rest = tuple(_with_role(m, ADMIN) if m is heir else m for m in rest)
    _commit(
        groups,
        group,
        rest,
        version=group.version + 1,
        chain=chain,
        removed=(leaver,),
        role_changes=promoted,
    )


def promote_admin(
    caller: Caller,
    group_id: str,
    change: SignedChange,
    *,
    groups: GroupsPort,
    device_lists: DeviceListsPort,
) -> Group:
    """Make a member an admin (admins only). Promoting an admin changes nothing."""
    entry = _certified(caller, change, kind="promote", group_id=group_id, device_lists=device_lists)
    return _set_role(caller, change, entry, ADMIN, groups=groups)


def dismiss_admin(
    caller: Caller,
    group_id: str,
    change: SignedChange,
    *,
    groups: GroupsPort,
    device_lists: DeviceListsPort,
) -> Group:
    """Make an admin a plain member (admins only); never the group's last admin.
    Dismissing a plain member changes nothing."""
    entry = _certified(caller, change, kind="dismiss", group_id=group_id, device_lists=device_lists)
    return _set_role(caller, change, entry, MEMBER, groups=groups)


def _set_role(
    caller: Caller, change: SignedChange, entry: ChainEntry, role: Role, *, groups: GroupsPort
) -> Group:
    def attempt() -> Group:
        group, me = _following(groups, change, caller)
        _require_admin(me)
        target = group.member(change.target)
        if target is None:
            raise NotFound("that user is not a member of this group", code="not_a_member")
        if target.role == role:
            return group  # nothing changes: no entry
        members = tuple(_with_role(m, role) if m is target else m for m in group.members)
        if not any(m.role == ADMIN for m in members):
            raise Conflict("a group needs an admin: promote someone else first", code="last_admin")
        return _commit(
            groups,
            group,
            members,
            version=group.version,  # nobody's access changes
            chain=_chain(group, change, entry),
            role_changes=((target, role),),
        )

    return _retrying(attempt, _gave_up(groups, change.group_id, caller))


def vouch(
    caller: Caller,
    group_id: str,
    change: SignedChange,
    *,
    groups: GroupsPort,
    device_lists: DeviceListsPort,
) -> Group:
    """An admin signs the whole membership as it is (members longest-standing first,
    admins in that order): an entry of the chain that changes who members' devices
    trust, so the version moves (they read the group again and give their new sender
    keys to those now vouched for). A group that has no chain yet starts it with
    this entry."""
    entry = _certified(caller, change, kind="vouch", group_id=group_id, device_lists=device_lists)

    def attempt() -> Group:
        group, me = _following(groups, change, caller)
        _require_admin(me)
        if list(change.members) != group.member_ids or list(change.admins) != group.admin_ids:
            raise _stale(group)
        return _commit(
            groups,
            group,
            group.members,
            version=group.version + 1,
            chain=_chain(group, change, entry),
        )

    return _retrying(attempt, _gave_up(groups, group_id, caller))


def apply_change(
    caller: Caller,
    group_id: str,
    change: SignedChange,
    *,
    now: float,
    limits: Limits,
    groups: GroupsPort,
    users: UsersPort,
    device_lists: DeviceListsPort,
) -> Group | None:
    """A signed change to an existing group, whatever its kind: the group as it is
    now, or None when the caller left."""
    if change.kind == "add":
        return add_members(
            caller,
            group_id,
            change,
            now=now,
            limits=limits,
            groups=groups,
            users=users,
            device_lists=device_lists,
        )
    if change.kind == "leave":
        leave_group(caller, group_id, change, groups=groups, device_lists=device_lists)
        return None
    one = {
        "remove": remove_member,
        "promote": promote_admin,
        "dismiss": dismiss_admin,
        "vouch": vouch,
    }.get(change.kind)
    if one is None:
        raise _invalid("a group is created with POST /v1/groups", "change.kind")
    return one(caller, group_id, change, groups=groups, device_lists=device_lists)


# -- the service's own change -----------------------------------------------------------


def leave_deleted_account(user_id: str, group_id: str, *, now: float, groups: GroupsPort) -> None:
    """A deleted account leaves a group as a member leaves one. The service records
    the leave in the group's chain (if it has one) as its own, unsigned entry:
    device "", no signature, no certificate. NotFound if it is not a member."""

    def attempt() -> None:
        group, me = _visible(groups, group_id, user_id)
        chain: dict[str, Any] = {}
        if group.head:
            seq = group.rev + 1
            body = service_leave(group_id, user_id, seq=seq, prev=group.head_hash, at=_ms(now))
            chain = {"entry": ChainEntry(seq, body, b""), "head_hash": change_hash(body)}
        _leave(groups, group, me, chain)

    _retrying(attempt)
