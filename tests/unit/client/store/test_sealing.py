"""Sealed values are bound to their place: table, column and row travel as the
AEAD's associated data, so a value moved to another row, column or table no
longer opens. A profile sealed before the binding is re-sealed when it is first
opened, and from then on an unbound value is refused."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from pathlib import Path

import nacl.pwhash
import nacl.secret
import pytest

from parley.crypto import IdentityKeyPair, OneTimePreKey, Session, SignedPreKey
from parley.crypto.sender_keys import SenderKey, SenderKeyRecord
from parley.errors import StoreLocked, WrongPassphrase
from parley.groups.ticks import GroupReceipts
from parley.models import Account, Direction, MessageState
from parley.protocol import OutboxEntry
from parley.store import DB_FILE, SCHEMA_VERSION, OwnSenderKey, Store, Tokens
from parley.store.db import SEALED_COLUMNS, Cell
from parley.store.vault import MisplacedValue, derive_key
from tests.unit.client.fakes import PreKeyStore

CHEAP_KDF = (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)
PASSPHRASE = "correct horse"
ME, BOB, CAROL = "a" * 32, "b" * 32, "c" * 32
DEV, DEV2 = "1" * 16, "2" * 16
GID = "g" * 32

# every column that holds a sealed value
SECRET_COLUMNS = {
    ("account", "identity"),
    ("account", "access_token"),
    ("account", "refresh_token"),
    ("signed_prekeys", "secret"),
    ("one_time_prekeys", "secret"),
    ("sessions", "state"),
    ("old_sessions", "state"),
    ("messages", "body"),
    ("messages", "content"),
    ("messages", "file"),
    ("outbox", "plaintext"),
    ("own_sender_keys", "state"),
    ("sender_keys", "record"),
    ("group_ticks", "receipts"),
    ("reactions", "emoji"),
    ("payment_address", "address"),
    ("calls", "details"),
}


def open_store(directory: Path, passphrase: str = PASSPHRASE) -> Store:
    return Store.open(directory, passphrase=passphrase, keyring=None, kdf_limits=CHEAP_KDF)


def session() -> Session:
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    alice = Session.initiate(IdentityKeyPair.generate(), prekeys.bundle(False))
    return Session.accept(prekeys.identity, prekeys, alice.encrypt(b"hi"), now=0.0)[0]


def filled(directory: Path) -> tuple[Store, IdentityKeyPair]:
    """A profile with a value in every sealed column (and two rows in some)."""
    store = open_store(directory)
    identity = IdentityKeyPair.generate()
    store.accounts.save(Account(ME, DEV, "+15550000001"), identity)
    store.accounts.save_tokens(Tokens("access-token", "refresh-token", 1.0))
    store.prekeys.add_signed(SignedPreKey.generate(identity, 1, 0.0))
    store.prekeys.add_one_time(OneTimePreKey.generate_batch(1, 2), 0.0)
    store.sessions.save(BOB, DEV, session(), 0.0)
    store.sessions.archive(BOB, DEV)
    store.sessions.save(BOB, DEV, session(), 0.0)
    store.sessions.save(BOB, DEV2, session(), 0.0)
    for client_id, text in (("m1", "first secret"), ("m2", "second secret")):
        store.messages.add(
            peer=BOB,
            direction=Direction.IN,
            sender=BOB,
            client_id=client_id,
            text=text,
            ts=1,
            state=MessageState.RECEIVED,
        )
    message = store.messages.get(BOB, "m1")
    assert message is not None
    store.messages.set_file(message.id, directory / "saved.bin")
    store.outbox.add(OutboxEntry("o1", BOB, {DEV: "eA=="}), b"outbox secret", 0.0)
    store.sender_keys.save_own(GID, OwnSenderKey(SenderKey.generate(), 1, frozenset()), 0.0)
    store.sender_keys.save_record(GID, BOB, DEV, SenderKeyRecord(), 0.0)
    store.receipts.save(message.id, GroupReceipts(ME, {BOB: [DEV]}))
    return store, identity


def execute(store: Store, sql: str, *args: object) -> list[tuple[object, ...]]:
    return store._db.conn.execute(sql, args).fetchall()


def move(store: Store, source: str, target: str) -> None:
    """Copy a sealed value from one place to another, as someone with the file could:
    each place is 'table.column WHERE condition'."""
    table, rest = source.split(".", 1)
    column, where = rest.split(" WHERE ")
    ((blob,),) = execute(store, f"SELECT {column} FROM {table} WHERE {where}")  # noqa: S608
    table, rest = target.split(".", 1)
    column, where = rest.split(" WHERE ")
    execute(store, f"UPDATE {table} SET {column} = ? WHERE {where}", blob)  # noqa: S608


# -- moved values are refused --------------------------------------------------------


def test_every_sealed_column_is_bound() -> None:
    assert {(table, column) for table, column, _ in SEALED_COLUMNS} == SECRET_COLUMNS


MOVES: dict[str, tuple[str, str, Callable[[Store], object]]] = {
    "between rows (one device's session to another's)": (
        f"sessions.state WHERE device_id = '{DEV2}'",
        f"sessions.state WHERE device_id = '{DEV}'",
        lambda s: s.sessions.get(BOB, DEV),
    ),
    "between rows (one message's text to another)": (
        "messages.body WHERE client_id = 'm2'",
        "messages.body WHERE client_id = 'm1'",
        lambda s: s.messages.get(BOB, "m1"),
    ),
    "between columns (refresh token as access token)": (
        "account.refresh_token WHERE id = 1",
        "account.access_token WHERE id = 1",
        lambda s: s.accounts.tokens(),
    ),
    "between tables (a queued plaintext as a received message)": (
        "outbox.plaintext WHERE client_id = 'o1'",
        "messages.body WHERE client_id = 'm1'",
        lambda s: s.messages.get(BOB, "m1"),
    ),
    "between tables (an archived session as the current one)": (
        f"old_sessions.state WHERE device_id = '{DEV}'",
        f"sessions.state WHERE device_id = '{DEV}'",
        lambda s: s.sessions.get(BOB, DEV),
    ),
}


@pytest.mark.parametrize("case", MOVES)
def test_a_sealed_value_moved_elsewhere_does_not_open(tmp_path: Path, case: str) -> None:
    source, target, read = MOVES[case]
    store, _ = filled(tmp_path)
    read(store)  # opens where it belongs
    move(store, source, target)
    with pytest.raises(MisplacedValue) as caught:
        read(store)
    assert isinstance(caught.value, StoreLocked)
    table, column = target.split(" WHERE ")[0].split(".")
    assert f"{table}.{column}" in str(caught.value)
    assert "another row, column or table" in str(caught.value)


def test_values_open_where_they_were_sealed(tmp_path: Path) -> None:
    store, identity = filled(tmp_path)
    store.close()
    store = open_store(tmp_path)
    assert store.accounts.identity().public_key == identity.public_key
    assert store.accounts.tokens() == Tokens("access-token", "refresh-token", 1.0)
    assert [m.text for m in store.messages.history(BOB)] == ["first secret", "second secret"]
    assert set(store.sessions.for_user(BOB)) == {DEV, DEV2}
    assert len(store.sessions.old(BOB, DEV)) == 1
    assert [i.plaintext for i in store.outbox.items()] == [b"outbox secret"]


def test_an_archived_session_is_bound_to_its_new_place(tmp_path: Path) -> None:
    store, _ = filled(tmp_path)
    current = store.sessions.get(BOB, DEV)
    assert current is not None
    store.sessions.archive(BOB, DEV)
    ((_, archived), *_) = store.sessions.old(BOB, DEV)
    assert archived.to_bytes() == current.to_bytes()


# -- profiles sealed before the binding ------------------------------------------------


def unbind(directory: Path) -> None:
    """Turn a closed profile back into what the previous version wrote: every value
    sealed with the data key alone (XSalsa20-Poly1305), no record of a binding."""
    conn = sqlite3.connect(directory / DB_FILE)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    key = derive_key(
        PASSPHRASE,
        base64.b64decode(meta["kdf_salt"]),
        int(meta["kdf_opslimit"]),
        int(meta["kdf_memlimit"]),
    )
    store = open_store(directory)
    vault = store._db.vault
    box = nacl.secret.SecretBox(key)
    for table, column, row_columns in SEALED_COLUMNS:
        keys = ", ".join(row_columns)
        for *row, blob in conn.execute(f"SELECT {keys}, {column} FROM {table}"):  # noqa: S608
            if blob is None:
                continue
            plaintext = vault.open(blob, Cell(table, column, tuple(row)))
            conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE "  # noqa: S608
                + " AND ".join(f"{c} = ?" for c in row_columns),
                (bytes(box.encrypt(plaintext)), *row),
            )
    check = base64.b64encode(bytes(box.encrypt(b"parley vault check v1"))).decode()
    conn.execute("UPDATE meta SET value = ? WHERE key = 'check'", (check,))
    conn.execute("DELETE FROM meta WHERE key = 'sealing'")
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    store.close()


def meta(directory: Path) -> dict[str, str]:
    with sqlite3.connect(directory / DB_FILE) as conn:
        found = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    conn.close()
    return found


def test_a_profile_sealed_before_the_binding_is_resealed_when_opened(tmp_path: Path) -> None:
    store, identity = filled(tmp_path)
    store.close()
    unbind(tmp_path)
    assert "sealing" not in meta(tmp_path)

    store = open_store(tmp_path)
    assert meta(tmp_path)["sealing"] == "bound"
    assert meta(tmp_path)["schema_version"] == str(SCHEMA_VERSION)
    assert store.accounts.identity().public_key == identity.public_key
    assert store.accounts.tokens() == Tokens("access-token", "refresh-token", 1.0)
    assert [m.text for m in store.messages.history(BOB)] == ["first secret", "second secret"]
    assert set(store.sessions.for_user(BOB)) == {DEV, DEV2}
    assert len(store.sessions.old(BOB, DEV)) == 1
    assert store.prekeys.signed_prekey(1) is not None
    assert store.sender_keys.own(GID) is not None
    assert store.sender_keys.record(GID, BOB, DEV) is not None
    # and bound now: a moved value is refused
    move(store, "messages.body WHERE client_id = 'm2'", "messages.body WHERE client_id = 'm1'")
    with pytest.raises(MisplacedValue):
        store.messages.get(BOB, "m1")
    store.close()
    # opening again changes nothing more
    again = open_store(tmp_path)
    assert again.accounts.identity().public_key == identity.public_key


def test_an_unbound_value_is_refused_once_the_profile_is_resealed(tmp_path: Path) -> None:
    store, _ = filled(tmp_path)
    store.close()
    unbind(tmp_path)
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        (old_text,) = conn.execute("SELECT body FROM messages WHERE client_id = 'm2'").fetchone()
    conn.close()
    store = open_store(tmp_path)
    assert store.messages.get(BOB, "m2") is not None
    # someone puts back the value as the previous version had sealed it
    execute(store, "UPDATE messages SET body = ? WHERE client_id = 'm2'", old_text)
    with pytest.raises(MisplacedValue):
        store.messages.get(BOB, "m2")


def test_a_wrong_passphrase_leaves_an_old_profile_as_it_was(tmp_path: Path) -> None:
    store, _ = filled(tmp_path)
    store.close()
    unbind(tmp_path)
    before = execute_file(tmp_path, "SELECT body FROM messages ORDER BY id")
    with pytest.raises(WrongPassphrase):
        open_store(tmp_path, passphrase="wrong")
    assert execute_file(tmp_path, "SELECT body FROM messages ORDER BY id") == before
    assert "sealing" not in meta(tmp_path)
    texts = [m.text for m in open_store(tmp_path).messages.history(BOB)]
    assert texts == ["first secret", "second secret"]


def test_a_damaged_old_value_stops_the_reseal_and_changes_nothing(tmp_path: Path) -> None:
    store, _ = filled(tmp_path)
    store.close()
    unbind(tmp_path)
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("UPDATE messages SET body = X'00112233' WHERE client_id = 'm2'")
    conn.close()
    before = execute_file(tmp_path, "SELECT body FROM messages ORDER BY id")
    with pytest.raises(StoreLocked, match=r"messages\.body"):
        open_store(tmp_path)
    assert execute_file(tmp_path, "SELECT body FROM messages ORDER BY id") == before
    assert "sealing" not in meta(tmp_path)


def test_a_plaintext_dev_profile_from_before_is_marked_bound(tmp_path: Path) -> None:
    store = Store.open(tmp_path, keyring=None, allow_plaintext=True)
    store.accounts.save(Account(ME, DEV, "+15550000001"), IdentityKeyPair.generate())
    store.close()
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'sealing'")
    conn.close()
    store = Store.open(tmp_path, keyring=None)
    assert meta(tmp_path)["sealing"] == "bound"
    assert store.accounts.require().user_id == ME


def execute_file(directory: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(directory / DB_FILE) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows
