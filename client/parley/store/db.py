"""The profile's SQLite file: its schema and migrations, the one connection, the
vault that seals its secrets, and transactions.

Every sealed value is bound to its `Cell` (table, column, row key); the columns
that hold one, and the columns naming their rows, are listed in SEALED_COLUMNS.
A profile written before the binding (meta has no ``sealing = bound``) is
re-sealed when it is opened, in one transaction, before anything reads it.

Every repository of the store shares one `Database`; everything that must change
together does so in one `transaction()`, whichever repositories it touches.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal

from parley.errors import NotRegistered, PassphraseRequired, StoreLocked
from parley.store.vault import (
    CHECK_CELL,
    KDF_MEMLIMIT,
    KDF_OPSLIMIT,
    Cell,
    KeyringLike,
    Protection,
    Vault,
    system_keyring,
)

__all__ = [
    "DB_FILE",
    "SCHEMA_VERSION",
    "SEALED_COLUMNS",
    "Cell",
    "Database",
    "Repository",
    "from_b64",
    "pack",
    "unpack",
]

log = logging.getLogger("parley.store")

DB_FILE = "parley.db"
# 2: messages keep the content of non-text kinds and where a download was saved
# 3: groups, sender keys, held group messages, group ticks; group outbox entries
# 4: the account's role and key index; contacts' signed device lists
# 5: sealed values bound to their cell (meta 'sealing'); accepted session starts;
#    the skipped message keys each session holds
# 6: contacts the user accepted (message requests), and whether the service knows
# 10: call signalling in the outbox (ephemeral, ring) and the call log
SCHEMA_VERSION = 10
_BOUND = "bound"

# Every sealed column: (table, column, the columns that name its row, in order).
SEALED_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("account", "identity", ("id",)),
    ("account", "access_token", ("id",)),
    ("account", "refresh_token", ("id",)),
    ("signed_prekeys", "secret", ("key_id",)),
    ("one_time_prekeys", "secret", ("key_id",)),
    ("sessions", "state", ("user_id", "device_id")),
    ("old_sessions", "state", ("seq", "user_id", "device_id")),
    ("messages", "body", ("sender", "client_id")),
    ("messages", "content", ("sender", "client_id")),
    ("messages", "file", ("sender", "client_id")),
    ("outbox", "plaintext", ("client_id",)),
    ("own_sender_keys", "state", ("group_id",)),
    ("sender_keys", "record", ("group_id", "sender", "device_id")),
    ("group_ticks", "receipts", ("message_id",)),
    ("reactions", "emoji", ("message_id", "reactor")),
    ("payment_address", "address", ("id",)),
    ("calls", "details", ("call_id",)),
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, phone TEXT NOT NULL,
    identity BLOB NOT NULL,
    access_token BLOB, refresh_token BLOB, access_expires_at REAL,
    next_prekey_id INTEGER NOT NULL DEFAULT 1,
    next_signed_prekey_id INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS signed_prekeys (
    key_id INTEGER PRIMARY KEY, secret BLOB NOT NULL,
    created_at REAL NOT NULL, retired_at REAL
);
CREATE TABLE IF NOT EXISTS one_time_prekeys (
    key_id INTEGER PRIMARY KEY, secret BLOB NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, state BLOB NOT NULL,
    updated_at REAL NOT NULL, skipped INTEGER, skipped_since REAL,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS old_sessions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, state BLOB NOT NULL,
    skipped INTEGER, skipped_since REAL
);
CREATE TABLE IF NOT EXISTS session_starts (
    base_key BLOB PRIMARY KEY, signed_prekey_id INTEGER NOT NULL, accepted_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS old_sessions_by_device ON old_sessions (user_id, device_id, seq);
CREATE TABLE IF NOT EXISTS contacts (
    user_id TEXT PRIMARY KEY, name TEXT UNIQUE, phone TEXT,
    identity_changed INTEGER NOT NULL DEFAULT 0, verified INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    accepted INTEGER NOT NULL DEFAULT 0, told INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, identity_key BLOB NOT NULL,
    first_seen REAL NOT NULL, removed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    peer TEXT NOT NULL, direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    sender TEXT NOT NULL, client_id TEXT NOT NULL, body BLOB NOT NULL,
    ts INTEGER NOT NULL, state TEXT NOT NULL,
    content BLOB, file BLOB,
    action INTEGER NOT NULL DEFAULT 0, edited_at INTEGER, deleted TEXT,
    timer INTEGER NOT NULL DEFAULT 0, expires_at INTEGER, target TEXT,
    UNIQUE (sender, client_id)
);
CREATE INDEX IF NOT EXISTS messages_by_peer ON messages (peer, id);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL UNIQUE, recipient TEXT NOT NULL,
    payloads TEXT NOT NULL, plaintext BLOB NOT NULL, created_at REAL NOT NULL,
    body TEXT, version INTEGER, after TEXT, ttl INTEGER,
    ephemeral INTEGER NOT NULL DEFAULT 0, ring INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT NOT NULL UNIQUE,
    started_at REAL NOT NULL, details BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL,
    members TEXT NOT NULL, admins TEXT NOT NULL, created_by TEXT, created_at INTEGER,
    active INTEGER NOT NULL DEFAULT 1, stale INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL, rev INTEGER NOT NULL DEFAULT 0,
    head INTEGER NOT NULL DEFAULT 0, unverified TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS group_chains (
    group_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, head BLOB NOT NULL,
    seats TEXT NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS own_sender_keys (
    group_id TEXT PRIMARY KEY, version INTEGER NOT NULL, state BLOB NOT NULL,
    distributed TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sender_keys (
    group_id TEXT NOT NULL, sender TEXT NOT NULL, device_id TEXT NOT NULL,
    record BLOB NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (group_id, sender, device_id)
);
CREATE TABLE IF NOT EXISTS held_group_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT NOT NULL, sender TEXT NOT NULL, device_id TEXT NOT NULL,
    client_id TEXT NOT NULL, digest TEXT NOT NULL, body BLOB NOT NULL,
    ts INTEGER NOT NULL, held_at REAL NOT NULL,
    UNIQUE (sender, client_id, digest)
);
CREATE INDEX IF NOT EXISTS held_by_sender
    ON held_group_messages (group_id, sender, device_id, seq);
CREATE TABLE IF NOT EXISTS group_ticks (
    message_id INTEGER PRIMARY KEY, receipts BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS device_lists (
    user_id TEXT PRIMARY KEY, account_identity BLOB NOT NULL, version INTEGER NOT NULL,
    body BLOB NOT NULL, signature BLOB NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reactions (
    message_id INTEGER NOT NULL, reactor TEXT NOT NULL, emoji BLOB NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (message_id, reactor)
);
CREATE TABLE IF NOT EXISTS held_actions (
    action_id INTEGER PRIMARY KEY, target_sender TEXT NOT NULL,
    target_client_id TEXT NOT NULL, held_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS held_by_target ON held_actions (target_sender, target_client_id);
CREATE TABLE IF NOT EXISTS conversation_timers (
    peer TEXT PRIMARY KEY, seconds INTEGER NOT NULL, set_by TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    sender TEXT NOT NULL, client_id TEXT NOT NULL, seen_at REAL NOT NULL,
    PRIMARY KEY (sender, client_id)
);
CREATE TABLE IF NOT EXISTS payment_answers (
    answer_id INTEGER PRIMARY KEY, target_sender TEXT NOT NULL,
    target_client_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payment_answers_by_target
    ON payment_answers (target_sender, target_client_id);
CREATE TABLE IF NOT EXISTS payment_address (
    id INTEGER PRIMARY KEY CHECK (id = 1), address BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS stars (message_id INTEGER PRIMARY KEY, starred_at REAL NOT NULL);
"""

_AUTO: Literal["auto"] = "auto"


class Database:
    """The SQLite store of one profile. Open with `Database.open(directory, ...)`."""

    def __init__(self, conn: sqlite3.Connection, vault: Vault, path: Path) -> None:
        self.conn = conn
        self.vault = vault
        self.path = path
        self._depth = 0

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        passphrase: str | None = None,
        keyring: KeyringLike | Literal["auto"] | None = _AUTO,
        allow_plaintext: bool = False,
        kdf_limits: tuple[int, int] = (KDF_OPSLIMIT, KDF_MEMLIMIT),
        create: bool = True,
    ) -> Database:
        """Open (or, with `create`, create) the profile in `directory`.

        A new profile is protected by the OS keyring when one is usable, else by
        `passphrase`, else -- only with `allow_plaintext` -- not at all (dev mode).
        A given passphrase is always preferred over the keyring for a new profile.
        """
        path = directory / DB_FILE
        if not create and not path.exists():
            raise NotRegistered(f"no profile in {directory}: sign up first")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            os.chmod(path, 0o600)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            # what is deleted (a message deleted for everyone, one that disappeared) is
            # overwritten, not left in free pages of the file
            conn.execute("PRAGMA secure_delete=ON")
            conn.executescript(_SCHEMA)
            _migrate(conn)
            ring = system_keyring() if keyring == _AUTO else keyring
            vault = _unlock(conn, passphrase, ring, allow_plaintext, kdf_limits)
            _bind(conn, vault)
        except BaseException:
            conn.close()
            raise
        return cls(conn, vault, path)

    @property
    def protection(self) -> Protection:
        return self.vault.protection

    def keyring_name(self) -> str | None:
        """The name this profile's key has in the OS keyring (None when it has none)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'keyring_name'").fetchone()
        return str(row[0]) if row else None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nests (only the outermost commits)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0


class Repository:
    """One aggregate of the store, over the shared connection, vault and transactions."""

    def __init__(self, db: Database) -> None:
        self._database = db
        self._db = db.conn
        self._vault = db.vault

    def transaction(self) -> AbstractContextManager[None]:
        return self._database.transaction()


def _unlock(
    conn: sqlite3.Connection,
    passphrase: str | None,
    ring: KeyringLike | None,
    allow_plaintext: bool,
    kdf_limits: tuple[int, int],
) -> Vault:
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if "protection" not in meta:
        return _create_vault(conn, passphrase, ring, allow_plaintext, kdf_limits)
    protection = Protection(meta["protection"])
    if protection is Protection.PLAINTEXT_DEV:
        log.warning("profile store is NOT encrypted (plaintext dev mode)")
        return Vault.plaintext_dev()
    if protection is Protection.KEYRING:
        if ring is None:
            raise StoreLocked(
                "this profile's key is in the OS keyring, which is not available here"
            )
        vault = Vault.from_keyring(ring, meta["keyring_name"], create=False)
    else:
        if not passphrase:
            raise PassphraseRequired("this profile is protected by a passphrase")
        vault = Vault.from_passphrase(
            passphrase,
            base64.b64decode(meta["kdf_salt"]),
            int(meta["kdf_opslimit"]),
            int(meta["kdf_memlimit"]),
        )
    vault.verify(base64.b64decode(meta["check"]), bound=meta.get("sealing") == _BOUND)
    return vault


def _create_vault(
    conn: sqlite3.Connection,
    passphrase: str | None,
    ring: KeyringLike | None,
    allow_plaintext: bool,
    kdf_limits: tuple[int, int],
) -> Vault:
    meta: dict[str, str] = {"schema_version": str(SCHEMA_VERSION), "sealing": _BOUND}
    if passphrase:
        salt = Vault.new_salt()
        vault = Vault.from_passphrase(passphrase, salt, *kdf_limits)
        meta |= {
            "kdf_salt": base64.b64encode(salt).decode(),
            "kdf_opslimit": str(kdf_limits[0]),
            "kdf_memlimit": str(kdf_limits[1]),
        }
    elif ring is not None:
        name = f"profile-{secrets.token_hex(8)}"
        vault = Vault.from_keyring(ring, name, create=True)
        meta["keyring_name"] = name
    elif allow_plaintext:
        log.warning("creating a profile store WITHOUT encryption (plaintext dev mode)")
        vault = Vault.plaintext_dev()
    else:
        raise PassphraseRequired(
            "no usable OS keyring: protect the profile with a passphrase "
            "(or, for development only, allow a plaintext store)"
        )
    meta["protection"] = vault.protection.value
    meta["check"] = base64.b64encode(vault.check_value()).decode()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
    conn.execute("COMMIT")
    return vault


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a store written by an earlier version up to SCHEMA_VERSION (new tables
    come from _SCHEMA's CREATE IF NOT EXISTS; new columns are added here)."""
    if not _missing_columns(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # again under the write lock: another process may have just done it
        added = _missing_columns(conn)
        for table, name, kind in added:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        for table, name, _ in added:
            if (table, name) in _BACKFILL:
                conn.execute(_BACKFILL[(table, name)])
        # a store whose vault was never set up gets its version with the vault
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _bind(conn: sqlite3.Connection, vault: Vault) -> None:
    """Re-seal, bound to its cell, every value of a profile sealed before the binding
    (and its check value); then record that it is bound. All or nothing: a value
    that does not open stops it, and the profile stays as it was."""
    if _sealing(conn) == _BOUND:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _sealing(conn) != _BOUND:  # again under the write lock
            if vault.encrypted:
                _reseal(conn, vault)
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("sealing", _BOUND), ("schema_version", str(SCHEMA_VERSION))],
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    log.info("profile store re-sealed: every value is bound to its place")


def _sealing(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'sealing'").fetchone()
    return str(row[0]) if row else None


def _reseal(conn: sqlite3.Connection, vault: Vault) -> None:
    for table, column, keys in SEALED_COLUMNS:
        rows = conn.execute(
            f"SELECT {', '.join(keys)}, {column} FROM {table}"  # noqa: S608
            f" WHERE {column} IS NOT NULL"
        ).fetchall()
        where = " AND ".join(f"{key} = ?" for key in keys)
        for *row, blob in rows:
            cell = Cell(table, column, tuple(row))
            conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE {where}",  # noqa: S608
                (vault.seal(vault.open_unbound(blob, cell), cell), *row),
            )
    check = conn.execute("SELECT value FROM meta WHERE key = 'check'").fetchone()
    if check is not None:
        unbound = base64.b64decode(check[0])
        bound = vault.seal(vault.open_unbound(unbound, CHECK_CELL), CHECK_CELL)
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'check'", (base64.b64encode(bound).decode(),)
        )


# Columns added since the first version of each table: (table, column, type).
_ADDED_COLUMNS = (
    ("messages", "content", "BLOB"),
    ("messages", "file", "BLOB"),
    ("outbox", "body", "TEXT"),
    ("outbox", "version", "INTEGER"),
    ("outbox", "after", "TEXT"),
    ("account", "role", "TEXT"),
    ("account", "key_index", "INTEGER"),
    ("account", "account_identity", "BLOB"),
    ("account", "max_key_index", "INTEGER"),
    ("sessions", "skipped", "INTEGER"),
    ("sessions", "skipped_since", "REAL"),
    ("old_sessions", "skipped", "INTEGER"),
    ("old_sessions", "skipped_since", "REAL"),
    ("contacts", "accepted", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "action", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "edited_at", "INTEGER"),
    ("messages", "deleted", "TEXT"),
    ("messages", "timer", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "expires_at", "INTEGER"),
    ("messages", "target", "TEXT"),
    ("outbox", "ttl", "INTEGER"),
    ("contacts", "told", "INTEGER NOT NULL DEFAULT 1"),
    ("outbox", "ephemeral", "INTEGER NOT NULL DEFAULT 0"),
    ("outbox", "ring", "INTEGER NOT NULL DEFAULT 0"),
    ("groups", "rev", "INTEGER NOT NULL DEFAULT 0"),
    ("groups", "head", "INTEGER NOT NULL DEFAULT 0"),
    ("groups", "unverified", "TEXT NOT NULL DEFAULT '[]'"),
)
# What a column's arrival does to the rows already there: a profile from before
# message requests keeps talking as it did (every contact it had is accepted, and
# the service is told so on the next connect).
_BACKFILL = {("contacts", "accepted"): "UPDATE contacts SET accepted = 1, told = 0"}


def _missing_columns(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    columns = {
        table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for table in {t for t, _, _ in _ADDED_COLUMNS}
    }
    return [(t, name, kind) for t, name, kind in _ADDED_COLUMNS if name not in columns[t]]


def pack(**fields: bytes | int | float) -> bytes:
    """Fields as JSON (bytes in base64), to be sealed as one blob."""
    return json.dumps(
        {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in fields.items()}
    ).encode()


def unpack(blob: bytes) -> dict[str, Any]:
    """The fields `pack` wrote (bytes still in base64: see `from_b64`)."""
    raw = json.loads(blob)
    if not isinstance(raw, dict):
        raise StoreLocked("a stored key is damaged")
    return raw


def from_b64(value: Any) -> bytes:
    return base64.b64decode(value)
