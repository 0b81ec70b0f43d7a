"""Test support (holds no tests): an account's signed device list installed straight
in the users store, as its primary would publish it, for tests that register
devices below the HTTP API (senders deliver only to listed devices)."""

from __future__ import annotations

import base64
import json
import time

from nacl.signing import SigningKey

from parley_server.logic.device_list import LIST_PREFIX
from parley_server.store.users import UsersStore

__all__ = ["approval", "device_key", "device_signature", "first_list", "list_devices"]

# each test account's primary identity key (it signs the account's device lists)
_PRIMARY_KEYS: dict[str, SigningKey] = {}
# each listed device's identity key (it signs the device's group changes)
_DEVICE_KEYS: dict[tuple[str, str], SigningKey] = {}


def list_devices(store: UsersStore, user_id: str, device_ids: list[str]) -> None:
    """Install a signed device list naming `device_ids` (the first is the primary), as
    the primary would publish it: senders deliver only to listed devices."""
    primary = _PRIMARY_KEYS.setdefault(user_id, SigningKey.generate())
    identity = primary.verify_key.encode()
    store.set_account_identity(user_id, identity)
    current = store.device_list(user_id)
    for index, device_id in enumerate(device_ids):
        _DEVICE_KEYS[(user_id, device_id)] = (
            primary if index == 0 else _DEVICE_KEYS.get((user_id, device_id), SigningKey.generate())
        )
    entries = [
        {
            "device_id": device_id,
            "key_index": index,
            "identity": base64.b64encode(
                _DEVICE_KEYS[(user_id, device_id)].verify_key.encode()
            ).decode(),
        }
        for index, device_id in enumerate(device_ids)
    ]
    body = json.dumps(
        {
            "user_id": user_id,
            "version": current.version + 1,
            "ts": int(time.time() * 1000),
            "account_identity": base64.b64encode(identity).decode(),
            "devices": entries,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    installed = store.install_device_list(
        user_id,
        identity,
        previous_version=current.version,
        version=current.version + 1,
        body=body,
        signature=primary.sign(LIST_PREFIX + body).signature,
        listed=device_ids,
        max_key_index=len(device_ids) - 1,
    )
    assert installed


def device_key(user_id: str, device_id: str) -> SigningKey:
    """The identity key of a device `list_devices` listed (the primary's is the
    account identity): what signs the device's group changes."""
    return _DEVICE_KEYS[(user_id, device_id)]


def first_list(user_id: str, device_id: str, identity: SigningKey) -> dict[str, str]:
    """Device list version 1 naming just the primary, signed by it, in the wire form of
    PUT /v1/devices/list (what the client publishes right after sign-up)."""
    me = base64.b64encode(identity.verify_key.encode()).decode()
    body = json.dumps(
        {
            "user_id": user_id,
            "version": 1,
            "ts": int(time.time() * 1000),
            "account_identity": me,
            "devices": [{"device_id": device_id, "key_index": 0, "identity": me}],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return {
        "body": base64.b64encode(body).decode(),
        "signature": base64.b64encode(identity.sign(LIST_PREFIX + body).signature).decode(),
    }


def approval(
    primary: SigningKey,
    user_id: str,
    current: dict[str, str],
    device_id: str,
    companion: SigningKey,
) -> tuple[dict[str, object], bytes, bytes]:
    """What the primary sends to approve linking `companion` (POST
    /v1/devices/pairings/{ref}/approve), given the account's current list in its wire
    form; with the details and account signature the companion then countersigns."""
    import hashlib
    import hmac
    import os

    from parley_server.logic.device_list import ACCOUNT_PREFIX, HMAC_PREFIX

    listed = json.loads(base64.b64decode(current["body"]))
    key_index = max(d["key_index"] for d in listed["devices"]) + 1
    identity = base64.b64encode(companion.verify_key.encode()).decode()
    entry = {"device_id": device_id, "key_index": key_index, "identity": identity}
    details = json.dumps(
        {
            "user_id": user_id,
            "device_id": device_id,
            "key_index": key_index,
            "identity": identity,
            "ts": int(time.time() * 1000),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    signature = primary.sign(ACCOUNT_PREFIX + details).signature
    mac = hmac.new(os.urandom(16), HMAC_PREFIX + details + signature, hashlib.sha256).digest()
    body = json.dumps(
        {**listed, "version": listed["version"] + 1, "devices": [*listed["devices"], entry]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    request: dict[str, object] = {
        "details": base64.b64encode(details).decode(),
        "account_signature": base64.b64encode(signature).decode(),
        "hmac": base64.b64encode(mac).decode(),
        "device_list": {
            "body": base64.b64encode(body).decode(),
            "signature": base64.b64encode(primary.sign(LIST_PREFIX + body).signature).decode(),
        },
    }
    return request, details, signature


def device_signature(
    companion: SigningKey, details: bytes, account_signature: bytes, primary: SigningKey
) -> str:
    """The companion's consent to its approval (POST .../complete's device_signature)."""
    from parley_server.logic.device_list import DEVICE_PREFIX

    message = DEVICE_PREFIX + details + account_signature + primary.verify_key.encode()
    return base64.b64encode(companion.sign(message).signature).decode()
