"""Signed group changes: what an admin's device signs, and the chain a client checks.

Every change to who is in a group (create, add, remove, leave, promote, dismiss,
and "vouch", an admin's statement of the whole membership) is a canonical JSON
body signed by the device that makes it (docs/API.md, "Signed group changes"):

    {"v": 1, "group_id", "seq", "prev", "at", "author", "device", "kind",
     "name", "members", "admins"}

`signature = Ed25519(device identity, PREFIX + body)` and the change's hash is
`SHA-256(PREFIX + body)`; each change names the hash of the one before (`prev`),
so the service cannot reorder, drop or fork the chain behind a client's back
without the client seeing the break.

The service keeps the chain and serves each entry with the author's signed device
list (the *certificate*) as it was when the change was made. A client folds the
entries into a `ChainState`: who is in the group by the chain, in the order of
seniority the service also uses, and for each member whether a trusted admin's
signature vouches for them. What grows trust counts only if a trusted admin
signed it (create, add, promote, vouch); what only takes it away (remove,
dismiss, a leave the member signed or the service recorded for a deleted
account) applies whoever made it. A member the service lists without a valid
signed change behind them is *unverified*: they get no sender key.

Everything here is pure; deciding whether an entry is signed (which needs the
pinned account identities) is `Membership`'s part.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeGuard, cast, get_args

from parley.crypto import IdentityKeyPair
from parley.crypto.keys import verify_signature
from parley.errors import ParleyClientError
from parley.ids import is_device_id, is_group_id, is_user_id

__all__ = [
    "MAX_CHANGE_BYTES",
    "PREFIX",
    "ChainError",
    "ChainState",
    "Entry",
    "Kind",
    "Seat",
    "apply",
    "change_hash",
    "parse_entry",
    "sign_change",
    "signature_valid",
]

PREFIX = b"parley/group-change/v1\x00"
MAX_CHANGE_BYTES = 64 * 1024  # a vouch for 1,024 members is about 36 KiB
_KEYS = frozenset(
    {"v", "group_id", "seq", "prev", "at", "author", "device", "kind", "name", "members", "admins"}
)
_HASH_LEN = 32
_SIG_LEN = 64

Kind = Literal["create", "add", "remove", "leave", "promote", "dismiss", "vouch"]
_KINDS: frozenset[str] = frozenset(get_args(Kind))


class ChainError(ParleyClientError):
    """A group's chain of changes cannot be read or does not follow on (a fork, a
    rollback, a malformed entry): nothing in it is trusted."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ChainError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ChainError(f"{what} is not valid base64") from exc


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def change_hash(body: bytes) -> bytes:
    """What the next change names as `prev`."""
    return hashlib.sha256(PREFIX + body).digest()


# --- signing -------------------------------------------------------------------------------


def sign_change(
    identity: IdentityKeyPair,
    *,
    group_id: str,
    seq: int,
    prev: bytes,
    at: int,
    author: str,
    device: str,
    kind: Kind,
    name: str = "",
    members: Sequence[str] = (),
    admins: Sequence[str] = (),
) -> dict[str, str]:
    """A change signed by this device, as the service takes it ({"body", "signature"})."""
    obj = {
        "v": 1,
        "group_id": group_id,
        "seq": seq,
        "prev": _b64(prev) if prev else "",
        "at": at,
        "author": author,
        "device": device,
        "kind": kind,
        "name": name,
        "members": list(members),
        "admins": list(admins),
    }
    body = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return {"body": _b64(body), "signature": _b64(identity.sign(PREFIX + body))}


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One change of the chain as the service served it (structure checked, signature
    not: see `signature_valid`)."""

    group_id: str
    seq: int
    prev: bytes  # b"" for the first change of a chain
    at: int
    author: str
    device: str  # "" for the service's own entries
    kind: Kind
    name: str
    members: tuple[str, ...]
    admins: tuple[str, ...]
    body: bytes
    signature: bytes  # b"" for the service's own entries
    certificate: Mapping[str, Any] | None  # the author's device list when it was made

    @property
    def hash(self) -> bytes:
        return change_hash(self.body)


def _user_ids(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(is_user_id(v) for v in value):
        raise ChainError(f"{what} is not a list of user ids")
    if len(set(value)) != len(value):
        raise ChainError(f"{what} names a user twice")
    return tuple(cast(list[str], value))


def parse_entry(raw: object) -> Entry:
    """A chain entry of a group answer -> Entry; ChainError says what is wrong."""
    if not isinstance(raw, Mapping):
        raise ChainError("a chain entry is not an object")
    body = _unb64(raw.get("body"), "body")
    if len(body) > MAX_CHANGE_BYTES:
        raise ChainError("a chain entry is too large")
    signature = _unb64(raw.get("signature", ""), "signature")
    certificate = raw.get("certificate")
    if certificate is not None and not isinstance(certificate, Mapping):
        raise ChainError("certificate is not an object")
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ChainError("change body is not JSON") from exc
    if not isinstance(obj, dict) or set(obj) != _KEYS:
        raise ChainError("change body does not have the fields of a change")
    seq, at, kind = obj["seq"], obj["at"], obj["kind"]
    if obj["v"] != 1 or not _is_int(seq) or seq < 1 or not _is_int(at):
        raise ChainError("change body has a bad version, seq or time")
    if raw.get("seq", seq) != seq:
        raise ChainError("entry seq differs from the signed one")
    if not is_group_id(obj["group_id"]) or not is_user_id(obj["author"]):
        raise ChainError("change body has a bad group or author")
    device = obj["device"]
    if not (device == "" or is_device_id(device)) or kind not in _KINDS:
        raise ChainError("change body has a bad device or kind")
    if not isinstance(obj["name"], str):
        raise ChainError("change body has a bad name")
    prev = _unb64(obj["prev"], "prev") if obj["prev"] else b""
    if prev and len(prev) != _HASH_LEN:
        raise ChainError("prev is not a hash")
    return Entry(
        group_id=obj["group_id"],
        seq=seq,
        prev=prev,
        at=at,
        author=obj["author"],
        device=device,
        kind=cast(Kind, kind),
        name=obj["name"],
        members=_user_ids(obj["members"], "members"),
        admins=_user_ids(obj["admins"], "admins"),
        body=body,
        signature=signature,
        certificate=certificate,
    )


def signature_valid(entry: Entry, device_identity: bytes) -> bool:
    """Whether the entry's signature is the device's over its exact body."""
    if len(entry.signature) != _SIG_LEN:
        return False
    return verify_signature(device_identity, PREFIX + entry.body, entry.signature)


# --- the state a chain folds into ----------------------------------------------------------


@dataclass(frozen=True)
class Seat:
    """One member by the chain: role as the chain says, and what signatures vouch for."""

    user_id: str
    admin: bool
    verified: bool  # a trusted admin's signed change let them in (or vouched for them)
    trusted: bool  # an admin whose signed changes grow the group

    def to_json(self) -> list[Any]:
        return [self.user_id, int(self.admin), int(self.verified), int(self.trusted)]


@dataclass(frozen=True)
class ChainState:
    """A group as its chain of changes says, up to entry `seq`."""

    group_id: str
    seq: int
    head: bytes  # the hash of entry `seq`
    seats: tuple[Seat, ...]  # longest-standing first, as the service orders members

    def seat(self, user_id: str) -> Seat | None:
        for seat in self.seats:
            if seat.user_id == user_id:
                return seat
        return None

    def trusted(self, user_id: str) -> bool:
        seat = self.seat(user_id)
        return seat is not None and seat.admin and seat.trusted

    def unverified(self, listed: Iterable[str]) -> tuple[str, ...]:
        """Of the members the service lists, those no valid signed change vouches for."""
        out = []
        for user_id in listed:
            seat = self.seat(user_id)
            if seat is None or not seat.verified:
                out.append(user_id)
        return tuple(out)

    def to_json(self) -> str:
        return json.dumps([s.to_json() for s in self.seats], separators=(",", ":"))

    @classmethod
    def from_json(cls, group_id: str, seq: int, head: bytes, text: str) -> ChainState:
        rows = json.loads(text)
        seats = tuple(Seat(r[0], bool(r[1]), bool(r[2]), bool(r[3])) for r in rows)
        return cls(group_id, seq, head, seats)


def apply(state: ChainState | None, entry: Entry, *, signed: bool, group_id: str) -> ChainState:
    """The state after `entry`, a change of group `group_id`. `signed`: its signature
    is valid under a device its author's (pinned) account lists. ChainError if it
    does not follow on.

    What grows trust counts only if a trusted admin signed it (create, add,
    promote, vouch): an add anyone else made still gives its members their places
    (the service lists them, in that order) but leaves them unverified, so they get
    no sender key. What only takes away applies whoever made it (remove, dismiss),
    since the service decides who is listed anyway and must not be able to keep a
    removed member trusted by withholding a signature's certificate. A leave counts
    when the member signed it or the service recorded it (no signature, no device:
    an account was deleted).
    """
    if entry.group_id != group_id:
        raise ChainError("a change of another group")
    if state is None:
        if entry.prev or entry.kind not in ("create", "vouch"):
            raise ChainError("a chain must start with the group's creation or a vouch")
        if entry.kind == "create" and entry.seq != 1:
            raise ChainError("a group's creation is its change 1")
        return _genesis(entry, signed)
    if entry.seq != state.seq + 1 or entry.prev != state.head:
        raise ChainError(
            f"change {entry.seq} does not follow change {state.seq} (the chain was forked)"
        )
    if entry.kind == "create" or (entry.kind == "vouch" and not entry.prev):
        raise ChainError("a chain has one start")
    by_admin = signed and state.trusted(entry.author)
    seats = list(state.seats)
    named = set(entry.members)
    if entry.kind == "add":
        present = {s.user_id for s in seats}
        seats += [Seat(m, False, by_admin, False) for m in sorted(named - present)]
    elif entry.kind == "leave":
        seats = _left(state, entry, signed)
    elif entry.kind == "dismiss":
        seats = [replace(s, admin=False, trusted=False) if s.user_id in named else s for s in seats]
    elif entry.kind == "remove":  # never the author: the service refuses that (a leave)
        seats = [s for s in seats if s.user_id not in named or s.user_id == entry.author]
    elif not by_admin:
        pass  # a grant nobody trusted signed proves nothing and changes nothing
    elif entry.kind == "vouch":
        seats = _vouched(entry)
    else:  # promote: trusted as an admin only if the chain already vouches for them
        seats = [
            replace(s, admin=True, trusted=s.verified) if s.user_id in named else s for s in seats
        ]
    return ChainState(state.group_id, entry.seq, entry.hash, tuple(seats))


def _left(state: ChainState, entry: Entry, signed: bool) -> list[Seat]:
    """A member leaves: signed by them, or recorded by the service (no signature, no
    device) when their account was deleted. If they were the last admin, the
    service's rule makes the longest-standing member admin."""
    leaver = state.seat(entry.author)
    recorded = not entry.signature and not entry.device
    if leaver is None or not (signed or recorded):
        return list(state.seats)
    rest = [s for s in state.seats if s.user_id != entry.author]
    if leaver.admin and not any(s.admin for s in rest):
        return _with_heir(rest)
    return rest


def _vouched(entry: Entry) -> list[Seat]:
    """A trusted admin's vouch: the membership as the service has it (it checks a
    vouch names exactly that), in its order, every member verified."""
    admins = set(entry.admins)
    return [Seat(m, m in admins, True, m in admins) for m in entry.members]


def _genesis(entry: Entry, signed: bool) -> ChainState:
    if entry.kind == "create":
        others = [m for m in sorted(entry.members) if m != entry.author]
        seats = [Seat(entry.author, True, signed, signed)]
        seats += [Seat(m, False, signed, False) for m in others]
    else:  # the first vouch of a group made before chains
        admins = set(entry.admins)
        ok = signed and entry.author in admins
        seats = [Seat(m, m in admins, ok, ok and m in admins) for m in entry.members]
    return ChainState(entry.group_id, entry.seq, entry.hash, tuple(seats))


def _with_heir(seats: list[Seat]) -> list[Seat]:
    """The service's rule: a group left without an admin gets its longest-standing
    member as admin. Not a signed promotion, so trusted only if that member is
    verified (the service can only trigger the rule, never pick the heir)."""
    if not seats or any(s.admin for s in seats):
        return seats
    heir = seats[0]
    return [replace(heir, admin=True, trusted=heir.verified), *seats[1:]]
