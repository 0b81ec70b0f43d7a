"""Signed device lists and ADV signatures, read and verified (pure functions).

An account's devices are what its primary device signs: a JSON body listing each
device with its key index and identity key, signed with the account identity
(the primary's Ed25519 identity key). Linking a companion adds the primary's
account signature over the companion's details and the companion's own device
signature over those plus the account identity. Every signed thing travels as
the exact bytes that were signed (base64'd): these functions verify those bytes
first and parse them after; nothing is ever re-serialised to verify.

Byte formats (docs/API.md, "Linked devices"): a domain-separation prefix (ASCII
and one NUL byte) before every signed message, so a signature made for one
purpose can never stand for another.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from parley_server.ids import is_device_id, is_user_id
from parley_server.models.errors import BadRequest, Conflict, PayloadTooLarge

__all__ = [
    "ACCOUNT_PREFIX",
    "DEVICE_PREFIX",
    "HMAC_PREFIX",
    "LIST_PREFIX",
    "MAX_SIGNED_BYTES",
    "Details",
    "DeviceList",
    "ListedDevice",
    "decode_b64",
    "read_details",
    "read_list",
    "verify_account_signature",
    "verify_device_signature",
]

LIST_PREFIX = b"parley/device-list/v1\x00"
ACCOUNT_PREFIX = b"parley/adv-account/v1\x00"
HMAC_PREFIX = b"parley/adv-hmac/v1\x00"
DEVICE_PREFIX = b"parley/adv-device/v1\x00"

KEY_BYTES = 32
SIGNATURE_BYTES = 64
HMAC_BYTES = 32
# a list of five devices is ~700 bytes; far above anything valid, small enough to refuse junk
MAX_SIGNED_BYTES = 4096
MAX_INT = 2**53  # JSON numbers every client reads exactly

_LIST_KEYS = frozenset({"user_id", "version", "ts", "account_identity", "devices"})
_ENTRY_KEYS = frozenset({"device_id", "key_index", "identity"})
_DETAILS_KEYS = frozenset({"user_id", "device_id", "key_index", "identity", "ts"})


class ListedDevice(msgspec.Struct, frozen=True):
    device_id: str
    key_index: int
    identity: bytes


class DeviceList(msgspec.Struct, frozen=True):
    """A device list whose signature was verified under its account identity."""

    user_id: str
    version: int
    ts: int
    account_identity: bytes
    devices: tuple[ListedDevice, ...]
    body: bytes  # the exact bytes signed
    signature: bytes

    @property
    def device_ids(self) -> list[str]:
        return [d.device_id for d in self.devices]

    @property
    def companions(self) -> int:
        return len(self.devices) - 1

    @property
    def max_key_index(self) -> int:
        return max(d.key_index for d in self.devices)


class Details(msgspec.Struct, frozen=True):
    """A companion's details as the primary signed them (the ADV account signature)."""

    user_id: str
    device_id: str
    key_index: int
    identity: bytes
    ts: int
    raw: bytes  # the exact bytes signed


def _invalid(message: str, field: str, code: str = "invalid_device_list") -> BadRequest:
    return BadRequest(message, code=code, field=field)


def decode_b64(
    value: object, field: str, *, size: int | None = None, code: str = "invalid_device_list"
) -> bytes:
    """Standard base64 with padding; `size` bytes when given."""
    if not isinstance(value, str):
        raise _invalid(f"{field} must be a base64 string", field, code)
    if len(value) > (MAX_SIGNED_BYTES * 4) // 3 + 4:
        raise PayloadTooLarge(f"{field} is larger than {MAX_SIGNED_BYTES} bytes", field=field)
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise _invalid(f"{field} is not valid base64", field, code) from exc
    if size is not None and len(raw) != size:
        raise _invalid(f"{field} must be {size} bytes, not {len(raw)}", field, code)
    return raw


def _verify(key: bytes, message: bytes, signature: bytes, what: str, field: str) -> None:
    try:
        VerifyKey(key).verify(message, signature)
    except (BadSignatureError, ValueError) as exc:
        raise BadRequest(f"{what}", code="invalid_signature", field=field) from exc


def _json_object(raw: bytes, field: str, keys: frozenset[str], code: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _invalid(f"{field} is not UTF-8 JSON", field, code) from exc
    if not isinstance(obj, dict):
        raise _invalid(f"{field} must be a JSON object", field, code)
    if set(obj) != keys:
        raise _invalid(
            f"{field} must have exactly the fields {', '.join(sorted(keys))}", field, code
        )
    return obj


def _int(value: object, field: str, code: str, *, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_INT:
        raise _invalid(f"{field} must be an integer of at least {least}", field, code)
    return value


def _key(value: object, field: str, code: str) -> bytes:
    if not isinstance(value, str):
        raise _invalid(f"{field} must be a base64 string", field, code)
    return decode_b64(value, field, size=KEY_BYTES, code=code)


def read_list(
    body_b64: str,
    signature_b64: str,
    *,
    user_id: str,
    account_identity: bytes,
    max_companions: int,
) -> DeviceList:
    """Verify a wire device list ({"body", "signature"}) under the account identity,
    then parse and check its structure: it names this account and identity, its
    devices are sorted by key index with unique ids and indexes, exactly one entry
    (index 0) is the primary, whose identity is the account identity, and there are
    at most `max_companions` others. BadRequest (or PayloadTooLarge) if not."""
    body = decode_b64(body_b64, "device_list.body")
    if len(body) > MAX_SIGNED_BYTES:
        raise PayloadTooLarge(
            f"device_list.body is larger than {MAX_SIGNED_BYTES} bytes", field="device_list.body"
        )
    signature = decode_b64(signature_b64, "device_list.signature", size=SIGNATURE_BYTES)
    _verify(
        account_identity,
        LIST_PREFIX + body,
        signature,
        "device_list.signature is not the account identity's signature of the list",
        "device_list.signature",
    )
    code = "invalid_device_list"
    obj = _json_object(body, "device_list.body", _LIST_KEYS, code)
    if obj["user_id"] != user_id:
        raise _invalid("the device list names another account", "device_list.user_id")
    version = _int(obj["version"], "device_list.version", code, least=1)
    ts = _int(obj["ts"], "device_list.ts", code)
    if _key(obj["account_identity"], "device_list.account_identity", code) != account_identity:
        raise _invalid(
            "the device list names another account identity", "device_list.account_identity"
        )
    entries = obj["devices"]
    if not isinstance(entries, list) or not entries:
        raise _invalid("device_list.devices must be a non-empty array", "device_list.devices")
    if len(entries) > 1 + max_companions:
        raise Conflict(
            f"an account has at most {max_companions} linked devices besides the primary",
            code="too_many_devices",
        )
    devices: list[ListedDevice] = []
    for n, entry in enumerate(entries):
        field = f"device_list.devices[{n}]"
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            raise _invalid(
                f"{field} must have exactly the fields device_id, identity, key_index", field
            )
        device_id = entry["device_id"]
        if not isinstance(device_id, str) or not is_device_id(device_id):
            raise _invalid(f"{field}.device_id must be 16 lowercase hex characters", field)
        devices.append(
            ListedDevice(
                device_id=device_id,
                key_index=_int(entry["key_index"], f"{field}.key_index", code),
                identity=_key(entry["identity"], f"{field}.identity", code),
            )
        )
    indexes = [d.key_index for d in devices]
    if indexes != sorted(set(indexes)):
        raise _invalid(
            "device_list.devices must be sorted by key_index, each used once",
            "device_list.devices",
        )
    if len({d.device_id for d in devices}) != len(devices):
        raise _invalid("device_list.devices repeats a device id", "device_list.devices")
    primary = devices[0]
    if primary.key_index != 0 or primary.identity != account_identity:
        raise _invalid(
            "the device list must start with the primary: key_index 0, the account identity",
            "device_list.devices",
        )
    if any(d.identity == account_identity for d in devices[1:]):
        raise _invalid("a companion cannot have the account identity", "device_list.devices")
    return DeviceList(
        user_id=user_id,
        version=version,
        ts=ts,
        account_identity=account_identity,
        devices=tuple(devices),
        body=body,
        signature=signature,
    )


def read_details(details_b64: str) -> Details:
    """Parse an ADV details object (not yet verified: see verify_account_signature)."""
    code = "invalid_details"
    raw = decode_b64(details_b64, "details", code=code)
    if len(raw) > MAX_SIGNED_BYTES:
        raise PayloadTooLarge(f"details is larger than {MAX_SIGNED_BYTES} bytes", field="details")
    obj = _json_object(raw, "details", _DETAILS_KEYS, code)
    user_id, device_id = obj["user_id"], obj["device_id"]
    if not isinstance(user_id, str) or not is_user_id(user_id):
        raise _invalid("details.user_id must be 32 lowercase hex characters", "details", code)
    if not isinstance(device_id, str) or not is_device_id(device_id):
        raise _invalid("details.device_id must be 16 lowercase hex characters", "details", code)
    return Details(
        user_id=user_id,
        device_id=device_id,
        key_index=_int(obj["key_index"], "details.key_index", code, least=1),
        identity=_key(obj["identity"], "details.identity", code),
        ts=_int(obj["ts"], "details.ts", code),
        raw=raw,
    )


def verify_account_signature(details: Details, signature: bytes, account_identity: bytes) -> None:
    """The primary's approval: sign(primary, ACCOUNT_PREFIX + details)."""
    _verify(
        account_identity,
        ACCOUNT_PREFIX + details.raw,
        signature,
        "account_signature is not the account identity's signature of the details",
        "account_signature",
    )


def verify_device_signature(
    details: bytes,
    account_signature: bytes,
    account_identity: bytes,
    device_signature: bytes,
    companion_identity: bytes,
) -> None:
    """The companion's consent: sign(companion, DEVICE_PREFIX + details + account
    signature + account identity)."""
    _verify(
        companion_identity,
        DEVICE_PREFIX + details + account_signature + account_identity,
        device_signature,
        "device_signature is not the new device's signature of its approval",
        "device_signature",
    )
