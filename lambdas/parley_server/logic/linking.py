"""Linked devices: pairing a companion with the primary, and the signed device list.

An account has one primary device (signed in by phone number) and up to
`max_companions` companions, each linked by the primary scanning the companion's
QR code. The service never decides who belongs to an account: the primary signs
the device list (logic/device_list.py) and the service only checks and keeps it,
so that senders encrypt to, and the service delivers to, the listed devices only.

Pairing, in four calls (docs/API.md, "Linked devices"):

1. the companion asks for a pairing with its identity key (public; rate-limited
   per source address): it gets a reference, its device id and a claim (32
   random bytes only it holds; the service keeps their SHA-256);
2. the primary approves: the companion's details with its account signature,
   the pairing HMAC (made with the QR code's secret, which the service never
   sees) and the new device list, the current one plus the companion;
3. the companion polls the status with its claim until it is approved, checks
   the HMAC and the account signature itself;
4. the companion completes: its device signature over the approval and its keys.
   It becomes a device of the account, the approved list is installed and the
   account's other devices are told (`devices_changed`).
"""

from __future__ import annotations

import hashlib
import hmac as hmac_lib
import secrets
from typing import TYPE_CHECKING, Any

import msgspec

from parley_server.ids import new_device_id
from parley_server.logic import devices as devices_logic
from parley_server.logic import prekeys as prekeys_logic
from parley_server.logic import tokens
from parley_server.logic.device_list import (
    HMAC_BYTES,
    KEY_BYTES,
    SIGNATURE_BYTES,
    DeviceList,
    ListedDevice,
    decode_b64,
    read_details,
    read_list,
    verify_account_signature,
    verify_device_signature,
)
from parley_server.logic.ports import Caller
from parley_server.models.errors import Conflict, Forbidden, NotFound
from parley_server.store.users import DeviceListRecord, Pairing, PairingApproval

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.logic.devices import NoticePort
    from parley_server.logic.ports import ConnectionsPort, LimiterPort
    from parley_server.logic.prekeys import KeyUpload
    from parley_server.logic.tokens import Keys, TokenPair
    from parley_server.store.prekeys import PrekeysStore
    from parley_server.store.tokens import RefreshStore
    from parley_server.store.users import UsersStore

__all__ = [
    "NewPairing",
    "PublishedList",
    "approve",
    "complete",
    "publish_list",
    "published_list",
    "require_primary",
    "start_pairing",
    "status",
]

CLAIM_BYTES = 32
_ANY = 1 << 16  # a stored list's size was checked against the limit when it was installed
_GONE = "no such pairing, or it has expired"


class NewPairing(msgspec.Struct, frozen=True):
    ref: str
    device_id: str
    claim: bytes
    expires_in: int


class PublishedList(msgspec.Struct, frozen=True):
    """The account's signed device list as the primary signed it."""

    body: bytes
    signature: bytes


def _claim_hash(claim: bytes) -> bytes:
    return hashlib.sha256(claim).digest()


def require_primary(caller: Caller, *, users: UsersStore) -> None:
    """Forbidden unless the caller is the account's primary device."""
    roles = {d.device_id: d.role for d in users.signed_in(caller.user_id)}
    if roles.get(caller.device_id) != "primary":
        raise Forbidden("only the primary device can link devices", code="forbidden")


def published_list(user_id: str, *, users: UsersStore) -> PublishedList | None:
    """The account's current signed device list, if it has published one."""
    record = users.device_list(user_id)
    if record.body is None or record.signature is None:
        return None
    return PublishedList(record.body, record.signature)


def _current(user_id: str, record: DeviceListRecord) -> DeviceList | None:
    """The stored list, parsed (it was verified when it was installed)."""
    if record.body is None or record.signature is None or record.account_identity is None:
        return None
    return read_list(
        _b64(record.body),
        _b64(record.signature),
        user_id=user_id,
        account_identity=record.account_identity,
        max_companions=_ANY,  # the limit was checked when it was installed
    )


def _b64(raw: bytes) -> str:
    return prekeys_logic.b64(raw)


def _identity_of(record: DeviceListRecord) -> bytes:
    if record.account_identity is None:
        raise Conflict(
            "the primary device has not uploaded its keys yet", code="no_account_identity"
        )
    return record.account_identity


def _entries(devices: tuple[ListedDevice, ...] | list[ListedDevice]) -> set[ListedDevice]:
    return set(devices)


# -- 1. the companion starts a pairing ----------------------------------------------------


def start_pairing(
    identity_key: str,
    *,
    source: str,
    users: UsersStore,
    limiter: LimiterPort,
    limits: Limits,
    now: float,
) -> NewPairing:
    """A new pending pairing for a companion's identity key (public; per source address
    rate-limited like code requests)."""
    identity = decode_b64(identity_key, "identity_key", size=KEY_BYTES, code="invalid_key")
    limiter.hit(
        "pairing-source",
        source,
        limit=limits.pairings_per_source_hourly,
        window_s=3600,
        now=now,
    )
    claim = secrets.token_bytes(CLAIM_BYTES)
    pairing = Pairing(
        ref=secrets.token_hex(16),
        device_id=new_device_id(),
        identity=identity,
        claim_hash=_claim_hash(claim),
        state="pending",
        expires_at=int(now) + limits.pairing_ttl_s,
    )
    users.create_pairing(pairing, now=now)
    return NewPairing(pairing.ref, pairing.device_id, claim, limits.pairing_ttl_s)


def _claimed(ref: str, claim_b64: str, *, users: UsersStore, now: float) -> Pairing:
    """The unexpired pairing `ref` if `claim` is its claim; NotFound (the same as an
    unknown one) otherwise."""
    claim = decode_b64(claim_b64, "claim", size=CLAIM_BYTES, code="invalid_request")
    pairing = users.pairing(ref, now)
    if pairing is None or not hmac_lib.compare_digest(pairing.claim_hash, _claim_hash(claim)):
        raise NotFound(_GONE)
    return pairing


# -- 2. the primary approves ----------------------------------------------------------------


def approve(
    caller: Caller,
    ref: str,
    *,
    details: str,
    account_signature: str,
    hmac: str,
    list_body: str,
    list_signature: str,
    users: UsersStore,
    limits: Limits,
    now: float,
) -> None:
    """Record the primary's approval of a pending pairing. Everything is checked before
    anything is written: the caller is the primary, the details name the caller's
    account and the pairing's device and identity under a new key index, the account
    signature verifies, and the new list is the current one plus this device."""
    require_primary(caller, users=users)
    signature = decode_b64(
        account_signature, "account_signature", size=SIGNATURE_BYTES, code="invalid_request"
    )
    mac = decode_b64(hmac, "hmac", size=HMAC_BYTES, code="invalid_request")
    parsed = read_details(details)
    pairing = users.pairing(ref, now)
    if pairing is None:
        raise NotFound(_GONE)
    if pairing.state != "pending":
        raise Conflict("this pairing was approved already", code="pairing_used")
    if parsed.user_id != caller.user_id:
        raise Conflict("the details name another account", code="pairing_mismatch")
    if parsed.device_id != pairing.device_id or parsed.identity != pairing.identity:
        raise Conflict("the details do not name this pairing's device", code="pairing_mismatch")
    record = users.device_list(caller.user_id)
    identity = _identity_of(record)
    verify_account_signature(parsed, signature, identity)
    current = _current(caller.user_id, record)
    if current is None:
        raise Conflict(
            "publish the account's device list before linking devices", code="no_device_list"
        )
    if parsed.key_index <= record.max_key_index:
        raise Conflict(
            f"key index {parsed.key_index} was used before; use {record.max_key_index + 1}"
            " or higher",
            code="key_index_used",
        )
    new = read_list(
        list_body,
        list_signature,
        user_id=caller.user_id,
        account_identity=identity,
        max_companions=limits.max_companions,
    )
    if new.version != current.version + 1:
        raise Conflict(
            f"the new device list must be version {current.version + 1}",
            code="device_list_version",
        )
    added = ListedDevice(pairing.device_id, parsed.key_index, pairing.identity)
    if _entries(new.devices) != _entries(current.devices) | {added}:
        raise Conflict(
            "the new device list must be the current one plus the new device",
            code="device_list_mismatch",
        )
    if not users.reserve_key_index(caller.user_id, identity, parsed.key_index):
        raise Conflict(f"key index {parsed.key_index} was used before", code="key_index_used")
    approval = PairingApproval(
        user_id=caller.user_id,
        key_index=parsed.key_index,
        details=parsed.raw,
        account_signature=signature,
        hmac=mac,
        list_version=new.version,
        list_body=new.body,
        list_signature=new.signature,
    )
    if not users.approve_pairing(ref, approval, now):
        raise Conflict("this pairing was approved already", code="pairing_used")


# -- 3. the companion polls -----------------------------------------------------------------


def status(ref: str, claim: str, *, users: UsersStore, now: float) -> dict[str, Any]:
    """{"state": "pending"} or the approval for the companion to check."""
    pairing = _claimed(ref, claim, users=users, now=now)
    if pairing.state == "pending" or pairing.approval is None:
        return {"state": "pending"}
    if pairing.state == "used":
        raise Conflict("this pairing was completed already", code="pairing_used")
    approval = pairing.approval
    identity = users.device_list(approval.user_id).account_identity
    if identity is None:
        raise NotFound(_GONE)
    return {
        "state": "approved",
        "user_id": approval.user_id,
        "details": _b64(approval.details),
        "account_signature": _b64(approval.account_signature),
        "hmac": _b64(approval.hmac),
        "account_identity": _b64(identity),
    }


# -- 4. the companion completes -------------------------------------------------------------


def complete(
    ref: str,
    claim: str,
    device_signature: str,
    upload: KeyUpload,
    *,
    users: UsersStore,
    prekeys: PrekeysStore,
    keys: Keys,
    refresh_tokens: RefreshStore,
    connections: ConnectionsPort,
    gateway: NoticePort,
    limits: Limits,
    now: float,
) -> TokenPair:
    """Make the companion a device of the account: register it (companion, its key
    index), store its identity key and prekeys, install the approved list, mark the
    pairing used, tell the other devices. Asked again after a failure part-way, it
    finishes the job; asked again after success, 409 `pairing_used`."""
    signature = decode_b64(
        device_signature, "device_signature", size=SIGNATURE_BYTES, code="invalid_request"
    )
    checked = prekeys_logic.check_upload(upload, limits=limits)
    pairing = _claimed(ref, claim, users=users, now=now)
    if pairing.state == "used":
        raise Conflict("this pairing was completed already", code="pairing_used")
    approval = pairing.approval
    if pairing.state != "approved" or approval is None:
        raise Conflict(
            "the primary device has not approved this pairing yet", code="pairing_pending"
        )
    if checked.identity != pairing.identity:
        raise Conflict(
            "identity_key is not the key this pairing was made for", code="pairing_mismatch"
        )
    record = users.device_list(approval.user_id)
    identity = _identity_of(record)
    verify_device_signature(
        approval.details, approval.account_signature, identity, signature, pairing.identity
    )
    device = Caller(user_id=approval.user_id, device_id=pairing.device_id)
    if users.device(device.user_id, device.device_id) is None:
        users.add_device(
            device.user_id,
            device.device_id,
            now,
            role="companion",
            key_index=approval.key_index,
        )
    prekeys_logic.store_keys(device, checked, prekeys=prekeys, users=users)
    installed = users.install_device_list(
        device.user_id,
        identity,
        previous_version=approval.list_version - 1,
        version=approval.list_version,
        body=approval.list_body,
        signature=approval.list_signature,
        listed=_listed_ids(approval.list_body, approval.list_signature, device.user_id, identity),
        max_key_index=approval.key_index,
    )
    if not installed and users.device_list(device.user_id).body != approval.list_body:
        users.revoke_device(device.user_id, device.device_id, now)
        raise Conflict(
            "the account's device list changed since the approval; link again",
            code="device_list_changed",
        )
    if not users.use_pairing(ref):
        raise Conflict("this pairing was completed already", code="pairing_used")
    pair = tokens.sign_in_device(device, keys=keys, tokens=refresh_tokens, limits=limits, now=now)
    devices_logic.notify_devices_changed(
        device.user_id,
        "linked",
        device.device_id,
        now=now,
        connections=connections,
        gateway=gateway,
    )
    return pair


def _listed_ids(body: bytes, signature: bytes, user_id: str, identity: bytes) -> list[str]:
    return read_list(
        _b64(body), _b64(signature), user_id=user_id, account_identity=identity, max_companions=_ANY
    ).device_ids


# -- publishing a list (the first one, and unlinking) ---------------------------------------


def publish_list(
    caller: Caller,
    body: str,
    signature: str,
    *,
    users: UsersStore,
    connections: ConnectionsPort,
    gateway: NoticePort,
    limits: Limits,
    now: float,
) -> list[str]:
    """Install a new signed device list from the primary: its first (version >= 1,
    just the primary itself) or one that only removes devices (a higher version, a
    subset of the current entries). Devices it drops are signed out at once and the
    others told; the ids dropped."""
    require_primary(caller, users=users)
    record = users.device_list(caller.user_id)
    identity = _identity_of(record)
    new = read_list(
        body,
        signature,
        user_id=caller.user_id,
        account_identity=identity,
        max_companions=limits.max_companions,
    )
    current = _current(caller.user_id, record)
    if current is None:
        if len(new.devices) != 1 or new.devices[0].device_id != caller.device_id:
            raise Conflict(
                "the first device list must list just the primary device",
                code="device_list_mismatch",
            )
        dropped: list[str] = []
    else:
        if new.version <= current.version:
            raise Conflict(
                f"the new device list must have a version above {current.version}",
                code="device_list_version",
            )
        if not _entries(new.devices) <= _entries(current.devices):
            raise Conflict(
                "a device list can only remove devices; link new ones by pairing",
                code="device_list_mismatch",
            )
        dropped = [d for d in current.device_ids if d not in new.device_ids]
    installed = users.install_device_list(
        caller.user_id,
        identity,
        previous_version=current.version if current is not None else 0,
        version=new.version,
        body=new.body,
        signature=new.signature,
        listed=new.device_ids,
        max_key_index=new.max_key_index,
    )
    if not installed:
        raise Conflict(
            "the account's device list changed meanwhile; fetch it and sign again",
            code="device_list_changed",
        )
    for device_id in dropped:
        open_now = connections.of_user(caller.user_id, now=now)
        users.revoke_device(caller.user_id, device_id, now)
        devices_logic.close_connections(
            caller.user_id,
            [c for c in open_now if c.device_id == device_id],
            connections=connections,
            gateway=gateway,
        )
        devices_logic.notify_devices_changed(
            caller.user_id,
            "unlinked",
            device_id,
            now=now,
            connections=connections,
            gateway=gateway,
        )
    return dropped
