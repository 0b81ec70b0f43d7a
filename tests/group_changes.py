"""Test support (holds no tests): signed group changes, made as a member's device
makes them (docs/API.md, "Signed group changes"), in their wire form
{"body", "signature"} or read back as the service reads them."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey

from parley_server.logic.group_changes import PREFIX, SignedChange, canonical, read_change
from parley_server.logic.ports import Caller
from parley_server.models.groups import Group

__all__ = ["AT", "Signer", "body_of", "read", "sign", "signed_body"]

AT = 1_800_000_000_000  # the signer's clock (ms): shown, never trusted


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def signed_body(key: SigningKey, body: bytes) -> dict[str, str]:
    """Any body (well-formed or not) signed by `key`, in its wire form."""
    return {"body": _b64(body), "signature": _b64(key.sign(PREFIX + body).signature)}


def body_of(
    *,
    group_id: str,
    seq: int,
    prev: bytes,
    author: str,
    device: str,
    kind: str,
    name: str = "",
    members: Sequence[str] = (),
    admins: Sequence[str] = (),
    at: int = AT,
) -> dict[str, Any]:
    """A change's JSON object, every field as the spec has it."""
    return {
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


def sign(key: SigningKey, **fields: Any) -> dict[str, str]:
    """A change (the fields of `body_of`) signed by `key`, in its wire form."""
    return signed_body(key, canonical(body_of(**fields)))


def read(wire: dict[str, str]) -> SignedChange:
    """A wire change read as the service reads it (structure checked)."""
    return read_change(wire["body"], wire["signature"])


@dataclass
class Signer:
    """A member's device: its ids and the identity key its device list gives it."""

    user_id: str
    device_id: str
    key: SigningKey

    def wire(
        self,
        kind: str,
        group_id: str,
        *,
        seq: int,
        prev: bytes,
        name: str = "",
        members: Sequence[str] = (),
        admins: Sequence[str] = (),
        at: int = AT,
    ) -> dict[str, str]:
        return sign(
            self.key,
            group_id=group_id,
            seq=seq,
            prev=prev,
            author=self.user_id,
            device=self.device_id,
            kind=kind,
            name=name,
            members=members,
            admins=admins,
            at=at,
        )

    @property
    def caller(self) -> Caller:
        return Caller(self.user_id, self.device_id)

    def change(self, kind: str, group_id: str, **fields: Any) -> SignedChange:
        return read(self.wire(kind, group_id, **fields))

    def next(self, kind: str, group: Group, **fields: Any) -> SignedChange:
        """A change that follows on from `group` as the service holds it."""
        return self.change(kind, group.group_id, seq=group.rev + 1, prev=group.head_hash, **fields)

    def vouch(self, group: Group) -> SignedChange:
        """This admin's vouch for `group`'s membership as it is."""
        return self.next("vouch", group, members=group.member_ids, admins=group.admin_ids)

    def create(self, group_id: str, name: str, members: Sequence[str] = ()) -> SignedChange:
        return self.change("create", group_id, seq=1, prev=b"", name=name, members=sorted(members))
