"""What the service's HTTP answers hold, read and checked: key bundles, groups,
group summaries and device lines, and the base64 the service writes bytes in.
A malformed answer raises ApiError "bad_answer"; a malformed line in a list is
skipped with a warning."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar

from parley.crypto import PreKeyBundle
from parley.errors import ApiError
from parley.ids import is_device_id, is_group_id, is_user_id
from parley.models import Group, LinkedDevice

__all__ = [
    "DeviceBundle",
    "GroupSummary",
    "KeyBundles",
    "b64",
    "is_count",
    "parse_bundle",
    "parse_device",
    "parse_device_list",
    "parse_group",
    "parse_lines",
    "parse_summary",
    "unb64",
]

log = logging.getLogger("parley.api")

_GROUP_ROLES = frozenset({"admin", "member"})

_T = TypeVar("_T")


def b64(data: bytes) -> str:
    """Standard base64 with padding (the wire's encoding)."""
    return base64.b64encode(data).decode()


def unb64(text: object, length: int | None = None) -> bytes:
    """Strict standard base64; ValueError on anything else (or the wrong decoded length)."""
    if not isinstance(text, str):
        raise ValueError("expected a base64 string")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("bad base64") from exc
    if length is not None and len(data) != length:
        raise ValueError(f"expected {length} bytes, got {len(data)}")
    return data


@dataclass(frozen=True)
class DeviceBundle:
    device_id: str
    bundle: PreKeyBundle


@dataclass(frozen=True)
class KeyBundles:
    """GET /v1/keys/{user_id}: one bundle per device and the account's signed device
    list as sent (`{"body", "signature"}`, verified by `parley.devices.lists`), or
    None when the account has published none."""

    devices: list[DeviceBundle]
    device_list: dict[str, Any] | None


def parse_device_list(answer: dict[str, Any]) -> dict[str, Any] | None:
    """The `device_list` of an answer as sent (unverified); ApiError "bad_answer" if it
    is neither an object nor null."""
    raw = answer.get("device_list")
    if raw is not None and not isinstance(raw, dict):
        raise ApiError(200, "bad_answer", "device_list is neither an object nor null")
    return raw


@dataclass(frozen=True)
class GroupSummary:
    """One line of GET /v1/groups."""

    group_id: str
    name: str
    version: int
    member_count: int
    role: str  # "admin" | "member"


def parse_lines(
    answer: dict[str, Any], key: str, parse: Callable[[Any], _T], what: str
) -> list[_T]:
    """The `key` list of an answer, each line parsed; malformed lines are skipped."""
    lines = answer.get(key)
    if not isinstance(lines, list):
        raise ApiError(200, "bad_answer", f"{what} answer without a list")
    out: list[_T] = []
    for raw in lines:
        try:
            out.append(parse(raw))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipped a malformed %s line: %s", what, exc)
    return out


def parse_bundle(raw: Any) -> DeviceBundle:
    if not isinstance(raw, dict):
        raise ValueError("bundle is not an object")
    device_id = raw["device_id"]
    if not is_device_id(device_id):
        raise ValueError("bad device id")
    signed = raw["signed_prekey"]
    if not isinstance(signed, dict):
        raise ValueError("signed prekey is not an object")
    otk = raw.get("one_time_prekey")
    if otk is not None and not isinstance(otk, dict):
        raise ValueError("one-time prekey is not an object")
    return DeviceBundle(
        device_id,
        PreKeyBundle(
            identity_key=unb64(raw["identity_key"], 32),
            signed_prekey_id=_key_id(signed["key_id"]),
            signed_prekey=unb64(signed["public_key"], 32),
            signed_prekey_signature=unb64(signed["signature"], 64),
            one_time_prekey_id=_key_id(otk["key_id"]) if otk else None,
            one_time_prekey=unb64(otk["public_key"], 32) if otk else None,
        ),
    )


def parse_group(answer: Any, group_id: str | None = None) -> Group:
    """A group answer of the service -> Group (ApiError "bad_answer" if malformed,
    or if it is not the group that was asked for)."""
    try:
        if not isinstance(answer, dict):
            raise ValueError("not an object")
        gid, name, version = answer["group_id"], answer["name"], answer["version"]
        members, admins = answer["members"], answer["admins"]
        created_by, created_at = answer.get("created_by"), answer.get("created_at")
        rev, head = answer.get("rev", 0), answer.get("head", 0)
        if not is_group_id(gid) or (group_id is not None and gid != group_id):
            raise ValueError("bad group id")
        if not isinstance(name, str) or not 0 < len(name) <= 200:
            raise ValueError("bad name")
        if not is_count(version) or version < 1:
            raise ValueError("bad version")
        if not (isinstance(members, list) and all(is_user_id(m) for m in members)):
            raise ValueError("bad member list")
        if not (isinstance(admins, list) and all(a in members for a in admins)):
            raise ValueError("bad admin list")
        if created_by is not None and not is_user_id(created_by):
            raise ValueError("bad creator")
        if created_at is not None and not is_count(created_at):
            raise ValueError("bad creation time")
        if not (is_count(rev) and is_count(head)):
            raise ValueError("bad rev or head")
    except (KeyError, ValueError) as exc:
        raise ApiError(200, "bad_answer", f"malformed group answer: {exc}") from exc
    return Group(
        group_id=gid,
        name=name,
        version=version,
        members=tuple(dict.fromkeys(members)),
        admins=tuple(dict.fromkeys(admins)),
        created_by=created_by,
        created_at=created_at,
        rev=rev,
        head=head,
    )


def parse_summary(raw: Any) -> GroupSummary:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    gid, name, version = raw.get("group_id"), raw.get("name"), raw.get("version")
    count, role = raw.get("member_count"), raw.get("role")
    if not (
        is_group_id(gid)
        and isinstance(name, str)
        and is_count(version)
        and is_count(count)
        and role in _GROUP_ROLES
    ):
        raise ValueError(f"bad group summary {str(gid)[:40]!r}")
    return GroupSummary(gid, name, version, count, str(role))


def parse_device(raw: Any) -> LinkedDevice:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    device_id, created_at, push = raw.get("device_id"), raw.get("created_at"), raw.get("push")
    current, ready = raw.get("current"), raw.get("ready")
    role, key_index = raw.get("role"), raw.get("key_index")
    if (
        not is_device_id(device_id)
        or not is_count(created_at)
        or not isinstance(current, bool)
        or not isinstance(ready, bool)
        or not (push is None or isinstance(push, str))
        or role not in (None, "primary", "companion")
        or not (key_index is None or is_count(key_index))
    ):
        raise ValueError(f"bad device line {str(device_id)[:40]!r}")
    return LinkedDevice(device_id, created_at, current, ready, push, role, key_index)


def is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _key_id(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF_FFFF:
        raise ValueError("bad key id")
    return value
