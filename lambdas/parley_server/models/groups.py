"""Groups: members and admins, the changes made to them, their signed chain, and
fan-out jobs.

A group has a `version` (its membership epoch): it goes up by one with every
change to who is in the group. Clients rotate their sender key when it moves,
so a removed member cannot read what follows. Admin changes leave the version
alone (nobody's access changes); the store's `rev` counts every change and
makes each one conditional on the state it was computed from.

Every change is a document signed by the device that makes it
(logic/group_changes.py); the service keeps them as the group's chain: entry
`seq` is the change that took the group to rev `seq`, and `head` names the last
one (0 for a group made before chains, until an admin's vouch starts its chain).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Literal

import msgspec

from parley_server.models.errors import BadRequest

__all__ = [
    "ADMIN",
    "MAX_CHANGE_BYTES",
    "MAX_IDS_PER_REQUEST",
    "MAX_NAME_CHARS",
    "MEMBER",
    "ChainEntry",
    "ChainPage",
    "FanoutJob",
    "Group",
    "GroupChange",
    "GroupSummary",
    "Member",
    "Membership",
    "Role",
    "Roster",
    "group_name",
]

Role = Literal["admin", "member"]
ADMIN: Role = "admin"
MEMBER: Role = "member"

MAX_NAME_CHARS = 100  # as WhatsApp's group subject
# A signed change's body (a vouch for 1,024 members is about 36 KiB).
MAX_CHANGE_BYTES = 64 * 1024
# One change is one DynamoDB transaction (100 items): the group's META item, the
# creator's member item at creation, the change's chain entry, and the members the
# change names.
MAX_IDS_PER_REQUEST = 97
# Names are shown to people: no control characters (newlines, bidi tricks aside).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def group_name(raw: object, field: str = "name", code: str | None = None) -> str:
    """A group's name as it is kept: trimmed, 1 to MAX_NAME_CHARS characters, no
    control characters; BadRequest (with `code`, naming `field`) if not."""
    if not isinstance(raw, str):
        raise BadRequest(f"`{field}` must be a string", code=code, field=field)
    name = raw.strip()
    if not name:
        raise BadRequest(f"`{field}` must not be empty", code=code, field=field)
    if len(name) > MAX_NAME_CHARS:
        raise BadRequest(
            f"`{field}` may have at most {MAX_NAME_CHARS} characters", code=code, field=field
        )
    if _CONTROL.search(name):
        raise BadRequest(f"`{field}` must not contain control characters", code=code, field=field)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): JSON allows it, UTF-8 does not
        raise BadRequest(f"`{field}` is not valid Unicode", code=code, field=field) from None
    return name


class Member(msgspec.Struct, frozen=True):
    """One member; `joined_ms` orders members by seniority (ties by user id)."""

    user_id: str
    role: Role
    joined_ms: int
    added_by: str

    @property
    def seniority(self) -> tuple[int, str]:
        return (self.joined_ms, self.user_id)


class Group(msgspec.Struct, frozen=True):
    """A group as stored: its details and every member, oldest first."""

    group_id: str
    name: str
    created_by: str
    created_ms: int
    version: int
    rev: int
    members: tuple[Member, ...]
    head: int = 0  # the seq of the chain's last entry; 0: no chain yet (a group made before)
    head_hash: bytes = b""  # that entry's hash (what the next change names as `prev`)

    def member(self, user_id: str) -> Member | None:
        for member in self.members:
            if member.user_id == user_id:
                return member
        return None

    @property
    def member_ids(self) -> list[str]:
        return [m.user_id for m in self.members]

    @property
    def admin_ids(self) -> list[str]:
        return [m.user_id for m in self.members if m.role == ADMIN]


class ChainEntry(msgspec.Struct, frozen=True):
    """One entry of a group's chain: the signed change that took the group to rev
    `seq`, exactly as it was signed, and the author's signed device list when it was
    committed (its certificate). The service's own entries (the leave of a deleted
    account) have an empty signature and no certificate."""

    seq: int
    body: bytes
    signature: bytes
    cert_body: bytes | None = None
    cert_signature: bytes | None = None


class ChainPage(msgspec.Struct, frozen=True):
    """Entries of a chain in order, and whether more follow them."""

    entries: tuple[ChainEntry, ...]
    more: bool


class GroupChange(msgspec.Struct, frozen=True):
    """One atomic change, computed from the group at revision `rev`.

    The store applies it only if the group is still at `rev`, and only if every
    member it names is still as `removed` / `role_changes` expect. With an `entry`,
    the same transaction appends it to the chain and makes it the head
    (`head_hash`: its hash).
    """

    group_id: str
    rev: int
    version: int  # the version after the change
    name: str
    member_count: int  # after the change
    admin_count: int  # after the change
    added: tuple[Member, ...] = ()
    removed: tuple[Member, ...] = ()
    role_changes: tuple[tuple[Member, Role], ...] = ()  # (member as it is, new role)
    delete_group: bool = False  # the last member left
    entry: ChainEntry | None = None
    head_hash: bytes = b""


class Membership(msgspec.Struct, frozen=True):
    """A user's place in one group (from the by_member index)."""

    group_id: str
    role: Role


class GroupSummary(msgspec.Struct, frozen=True):
    """What a list of my groups shows."""

    group_id: str
    name: str
    version: int
    member_count: int
    role: Role


class Roster(msgspec.Struct, frozen=True):
    """Who a group message goes to: the members at the moment it is accepted."""

    group_id: str
    version: int
    members: tuple[str, ...]


_JOB_VERSION = 1


class FanoutJob(msgspec.Struct, frozen=True):
    """One group message for one slice of the members: what a fan-out worker needs.

    Everything a worker writes comes from here (the ciphertext, the server time
    `ord`, the expiry), so processing a job twice writes the same envelopes.
    """

    group_id: str
    sender: str
    sender_device: str
    client_id: str
    body: bytes
    ord: str
    expires_at: int
    members: tuple[str, ...]
    chunk: int = 0  # which slice of the members, in a stable order

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": _JOB_VERSION,
                "group": self.group_id,
                "from": self.sender,
                "from_device": self.sender_device,
                "client_id": self.client_id,
                "body": base64.b64encode(self.body).decode("ascii"),
                "ord": self.ord,
                "expires_at": self.expires_at,
                "members": list(self.members),
                "chunk": self.chunk,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> FanoutJob:
        """A job written by to_json(); anything else is a BadRequest."""
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or raw.get("v") != _JOB_VERSION:
                raise ValueError("not a fan-out job of this version")
            members = raw["members"]
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise ValueError("members must be a list of user ids")
            strings = [raw[k] for k in ("group", "from", "from_device", "client_id", "ord")]
            if not all(isinstance(s, str) for s in strings):
                raise ValueError("ids must be strings")
            expires_at, chunk = raw["expires_at"], raw["chunk"]
            if not isinstance(expires_at, int) or not isinstance(chunk, int):
                raise ValueError("expires_at and chunk must be integers")
            return cls(
                group_id=raw["group"],
                sender=raw["from"],
                sender_device=raw["from_device"],
                client_id=raw["client_id"],
                body=base64.b64decode(raw["body"], validate=True),
                ord=raw["ord"],
                expires_at=expires_at,
                members=tuple(members),
                chunk=chunk,
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise BadRequest(f"malformed fan-out job: {exc}") from exc
