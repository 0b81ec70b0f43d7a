"""The signed device list: which devices the account's primary vouches for.

Body (canonical JSON, signed as bytes):

    {"user_id": <32 hex>, "version": <int >= 1>, "ts": <int ms>,
     "account_identity": <b64 32 bytes>,
     "devices": [{"device_id": <16 hex>, "key_index": <int >= 0>,
                  "identity": <b64 32 bytes>}, ...]}

`signature = Ed25519(primary, b"parley/device-list/v1\\x00" + body)`; on the wire
`{"body": b64(body), "signature": b64(signature)}`. The verifier checks the exact
bytes it received, then parses them: nothing is re-serialised to verify.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from parley.crypto import IdentityKeyPair
from parley.crypto.keys import verify_signature
from parley.errors import DeviceListError
from parley.ids import is_device_id, is_user_id

__all__ = [
    "LIST_PREFIX",
    "MAX_COMPANIONS",
    "MAX_LIST_BYTES",
    "DeviceList",
    "ListedDevice",
    "canonical",
    "sign_list",
    "verify_list",
]

LIST_PREFIX = b"parley/device-list/v1\x00"
# The service's `max_companions`: one primary and at most this many companions.
MAX_COMPANIONS = 4
# A list of five devices is well under 1 KiB; anything far bigger is refused unread.
MAX_LIST_BYTES = 4096
_KEY_LEN = 32
_SIG_LEN = 64


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The bytes a JSON body is signed as."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: object, what: str, length: int | None = None, limit: int = 0) -> bytes:
    if not isinstance(value, str):
        raise DeviceListError(f"{what} is not a base64 string")
    if limit and len(value) > limit:
        raise DeviceListError(f"{what} is too large ({len(value)} characters)")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DeviceListError(f"{what} is not valid base64") from exc
    if length is not None and len(data) != length:
        raise DeviceListError(f"{what} must be {length} bytes, got {len(data)}")
    return data


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ListedDevice:
    device_id: str
    key_index: int
    identity: bytes  # the device's Ed25519 identity public key

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "key_index": self.key_index,
            "identity": _b64(self.identity),
        }


@dataclass(frozen=True)
class DeviceList:
    """A verified device list, with the exact bytes it was verified as."""

    user_id: str
    version: int
    ts: int
    account_identity: bytes
    devices: tuple[ListedDevice, ...]
    body: bytes
    signature: bytes

    @property
    def device_ids(self) -> frozenset[str]:
        return frozenset(d.device_id for d in self.devices)

    @property
    def primary(self) -> ListedDevice:
        return self.devices[0]

    @property
    def max_key_index(self) -> int:
        return max(d.key_index for d in self.devices)

    def identity_of(self, device_id: str) -> bytes | None:
        for device in self.devices:
            if device.device_id == device_id:
                return device.identity
        return None

    def wire(self) -> dict[str, str]:
        return {"body": _b64(self.body), "signature": _b64(self.signature)}


def sign_list(
    primary: IdentityKeyPair,
    user_id: str,
    version: int,
    devices: Iterable[ListedDevice],
    ts: int,
) -> DeviceList:
    """A new list signed by the primary (checked as a verifier would before it goes)."""
    entries = sorted(devices, key=lambda d: d.key_index)
    obj = {
        "user_id": user_id,
        "version": version,
        "ts": ts,
        "account_identity": _b64(primary.public_key),
        "devices": [d.to_json() for d in entries],
    }
    body = canonical(obj)
    signature = primary.sign(LIST_PREFIX + body)
    return verify_list(
        {"body": _b64(body), "signature": _b64(signature)},
        user_id=user_id,
        account_identity=primary.public_key,
    )


def verify_list(
    wire: object,
    *,
    user_id: str,
    account_identity: bytes | None = None,
    max_companions: int = MAX_COMPANIONS,
) -> DeviceList:
    """Verify a list as it came over the wire: the signature over the exact body bytes
    under the account identity the body names (and, when given, the one pinned),
    then its structure. DeviceListError says what is wrong."""
    if not isinstance(wire, Mapping):
        raise DeviceListError("device list is not an object")
    body = _unb64(wire.get("body"), "device list body", limit=MAX_LIST_BYTES * 4 // 3 + 4)
    if len(body) > MAX_LIST_BYTES:
        raise DeviceListError(f"device list is too large ({len(body)} bytes)")
    signature = _unb64(wire.get("signature"), "device list signature", _SIG_LEN)
    if account_identity is not None and not verify_signature(
        account_identity, LIST_PREFIX + body, signature
    ):
        # pinned: the bytes are checked before anything in them is read
        raise DeviceListError(
            "device list signature does not verify under the pinned account identity"
        )
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DeviceListError("device list body is not JSON") from exc
    if not isinstance(obj, dict):
        raise DeviceListError("device list body is not an object")
    claimed = _unb64(obj.get("account_identity"), "account identity", _KEY_LEN)
    if account_identity is not None and claimed != account_identity:
        raise DeviceListError("device list is signed for another account identity")
    if account_identity is None and not verify_signature(claimed, LIST_PREFIX + body, signature):
        raise DeviceListError("device list signature does not verify")
    return _structure(obj, body, signature, claimed, user_id, max_companions)


def _structure(
    obj: dict[str, Any],
    body: bytes,
    signature: bytes,
    account_identity: bytes,
    user_id: str,
    max_companions: int,
) -> DeviceList:
    if obj.get("user_id") != user_id or not is_user_id(obj.get("user_id")):
        raise DeviceListError("device list names another user")
    version, ts, raw = obj.get("version"), obj.get("ts"), obj.get("devices")
    if not _is_int(version) or version < 1:
        raise DeviceListError("device list version must be an integer >= 1")
    if not _is_int(ts) or ts < 0:
        raise DeviceListError("device list timestamp must be a non-negative integer")
    if not isinstance(raw, list) or not raw:
        raise DeviceListError("device list has no devices")
    if len(raw) > 1 + max_companions:
        raise DeviceListError(f"device list has {len(raw)} devices (at most {1 + max_companions})")
    devices: list[ListedDevice] = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise DeviceListError("device list entry is not an object")
        device_id, key_index = entry.get("device_id"), entry.get("key_index")
        if not is_device_id(device_id):
            raise DeviceListError("device list entry has a bad device id")
        if not _is_int(key_index) or key_index < 0:
            raise DeviceListError("device list entry has a bad key index")
        identity = _unb64(entry.get("identity"), "device identity", _KEY_LEN)
        devices.append(ListedDevice(device_id, key_index, identity))
    indexes = [d.key_index for d in devices]
    if indexes != sorted(indexes):
        raise DeviceListError("device list is not sorted by key index")
    if len(set(indexes)) != len(indexes):
        raise DeviceListError("device list repeats a key index")
    if len({d.device_id for d in devices}) != len(devices):
        raise DeviceListError("device list repeats a device id")
    if devices[0].key_index != 0:
        raise DeviceListError("device list has no primary (key index 0)")
    if devices[0].identity != account_identity:
        raise DeviceListError("device list's primary is not the account identity")
    return DeviceList(
        user_id=str(obj["user_id"]),
        version=int(version),
        ts=int(ts),
        account_identity=account_identity,
        devices=tuple(devices),
        body=body,
        signature=signature,
    )
