"""The plumbing around linked devices: the store's migration and repositories,
the API's errors for a registration lock, the devices_changed notice, PINs."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from parley.api import _error
from parley.crypto import IdentityKeyPair
from parley.devices.calls import check_pin
from parley.errors import PinBackoff, RateLimited, RegistrationLocked
from parley.models import Account
from parley.protocol import DevicesChangedNotice, Protocol
from parley.store import DB_FILE, SCHEMA_VERSION, Store

USER, DEV = "a" * 32, "a1" * 8


def open_store(directory: Path) -> Store:
    return Store.open(directory, keyring=None, allow_plaintext=True)


def test_a_profile_from_before_linked_devices_still_opens(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    identity = IdentityKeyPair.generate()
    store.accounts.save(Account(USER, DEV, "+15550000001"), identity)
    store.close()
    # the tables as the previous version wrote them
    conn = sqlite3.connect(tmp_path / DB_FILE)
    for column in ("role", "key_index", "account_identity", "max_key_index"):
        conn.execute(f"ALTER TABLE account DROP COLUMN {column}")
    conn.execute("DROP TABLE device_lists")
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()

    again = open_store(tmp_path)
    account = again.accounts.get()
    assert account == Account(USER, DEV, "+15550000001", None, None)
    assert again.accounts.identity().public_key == identity.public_key
    assert again.accounts.account_identity() is None
    assert again.device_lists.get(USER) is None
    version = again._db.conn.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'"
    ).fetchone()
    assert version == (str(SCHEMA_VERSION),)
    again.accounts.set_role("primary", 0, identity.public_key)
    assert again.accounts.get() == Account(USER, DEV, "+15550000001", "primary", 0)
    again.close()


def test_roles_key_indexes_and_lists_are_kept(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    primary = IdentityKeyPair.generate()
    store.accounts.save(Account(USER, DEV, ""), IdentityKeyPair.generate())
    with pytest.raises(ValueError, match="bad role"):
        store.accounts.set_role("companion", 0, primary.public_key)
    with pytest.raises(ValueError, match="bad role"):
        store.accounts.set_role("primary", 2, primary.public_key)
    store.accounts.set_role("companion", 3, primary.public_key)
    assert store.accounts.account_identity() == primary.public_key
    assert store.accounts.max_key_index() == 3
    store.accounts.note_key_index(2)
    assert store.accounts.max_key_index() == 3  # never goes back
    store.accounts.note_key_index(5)
    assert store.accounts.max_key_index() == 5

    store.device_lists.save(USER, primary.public_key, 4, b"body", b"s" * 64)
    kept = store.device_lists.get(USER)
    assert kept is not None
    assert (kept.version, kept.body, kept.account_identity) == (4, b"body", primary.public_key)
    assert kept.wire()["body"] == "Ym9keQ=="
    assert base64.b64decode(kept.wire()["signature"]) == b"s" * 64
    store.device_lists.forget(USER)
    assert store.device_lists.get(USER) is None
    store.close()


def test_a_registration_lock_and_pin_backoff_become_their_errors() -> None:
    locked = _error(
        423,
        {"error": {"code": "registration_locked", "message": "PIN", "attempts_left": 3}},
        None,
    )
    assert isinstance(locked, RegistrationLocked)
    assert (locked.code, locked.attempts_left, locked.retry_after) == (
        "registration_locked",
        3,
        None,
    )
    waiting = _error(
        423,
        {"error": {"code": "registration_locked", "message": "PIN", "retry_after": 120}},
        None,
    )
    assert isinstance(waiting, RegistrationLocked)
    assert waiting.retry_after == 120.0
    backoff = _error(429, {"error": {"code": "pin_backoff", "message": "wait"}}, "240")
    assert isinstance(backoff, PinBackoff)
    assert isinstance(backoff, RateLimited)
    assert backoff.retry_after == 240.0
    plain = _error(429, {"error": {"code": "rate_limited", "message": "slow"}}, None)
    assert type(plain) is RateLimited


def connected() -> Protocol:
    proto = Protocol()
    proto.connection_made()
    proto.data_to_send()
    return proto


def test_the_devices_changed_notice_is_parsed_and_checked() -> None:
    proto = connected()
    for frame in (
        {"event": "devices_changed", "reason": "linked", "device_id": DEV},
        {"event": "devices_changed", "reason": "reregistered", "device_id": DEV},
        {"event": "devices_changed", "reason": "rebooted", "device_id": DEV},
        {"event": "devices_changed", "reason": "unlinked", "device_id": "nope"},
    ):
        proto.receive_data(json.dumps(frame))
    assert proto.events_received() == [
        DevicesChangedNotice("linked", DEV),
        DevicesChangedNotice("reregistered", DEV),
    ]


@pytest.mark.parametrize("pin", ["12345", "12345a", "", " 123456", "1" * 65, "１２３４５６"])
def test_a_pin_is_six_to_sixty_four_digits(pin: str) -> None:
    with pytest.raises(ValueError, match="6 to 64 digits"):
        check_pin(pin)


def test_good_pins_pass() -> None:
    assert check_pin("123456") == "123456"
    assert check_pin("9" * 64) == "9" * 64
