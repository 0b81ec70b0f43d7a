"""End-to-end encryption keys: upload, count, and bundle claims.

The server checks what it can without reading anything secret: key sizes, that
the signed prekey really is signed by the identity key, and that a device's
identity key never silently changes. A bundle claim consumes one one-time prekey
per device and records nothing else: who counts as whose contact is each user's
own say (logic/contacts.py), never a consequence of fetching their keys.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from parley_server.ids import is_user_id
from parley_server.logic.messaging import deliver
from parley_server.models.errors import BadRequest, NotFound, ParleyError, PayloadTooLarge
from parley_server.store.prekeys import OneTimePrekey, SignedPrekey

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.logic.ports import Caller, ConnectionsPort, GatewayPort
    from parley_server.store.prekeys import PrekeysStore
    from parley_server.store.ratelimits import RateLimiter
    from parley_server.store.users import UsersStore

__all__ = [
    "MAX_KEY_ID",
    "Bundle",
    "CheckedKeys",
    "DeviceBundle",
    "KeyUpload",
    "PrekeyIn",
    "SignedPrekeyIn",
    "b64",
    "check_upload",
    "claim_bundle",
    "count_one_time",
    "report_low",
    "store_keys",
    "upload_keys",
]

KEY_BYTES = 32
SIGNATURE_BYTES = 64
MAX_KEY_ID = 2**31 - 1


class PrekeyIn(msgspec.Struct, frozen=True):
    key_id: int
    public_key: str  # base64


class SignedPrekeyIn(msgspec.Struct, frozen=True):
    key_id: int
    public_key: str  # base64
    signature: str  # base64


class KeyUpload(msgspec.Struct, frozen=True):
    identity_key: str  # base64
    signed_prekey: SignedPrekeyIn
    one_time_prekeys: tuple[PrekeyIn, ...]


class DeviceBundle(msgspec.Struct, frozen=True):
    device_id: str
    identity_key: bytes
    signed_prekey: SignedPrekey
    one_time_prekey: OneTimePrekey | None
    # one-time prekeys the device has left after this claim, when fewer than
    # `Limits.prekeys_low_below` (None: enough)
    left: int | None = None


class Bundle(msgspec.Struct, frozen=True):
    user_id: str
    devices: tuple[DeviceBundle, ...]

    @property
    def low(self) -> tuple[DeviceBundle, ...]:
        """The devices this claim left with few one-time prekeys (or none)."""
        return tuple(device for device in self.devices if device.left is not None)

    @property
    def drained(self) -> tuple[DeviceBundle, ...]:
        """The devices that had no one-time prekey left to give."""
        return tuple(device for device in self.devices if device.one_time_prekey is None)


def b64(data: bytes) -> str:
    """Standard base64 with padding (the wire format)."""
    return base64.b64encode(data).decode("ascii")


def _decode(value: str, size: int, field: str) -> bytes:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise BadRequest(f"{field} is not valid base64", code="invalid_key", field=field) from exc
    if len(raw) != size:
        raise BadRequest(
            f"{field} must be {size} bytes, not {len(raw)}", code="invalid_key", field=field
        )
    return raw


def _key_id(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KEY_ID:
        raise BadRequest(f"{field} must be an integer from 0 to {MAX_KEY_ID}", field=field)
    return value


class CheckedKeys(msgspec.Struct, frozen=True):
    """A key upload that passed every check (what `store_keys` writes)."""

    identity: bytes
    signed_prekey: SignedPrekey
    one_time_prekeys: tuple[OneTimePrekey, ...]


def upload_keys(
    caller: Caller,
    upload: KeyUpload,
    *,
    prekeys: PrekeysStore,
    users: UsersStore,
    limits: Limits,
) -> None:
    """Store the caller's device keys. Everything is checked before anything is written.
    A primary device's first identity key becomes the account identity (linked devices)."""
    checked = check_upload(upload, limits=limits)
    store_keys(caller, checked, prekeys=prekeys, users=users)
    roles = {d.device_id: d.role for d in users.signed_in(caller.user_id)}
    if roles.get(caller.device_id) == "primary":
        users.set_account_identity(caller.user_id, checked.identity)


def check_upload(upload: KeyUpload, *, limits: Limits) -> CheckedKeys:
    """Check a key upload without writing anything (BadRequest / PayloadTooLarge)."""
    if len(upload.one_time_prekeys) > limits.max_one_time_prekeys_per_upload:
        raise PayloadTooLarge(
            f"at most {limits.max_one_time_prekeys_per_upload} one-time prekeys per upload",
            limit=limits.max_one_time_prekeys_per_upload,
        )
    identity = _decode(upload.identity_key, KEY_BYTES, "identity_key")
    spk = upload.signed_prekey
    signed = SignedPrekey(
        key_id=_key_id(spk.key_id, "signed_prekey.key_id"),
        public_key=_decode(spk.public_key, KEY_BYTES, "signed_prekey.public_key"),
        signature=_decode(spk.signature, SIGNATURE_BYTES, "signed_prekey.signature"),
    )
    try:
        VerifyKey(identity).verify(signed.public_key, signed.signature)
    except (BadSignatureError, ValueError) as exc:
        raise BadRequest(
            "signed_prekey.signature is not the identity key's signature of the public key",
            code="invalid_signature",
        ) from exc
    one_time: dict[int, OneTimePrekey] = {}
    for index, key in enumerate(upload.one_time_prekeys):
        field = f"one_time_prekeys[{index}]"
        key_id = _key_id(key.key_id, f"{field}.key_id")
        if key_id in one_time:
            raise BadRequest(f"{field}.key_id repeats key id {key_id}", field=f"{field}.key_id")
        one_time[key_id] = OneTimePrekey(key_id, _decode(key.public_key, KEY_BYTES, field))
    return CheckedKeys(identity, signed, tuple(one_time.values()))


def store_keys(
    caller: Caller, checked: CheckedKeys, *, prekeys: PrekeysStore, users: UsersStore
) -> None:
    """Write checked keys and make the device visible (to senders once it is listed)."""
    # identity first: a device whose identity key differs is refused before any write
    prekeys.set_identity(caller.user_id, caller.device_id, checked.identity)
    prekeys.set_signed(caller.user_id, caller.device_id, checked.signed_prekey)
    prekeys.add_one_time(caller.user_id, caller.device_id, checked.one_time_prekeys)
    users.activate_device(caller.user_id, caller.device_id)


def count_one_time(caller: Caller, *, prekeys: PrekeysStore) -> int:
    """How many one-time prekeys the caller's device has left (time to upload more?)."""
    return prekeys.count_one_time(caller.user_id, caller.device_id)


def claim_bundle(
    caller: Caller,
    target: str,
    *,
    prekeys: PrekeysStore,
    users: UsersStore,
    limiter: RateLimiter,
    limits: Limits,
    now: float,
) -> Bundle:
    """One bundle per device of `target`, each consuming one one-time prekey if any are left."""
    if not is_user_id(target):
        raise BadRequest("user_id must be 32 lowercase hex characters", field="user_id")
    limiter.hit(
        "bundles", caller.user_id, limit=limits.bundle_claims_per_hour, window_s=3600, now=now
    )
    if target != caller.user_id:
        limiter.hit(
            "bundles-target",
            f"{caller.user_id}:{target}",
            limit=limits.bundle_claims_per_target_per_hour,
            window_s=3600,
            now=now,
        )
        # and everyone's together: many accounts cannot drain one person's keys either
        limiter.hit(
            "bundles-of",
            target,
            limit=limits.bundle_claims_of_target_per_hour,
            window_s=3600,
            now=now,
        )
    device_ids = [device.device_id for device in users.devices(target)]
    keys = prekeys.device_keys(target, device_ids)
    if not keys:
        raise NotFound("no such user, or they have no devices with keys")
    devices = []
    for did in device_ids:
        if did not in keys:
            continue
        claim = prekeys.claim(target, did, low_below=limits.prekeys_low_below)
        devices.append(
            DeviceBundle(
                device_id=did,
                identity_key=keys[did].identity_key,
                signed_prekey=keys[did].signed_prekey,
                one_time_prekey=claim.key,
                left=claim.left,
            )
        )
    return Bundle(user_id=target, devices=tuple(devices))


def report_low(
    bundle: Bundle, *, now: float, connections: ConnectionsPort, gateway: GatewayPort
) -> int:
    """Tell each device a claim left with few one-time prekeys, on its live
    connections, so that it uploads more now rather than at its next upkeep: a
    `prekeys_low` event with how many are `left`. Best effort (a device offline
    tops up when it next connects); how many connections were told."""
    left = {device.device_id: device.left for device in bundle.low}
    if not left:
        return 0

    def event_for(device_id: str) -> dict[str, Any] | None:
        count = left.get(device_id)
        return None if count is None else {"event": "prekeys_low", "left": count}

    try:
        report = deliver(
            bundle.user_id, event_for, now=now, connections=connections, gateway=gateway
        )
    except ParleyError:
        return 0
    return len(report.reached)
