"""Group use cases: membership (create, read, list, add, remove, leave, admins) and
the fan-out of a group message to every member device.

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

Fan-out: a message for a small group is stored and delivered inline by `send`;
for a larger one, `send` stamps it, splits the members into slices and queues
one job per slice; the GroupFanout function runs `fan_out` on each job.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from parley_server.config import Limits
from parley_server.logic.messaging import (
    Caller,
    ConnectionsPort,
    DeliveryReport,
    DeviceInfo,
    Directory,
    GatewayPort,
    LimiterPort,
    Pusher,
    deliver,
    limit_send_rate,
)
from parley_server.models.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
)
from parley_server.models.frames import (
    MessageEnvelope,
    SendFrame,
    TypingFrame,
    make_ord,
    sent_event,
    typing_event,
)
from parley_server.models.groups import (
    ADMIN,
    MEMBER,
    FanoutJob,
    Group,
    GroupChange,
    GroupSummary,
    Member,
    Membership,
    Role,
    Roster,
)

__all__ = [
    "CHUNK_MEMBERS",
    "INLINE_MEMBERS",
    "MAX_IDS_PER_REQUEST",
    "MAX_NAME_CHARS",
    "FanoutOutcome",
    "FanoutQueuePort",
    "GroupSendOutcome",
    "GroupsPort",
    "RosterPort",
    "UsersPort",
    "add_members",
    "create_group",
    "dismiss_admin",
    "expected_version",
    "fan_out",
    "get_group",
    "list_groups",
    "parse_add",
    "parse_create",
    "parse_group_id",
    "parse_promote",
    "parse_user_id",
    "promote_admin",
    "remove_member",
    "send",
    "typing",
]

MAX_NAME_CHARS = 100  # as WhatsApp's group subject
# One change is one DynamoDB transaction (100 items): the group's META item,
# the creator's member item at creation, and the members named in the request.
MAX_IDS_PER_REQUEST = 98
# Members a send fans out to inline; larger groups go through the queue. Inline
# work is two Queries per member (devices, connections) plus batched writes:
# ~32 members stay well under a second and far from API Gateway's 29 s.
INLINE_MEMBERS = 32
# Typing is relayed in groups up to this size: one Query per member for their
# connections, for something sent every few seconds and never stored.
TYPING_MEMBERS = 32
# Members per queued job: ~100 Queries and a few batch writes per job, a second
# or two of work; a 1024-member group is 21 jobs processed in parallel.
CHUNK_MEMBERS = 50
# A change that lost a race is recomputed this many times before giving up.
_ATTEMPTS = 4

_HEX32 = re.compile(r"[0-9a-f]{32}")
# Names are shown to people: no control characters (newlines, bidi tricks aside).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# -- ports ------------------------------------------------------------------------------


class GroupsPort(Protocol):
    def load(self, group_id: str) -> Group | None: ...

    def create(self, group: Group) -> None: ...

    def commit(self, change: GroupChange) -> None: ...

    def memberships(self, user_id: str) -> list[Membership]: ...

    def summaries(self, memberships: Sequence[Membership]) -> list[GroupSummary]: ...


class RosterPort(Protocol):
    def roster(self, group_id: str) -> Roster | None: ...


class UsersPort(Protocol):
    def existing(self, user_ids: Iterable[str]) -> set[str]: ...


class EnvelopesPort(Protocol):
    def write(self, envelopes: Sequence[MessageEnvelope]) -> int: ...


class FanoutQueuePort(Protocol):
    def enqueue(self, jobs: Sequence[FanoutJob]) -> int: ...


D = TypeVar("D", bound=DeviceInfo)


# -- input ------------------------------------------------------------------------------


def parse_group_id(raw: object) -> str:
    """A group id from a path: 32 lowercase hex characters."""
    if not isinstance(raw, str) or not _HEX32.fullmatch(raw):
        raise BadRequest("group id must be 32 lowercase hex characters", field="group_id")
    return raw


def parse_user_id(raw: object, field: str = "user_id") -> str:
    if not isinstance(raw, str) or not _HEX32.fullmatch(raw):
        raise BadRequest(f"`{field}` must be a user id (32 lowercase hex)", field=field)
    return raw


def _object(body: Any, shape: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequest(f"body must be a JSON object: {shape}")
    return body


def _only(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)[:200]}", fields=unknown[:10])


def _name(raw: object) -> str:
    if not isinstance(raw, str):
        raise BadRequest("`name` must be a string", field="name")
    name = raw.strip()
    if not name:
        raise BadRequest("`name` must not be empty", field="name")
    if len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"`name` may have at most {MAX_NAME_CHARS} characters", field="name")
    if _CONTROL.search(name):
        raise BadRequest("`name` must not contain control characters", field="name")
    return name


def _user_ids(raw: object, field: str, *, allow_empty: bool) -> list[str]:
    if not isinstance(raw, list) or (not raw and not allow_empty):
        raise BadRequest(f"`{field}` must be a list of user ids", field=field)
    if len(raw) > MAX_IDS_PER_REQUEST:
        raise PayloadTooLarge(
            f"`{field}` may name at most {MAX_IDS_PER_REQUEST} users per request",
            field=field,
            limit=MAX_IDS_PER_REQUEST,
        )
    ids = [parse_user_id(item, field) for item in raw]
    return list(dict.fromkeys(ids))  # order kept, repeats mean nothing more


def parse_create(body: Any) -> tuple[str, list[str]]:
    """(name, members) from a POST /v1/groups body."""
    obj = _object(body, '{"name": "...", "members": ["<user id>", ...]}')
    _only(obj, {"name", "members"})
    if "name" not in obj:
        raise BadRequest("`name` is required", field="name")
    return _name(obj["name"]), _user_ids(obj.get("members", []), "members", allow_empty=True)


def parse_add(body: Any) -> list[str]:
    """User ids from a POST /v1/groups/{group_id}/members body."""
    obj = _object(body, '{"user_ids": ["<user id>", ...]}')
    _only(obj, {"user_ids"})
    if "user_ids" not in obj:
        raise BadRequest("`user_ids` is required", field="user_ids")
    return _user_ids(obj["user_ids"], "user_ids", allow_empty=False)


def parse_promote(body: Any) -> str:
    """The user id from a POST /v1/groups/{group_id}/admins body."""
    obj = _object(body, '{"user_id": "<user id>"}')
    _only(obj, {"user_id"})
    if "user_id" not in obj:
        raise BadRequest("`user_id` is required", field="user_id")
    return parse_user_id(obj["user_id"])


def expected_version(raw: Mapping[str, Any]) -> int | None:
    """The optional `version` of a group send frame: the epoch the sender encrypted for."""
    value = raw.get("version")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("`version` must be a group version (a positive integer)", field="version")
    return value


# -- membership ---------------------------------------------------------------------------


def _ms(now: float) -> int:
    return int(now * 1000)


def _not_found() -> NotFound:
    return NotFound("no such group")


def _visible(groups: GroupsPort, group_id: str, caller: str) -> tuple[Group, Member]:
    """The group and the caller's place in it; NotFound for non-members too."""
    group = groups.load(group_id)
    member = group.member(caller) if group is not None else None
    if group is None or member is None:
        raise _not_found()
    return group, member


def _admin(groups: GroupsPort, group_id: str, caller: str) -> Group:
    group, member = _visible(groups, group_id, caller)
    if member.role != ADMIN:
        raise Forbidden("only group admins may do this", code="not_admin")
    return group


def _retrying(attempt: Callable[[], Group | None]) -> Group | None:
    """Run a read-compute-commit attempt until it commits or keeps losing races."""
    for _ in range(_ATTEMPTS - 1):
        try:
            return attempt()
        except Conflict as exc:
            if exc.code != "group_changed":
                raise
    return attempt()


def create_group(
    caller: str,
    name: str,
    members: Sequence[str],
    *,
    now: float,
    limits: Limits,
    groups: GroupsPort,
    users: UsersPort,
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> Group:
    """A new group: the caller (its admin) and `members`, all registered users."""
    others = [uid for uid in members if uid != caller]
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
        created_by=caller,
        created_ms=joined,
        version=1,
        rev=1,
        members=(
            Member(caller, ADMIN, joined, caller),
            # a millisecond after the creator, so the creator is always the most senior
            *(Member(uid, MEMBER, joined + 1, caller) for uid in sorted(others)),
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


def get_group(caller: str, group_id: str, *, groups: GroupsPort) -> Group:
    """The group, if the caller is a member."""
    group, _ = _visible(groups, group_id, caller)
    return group


def list_groups(caller: str, *, groups: GroupsPort) -> list[GroupSummary]:
    """The caller's groups (from an eventually consistent index: a moment behind)."""
    return groups.summaries(groups.memberships(caller))


def add_members(
    caller: str,
    group_id: str,
    user_ids: Sequence[str],
    *,
    now: float,
    limits: Limits,
    groups: GroupsPort,
    users: UsersPort,
) -> Group:
    """Add registered users (admins only). Members already in are left as they are."""
    _require_known([uid for uid in user_ids if uid != caller], users)

    def attempt() -> Group:
        group = _admin(groups, group_id, caller)
        present = set(group.member_ids)
        joined = _ms(now)
        added = tuple(Member(uid, MEMBER, joined, caller) for uid in user_ids if uid not in present)
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


def remove_member(caller: str, group_id: str, user_id: str, *, groups: GroupsPort) -> Group | None:
    """Remove `user_id` (admins only), or leave (`user_id` is the caller).

    Returns the group as it is now, or None when the caller left (it is no
    longer theirs to see) or the group ended with its last member.
    """

    def attempt() -> Group | None:
        group, me = _visible(groups, group_id, caller)
        leaving = user_id == caller
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


def promote_admin(caller: str, group_id: str, user_id: str, *, groups: GroupsPort) -> Group:
    """Make a member an admin (admins only). Promoting an admin changes nothing."""
    return _set_role(caller, group_id, user_id, ADMIN, groups=groups)


def dismiss_admin(caller: str, group_id: str, user_id: str, *, groups: GroupsPort) -> Group:
    """Make an admin a plain member (admins only); never the group's last admin."""
    return _set_role(caller, group_id, user_id, MEMBER, groups=groups)


def _set_role(caller: str, group_id: str, user_id: str, role: Role, *, groups: GroupsPort) -> Group:
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


# -- sending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FanoutOutcome:
    """What one fan-out (inline or one queued job) did."""

    members: int
    devices: int  # envelopes written
    delivered: int  # devices reached on a live connection
    pushed: int
    gone: int
    writes: int  # BatchWriteItem calls


@dataclass(frozen=True)
class GroupSendOutcome:
    event: dict[str, Any]  # the `sent` answer
    members: int
    jobs: int  # queued jobs (0: fanned out inline)
    fanout: FanoutOutcome | None  # the inline fan-out, if it was inline


def send(
    frame: SendFrame,
    caller: Caller,
    *,
    version: int | None,
    now: float,
    limits: Limits,
    roster: RosterPort,
    limiter: LimiterPort,
    directory: Directory[D],
    envelopes: EnvelopesPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    pusher: Pusher[D],
    queue: Callable[[], FanoutQueuePort],
    inline_members: int = INLINE_MEMBERS,
    chunk_members: int = CHUNK_MEMBERS,
) -> GroupSendOutcome:
    """Accept one sender-key ciphertext for a group; fan it out now or through the queue."""
    group_id = frame.to_group
    if group_id is None or frame.body is None:
        raise BadRequest("not a group message")
    limit_send_rate(caller, limits=limits, limiter=limiter, now=now)
    found = roster.roster(group_id)
    if found is None:
        raise NotFound("no such group")
    if caller.user_id not in found.members:
        raise Forbidden("you are not a member of this group")
    if version is not None and version != found.version:
        raise Conflict(
            "the group changed: refresh it (and your sender key) and send again",
            code="stale_group",
            version=found.version,
        )
    members = tuple(sorted(found.members))
    job = FanoutJob(
        group_id=group_id,
        sender=caller.user_id,
        sender_device=caller.device_id,
        client_id=frame.client_id,
        body=frame.body,
        ord=make_ord(now, secrets.token_hex(4)),
        expires_at=int(now) + limits.mailbox_ttl_s,
        members=members,
    )
    event = sent_event(frame.client_id, int(job.ord[:17]) // 1000)
    if len(members) <= inline_members:
        outcome = fan_out(
            job,
            now=now,
            directory=directory,
            envelopes=envelopes,
            connections=connections,
            gateway=gateway,
            pusher=pusher,
        )
        return GroupSendOutcome(event, len(members), 0, outcome)
    jobs = [
        replace(job, members=members[start : start + chunk_members], chunk=index)
        for index, start in enumerate(range(0, len(members), chunk_members))
    ]
    queue().enqueue(jobs)
    return GroupSendOutcome(event, len(members), len(jobs), None)


def fan_out(
    job: FanoutJob,
    *,
    now: float,
    directory: Directory[D],
    envelopes: EnvelopesPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    pusher: Pusher[D],
) -> FanoutOutcome:
    """Store an envelope per device of the job's members, then deliver or push.

    Every device of every member gets one, the sender's other devices too; the
    sending device does not. Envelopes are written before anything is posted,
    so an ack can never arrive for an envelope that is not stored yet.
    """
    if job.expires_at <= now:
        return FanoutOutcome(len(job.members), 0, 0, 0, 0, 0)  # too late to matter
    targets: dict[str, list[D]] = {}
    batch: list[MessageEnvelope] = []
    for member in job.members:
        devices = [
            d
            for d in directory.devices(member)
            if not (member == job.sender and d.device_id == job.sender_device)
        ]
        if not devices:
            continue
        targets[member] = devices
        batch.extend(
            MessageEnvelope(
                recipient=member,
                recipient_device=device.device_id,
                sender=job.sender,
                sender_device=job.sender_device,
                client_id=job.client_id,
                body=job.body,
                ord=job.ord,
                expires_at=job.expires_at,
                group=job.group_id,
            )
            for device in devices
        )
    writes = envelopes.write(batch) if batch else 0
    events: dict[str, dict[str, Mapping[str, Any]]] = {}
    for envelope in batch:
        events.setdefault(envelope.recipient, {})[envelope.recipient_device] = envelope.event()
    delivered = pushed = gone = 0
    for member, devices in targets.items():
        report = deliver(
            member, events[member].get, now=now, connections=connections, gateway=gateway
        )
        delivered += len(report.reached)
        gone += report.gone
        pushed += sum(
            1
            for device in devices
            if device.device_id not in report.reached and pusher.notify(device)
        )
    return FanoutOutcome(len(job.members), len(batch), delivered, pushed, gone, writes)


def typing(
    frame: TypingFrame,
    caller: Caller,
    *,
    now: float,
    roster: RosterPort,
    connections: ConnectionsPort,
    gateway: GatewayPort,
    max_members: int = TYPING_MEMBERS,
) -> DeliveryReport:
    """Relay typing state to the live connections of every other member of a
    group (not to the caller's own other devices); nothing is stored."""
    group_id = frame.to_group
    if group_id is None:
        raise BadRequest("not a group")
    found = roster.roster(group_id)
    if found is None:
        raise NotFound("no such group")
    if caller.user_id not in found.members:
        raise Forbidden("you are not a member of this group")
    if len(found.members) > max_members:
        raise BadRequest(
            f"typing is relayed in groups of up to {max_members} members",
            code="group_too_large",
            limit=max_members,
        )
    event = typing_event(caller.user_id, caller.device_id, frame.state, group=group_id)
    reached: set[str] = set()
    posts = gone = 0
    for member in found.members:
        if member == caller.user_id:
            continue
        report = deliver(
            member, lambda _device_id: event, now=now, connections=connections, gateway=gateway
        )
        reached |= {f"{member}/{device}" for device in report.reached}
        posts += report.posts
        gone += report.gone
    return DeliveryReport(frozenset(reached), posts, gone)
