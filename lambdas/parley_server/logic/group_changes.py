"""Signed group changes, read and verified (pure functions).

Every change to who is in a group is a document the device making it signs
(docs/API.md, "Signed group changes"): canonical JSON with exactly these fields

    {"v": 1, "group_id", "seq", "prev", "at", "author", "device", "kind",
     "name", "members", "admins"}

signed as `Ed25519(device identity, PREFIX + body)`; its hash, which the next
change names as `prev`, is `SHA-256(PREFIX + body)`. On the wire a change is
{"body": b64(body), "signature": b64(signature)}. The body is verified as the
exact bytes received and parsed after; nothing is re-serialised to verify.

`read_change` checks the structure alone (every rule that needs no group);
`verify` checks the signature under a device's identity key; `service_leave`
writes the unsigned leave the service records for a deleted account. Checking a
change against its group is logic/groups.py's part.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Literal, get_args

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from parley_server.ids import is_device_id, is_group_id, is_user_id
from parley_server.models.errors import BadRequest, PayloadTooLarge
from parley_server.models.groups import MAX_CHANGE_BYTES, MAX_IDS_PER_REQUEST, group_name

__all__ = [
    "CODE",
    "HASH_BYTES",
    "KINDS",
    "MAX_CHANGE_BYTES",
    "PREFIX",
    "SIGNATURE_BYTES",
    "Kind",
    "SignedChange",
    "canonical",
    "change_hash",
    "read_change",
    "service_leave",
    "verify",
]

PREFIX = b"parley/group-change/v1\x00"
CODE = "invalid_group_change"
HASH_BYTES = 32
SIGNATURE_BYTES = 64
MAX_INT = 2**53  # JSON numbers every client reads exactly
_B64_MAX = 4 * -(-MAX_CHANGE_BYTES // 3)

Kind = Literal["create", "add", "remove", "leave", "promote", "dismiss", "vouch"]
KINDS: tuple[Kind, ...] = get_args(Kind)
_KEYS = frozenset(
    {"v", "group_id", "seq", "prev", "at", "author", "device", "kind", "name", "members", "admins"}
)
_ONE_MEMBER: frozenset[str] = frozenset({"remove", "promote", "dismiss"})


class SignedChange(msgspec.Struct, frozen=True):
    """A change whose structure was checked (its signature is `verify`'s part)."""

    group_id: str
    seq: int
    prev: bytes  # b"" for the first change of a chain
    at: int  # ms, the signer's clock: shown, never trusted for order
    author: str
    device: str
    kind: Kind
    name: str  # create: the group's name, trimmed; "" for every other kind
    members: tuple[str, ...]
    admins: tuple[str, ...]
    body: bytes  # the exact bytes signed
    signature: bytes

    @property
    def hash(self) -> bytes:
        return change_hash(self.body)

    @property
    def target(self) -> str:
        """The one member a remove, promote or dismiss names."""
        if self.kind not in _ONE_MEMBER:
            raise ValueError(f"a {self.kind} change names no single member")
        return self.members[0]


def change_hash(body: bytes) -> bytes:
    """SHA-256(PREFIX + body): what the next change names as `prev`."""
    return hashlib.sha256(PREFIX + body).digest()


def canonical(obj: Any) -> bytes:
    """The one byte form of a change's JSON: sorted keys, no spaces, ASCII escapes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _invalid(message: str, field: str) -> BadRequest:
    return BadRequest(message, code=CODE, field=field)


def _b64(value: object, field: str) -> bytes:
    """Standard base64 with padding, in its one canonical form."""
    if not isinstance(value, str):
        raise _invalid(f"{field} must be a base64 string", field)
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise _invalid(f"{field} is not valid base64", field) from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise _invalid(f"{field} is not canonical base64 (with padding)", field)
    return raw


def _int(value: object, field: str, *, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_INT:
        raise _invalid(f"{field} must be an integer of at least {least}", field)
    return value


def _user_ids(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _invalid(f"{field} must be a list of user ids", field)
    for item in value:
        if not is_user_id(item):
            raise _invalid(f"{field} must hold user ids (32 lowercase hex)", field)
    if len(set(value)) != len(value):
        raise _invalid(f"{field} names a user more than once", field)
    return tuple(value)


def read_change(body_b64: str, signature_b64: str) -> SignedChange:
    """Decode a wire change and check its structure, strictly: the exact fields and
    their types, `v` 1, the ids' formats, and the rules of its kind. BadRequest
    (`invalid_group_change`, naming the field) or PayloadTooLarge if not."""
    if isinstance(body_b64, str) and len(body_b64) > _B64_MAX:
        raise PayloadTooLarge(
            f"change.body is larger than {MAX_CHANGE_BYTES} bytes",
            field="change.body",
            limit=MAX_CHANGE_BYTES,
        )
    body = _b64(body_b64, "change.body")
    if len(body) > MAX_CHANGE_BYTES:
        raise PayloadTooLarge(
            f"change.body is larger than {MAX_CHANGE_BYTES} bytes",
            field="change.body",
            limit=MAX_CHANGE_BYTES,
        )
    signature = _b64(signature_b64, "change.signature")
    if len(signature) != SIGNATURE_BYTES:
        raise _invalid(f"change.signature must be {SIGNATURE_BYTES} bytes", "change.signature")
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _invalid("change.body is not UTF-8 JSON", "change.body") from exc
    if not isinstance(obj, dict):
        raise _invalid("change.body must be a JSON object", "change.body")
    if set(obj) != _KEYS:
        raise _invalid(
            f"change.body must have exactly the fields {', '.join(sorted(_KEYS))}", "change.body"
        )
    try:
        again = canonical(obj)
    except (ValueError, RecursionError) as exc:
        raise _invalid("change.body is not canonical JSON", "change.body") from exc
    if again != body:
        raise _invalid(
            'change.body must be canonical JSON (sorted keys, separators "," and ":",'
            " ASCII escapes)",
            "change.body",
        )
    if isinstance(obj["v"], bool) or obj["v"] != 1 or not isinstance(obj["v"], int):
        raise _invalid("change.v must be 1", "change.v")
    if not is_group_id(obj["group_id"]):
        raise _invalid("change.group_id must be 32 lowercase hex characters", "change.group_id")
    seq = _int(obj["seq"], "change.seq", least=1)
    at = _int(obj["at"], "change.at", least=0)
    prev_text = obj["prev"]
    if not isinstance(prev_text, str):
        raise _invalid("change.prev must be a string", "change.prev")
    prev = _b64(prev_text, "change.prev") if prev_text else b""
    if prev_text and len(prev) != HASH_BYTES:
        raise _invalid(
            f'change.prev must be "" or base64 of {HASH_BYTES} bytes (a hash)', "change.prev"
        )
    author, device = obj["author"], obj["device"]
    if not is_user_id(author):
        raise _invalid("change.author must be a user id (32 lowercase hex)", "change.author")
    if not is_device_id(device):
        raise _invalid("change.device must be a device id (16 lowercase hex)", "change.device")
    kind = obj["kind"]
    if kind not in KINDS:
        raise _invalid(f"change.kind must be one of {', '.join(KINDS)}", "change.kind")
    name = obj["name"]
    if not isinstance(name, str):
        raise _invalid("change.name must be a string", "change.name")
    members = _user_ids(obj["members"], "change.members")
    admins = _user_ids(obj["admins"], "change.admins")
    name = _kind_rules(kind, seq, prev, author, name, members, admins)
    return SignedChange(
        group_id=obj["group_id"],
        seq=seq,
        prev=prev,
        at=at,
        author=author,
        device=device,
        kind=kind,
        name=name,
        members=members,
        admins=admins,
        body=body,
        signature=signature,
    )


def _kind_rules(
    kind: Kind,
    seq: int,
    prev: bytes,
    author: str,
    name: str,
    members: tuple[str, ...],
    admins: tuple[str, ...],
) -> str:
    """What each kind's fields must be; the name as kept (trimmed for a create)."""
    if kind == "create":
        if seq != 1:
            raise _invalid(
                "a create is the chain's first change: change.seq must be 1", "change.seq"
            )
        if prev:
            raise _invalid(
                'a create is the chain\'s first change: change.prev must be ""', "change.prev"
            )
        name = group_name(name, "change.name", CODE)
    elif name:
        raise _invalid(f'change.name must be "" for a {kind}', "change.name")
    if kind != "vouch" and admins:
        raise _invalid(f"change.admins must be [] for a {kind}", "change.admins")
    if kind in ("create", "add"):
        _sorted_others(members, author, least=0 if kind == "create" else 1)
    elif kind in _ONE_MEMBER:
        if len(members) != 1:
            raise _invalid(f"a {kind} names exactly one member", "change.members")
        if members[0] == author:
            hint = " (leave instead)" if kind == "remove" else ""
            raise _invalid(f"a {kind} cannot name its author{hint}", "change.members")
    elif kind == "leave":
        if members:
            raise _invalid("change.members must be [] for a leave", "change.members")
    else:  # vouch: every member, longest-standing first; every admin, in that order
        if not members:
            raise _invalid("a vouch names every member", "change.members")
        if not admins:
            raise _invalid("a vouch names every admin", "change.admins")
        place = {uid: n for n, uid in enumerate(members)}
        if any(uid not in place for uid in admins):
            raise _invalid("change.admins must all be in change.members", "change.admins")
        if [place[uid] for uid in admins] != sorted(place[uid] for uid in admins):
            raise _invalid("change.admins must be in the order of change.members", "change.admins")
    return name


def _sorted_others(members: tuple[str, ...], author: str, *, least: int) -> None:
    if len(members) > MAX_IDS_PER_REQUEST:
        raise PayloadTooLarge(
            f"one change may name at most {MAX_IDS_PER_REQUEST} users",
            field="change.members",
            limit=MAX_IDS_PER_REQUEST,
        )
    if len(members) < least:
        raise _invalid("change.members must name at least one user", "change.members")
    if list(members) != sorted(members):
        raise _invalid("change.members must be sorted ascending", "change.members")
    if author in members:
        raise _invalid("change.members must not name the author", "change.members")


def verify(change: SignedChange, identity: bytes) -> None:
    """The signature is the device's (`identity`, its Ed25519 key) over PREFIX + body;
    BadRequest `invalid_signature` if not."""
    try:
        VerifyKey(identity).verify(PREFIX + change.body, change.signature)
    except (BadSignatureError, ValueError, TypeError) as exc:
        raise BadRequest(
            "change.signature is not the author device's signature of the change",
            code="invalid_signature",
            field="change.signature",
        ) from exc


def service_leave(group_id: str, user_id: str, *, seq: int, prev: bytes, at: int) -> bytes:
    """The body of the unsigned leave the service records when an account is deleted:
    a change like any other, with device "" (its signature is empty)."""
    return canonical(
        {
            "v": 1,
            "group_id": group_id,
            "seq": seq,
            "prev": base64.b64encode(prev).decode("ascii") if prev else "",
            "at": at,
            "author": user_id,
            "device": "",
            "kind": "leave",
            "name": "",
            "members": [],
            "admins": [],
        }
    )
