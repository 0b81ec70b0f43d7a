"""The call log and call signalling in the outbox."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import nacl.pwhash

from parley.models import CallRecord, Direction
from parley.protocol import OutboxEntry
from parley.store import DB_FILE, Store
from parley.store.calls import MAX_CALLS

CHEAP_KDF = (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)
BOB = "b" * 32
DEV = "1" * 16


def sealed(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "p", passphrase="pw", keyring=None, kdf_limits=CHEAP_KDF)


def call(n: int, **over: object) -> CallRecord:
    fields: dict[str, object] = {
        "call_id": f"{n:032x}",
        "peer": BOB,
        "direction": Direction.IN,
        "video": False,
        "started_at": 1000.0 + n,
    }
    fields.update(over)
    return CallRecord(**fields)  # type: ignore[arg-type]


def test_calls_are_logged_newest_first_and_updated_in_place(tmp_path: Path) -> None:
    store = sealed(tmp_path)
    store.calls.save(call(1, outcome="missed", reason="timeout"))
    store.calls.save(call(2, direction=Direction.OUT))
    updated = store.calls.update(call(2).call_id, connected_at=1005.0, ended_at=1065.5)
    assert updated is not None
    assert updated.duration == 60.5
    assert store.calls.update("f" * 32, outcome="missed") is None
    store.close()

    store = sealed(tmp_path)
    log = store.calls.listed()
    assert [r.call_id for r in log] == [call(2).call_id, call(1).call_id]
    assert log[0].direction is Direction.OUT
    assert log[0].duration == 60.5
    assert log[1].missed
    assert log[1].duration == 0.0


def test_who_was_called_is_sealed_on_disk(tmp_path: Path) -> None:
    store = sealed(tmp_path)
    store.calls.save(call(1, outcome="missed"))
    store.close()
    raw = (tmp_path / "p" / DB_FILE).read_bytes()
    assert BOB.encode() not in raw
    assert b"missed" not in raw


def test_the_log_keeps_the_newest_calls(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p", keyring=None, allow_plaintext=True)
    for n in range(MAX_CALLS + 5):
        store.calls.save(call(n))
    log = store.calls.listed(limit=MAX_CALLS + 10)
    assert len(log) == MAX_CALLS
    assert log[-1].call_id == call(5).call_id


def test_call_signalling_left_in_the_outbox_is_dropped_at_the_next_start(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p", keyring=None, allow_plaintext=True)
    offer = OutboxEntry("o1", BOB, {DEV: "p"}, ttl=60, ephemeral=True, ring=True)
    store.outbox.add(offer, b"offer", 1.0)
    store.outbox.add(OutboxEntry("m1", BOB, {DEV: "p"}), b"text", 2.0)
    assert next(i.entry for i in store.outbox.items()) == offer  # flags survive a restart
    assert store.outbox.drop_ephemeral() == 1
    assert [i.entry.client_id for i in store.outbox.items()] == ["m1"]


def test_a_version_9_store_gains_the_outbox_flags_and_the_call_log(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p", keyring=None, allow_plaintext=True)
    store.outbox.add(OutboxEntry("m1", BOB, {DEV: "p"}), b"text", 2.0)
    store.close()
    with sqlite3.connect(tmp_path / "p" / DB_FILE) as conn:
        conn.execute("ALTER TABLE outbox DROP COLUMN ephemeral")
        conn.execute("ALTER TABLE outbox DROP COLUMN ring")
        conn.execute("DROP TABLE calls")
        conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    conn.close()

    store = Store.open(tmp_path / "p", keyring=None, allow_plaintext=True)
    assert [i.entry for i in store.outbox.items()] == [OutboxEntry("m1", BOB, {DEV: "p"})]
    store.calls.save(call(1))
    assert store.calls.get(call(1).call_id) == call(1)
    store.close()
    with sqlite3.connect(tmp_path / "p" / DB_FILE) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    assert version == ("10",)
