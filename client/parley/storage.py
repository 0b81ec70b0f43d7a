"""The profile's local store: one SQLite file per profile directory.

Holds the account and its tokens, the identity key and prekeys, one Double
Ratchet session per remote device, contacts and their devices' identity keys,
messages with their tick state (and, for anything but text, the content that
shows it and fetches its file later: an attachment's key travels only inside
the encrypted message, so the store is the only place that keeps it), the
outbox, and the (sender, client id) pairs already received. For groups:
each group as last seen on the service, this device's sender key per group
(and which members were given it), the sender keys other member devices gave
us, group messages held until their sender's key arrives, and the per-member
ticks of the group messages we sent. Secrets (private keys, sessions, sender
keys, tokens, message texts and contents, attachment keys, where files were
saved, group ticks) are sealed by the profile's `Vault`; see `parley.vault`
for where its key lives.

Everything that must change together does so in one transaction
(`with store.transaction():`), e.g. a decrypted message, the session it
advanced, the one-time prekey it consumed and its (sender, client id) pair.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from parley.crypto import IdentityKeyPair, OneTimePreKey, Session, SignedPreKey
from parley.crypto.sender_keys import SenderKey, SenderKeyRecord
from parley.errors import NotRegistered, PassphraseRequired, StoreLocked
from parley.group_receipts import GroupReceipts
from parley.media import Content, ContentError, Text, encode_content, parse_content
from parley.models import Account, Contact, Direction, Group, Message, MessageState
from parley.protocol import OutboxEntry
from parley.vault import KDF_MEMLIMIT, KDF_OPSLIMIT, KeyringLike, Protection, Vault, system_keyring

__all__ = [
    "DB_FILE",
    "MAX_PREKEY_ID",
    "HeldMessage",
    "OutboxItem",
    "OwnSenderKey",
    "Store",
    "Tokens",
]

log = logging.getLogger("parley.storage")

DB_FILE = "parley.db"
# 2: messages keep the content of non-text kinds and where a download was saved
# 3: groups, sender keys, held group messages, group ticks; group outbox entries
SCHEMA_VERSION = 3
# Prekey ids wrap well inside the 32-bit range the wire allows.
MAX_PREKEY_ID = 0xFF_FFFF
# (sender, client id) pairs outlive the server's 30-day mailbox TTL.
SEEN_RETENTION_S = 35 * 24 * 3600
# Replaced sessions kept per device (Signal keeps a few for the same reason).
MAX_OLD_SESSIONS = 5

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
    updated_at REAL NOT NULL, PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS old_sessions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, state BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS old_sessions_by_device ON old_sessions (user_id, device_id, seq);
CREATE TABLE IF NOT EXISTS contacts (
    user_id TEXT PRIMARY KEY, name TEXT UNIQUE, phone TEXT,
    identity_changed INTEGER NOT NULL DEFAULT 0, verified INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
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
    UNIQUE (sender, client_id)
);
CREATE INDEX IF NOT EXISTS messages_by_peer ON messages (peer, id);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL UNIQUE, recipient TEXT NOT NULL,
    payloads TEXT NOT NULL, plaintext BLOB NOT NULL, created_at REAL NOT NULL,
    body TEXT, version INTEGER, after TEXT
);
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL,
    members TEXT NOT NULL, admins TEXT NOT NULL, created_by TEXT, created_at INTEGER,
    active INTEGER NOT NULL DEFAULT 1, stale INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
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
CREATE TABLE IF NOT EXISTS seen (
    sender TEXT NOT NULL, client_id TEXT NOT NULL, seen_at REAL NOT NULL,
    PRIMARY KEY (sender, client_id)
);
"""

_AUTO: Literal["auto"] = "auto"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    access_expires_at: float  # epoch seconds


@dataclass(frozen=True)
class OwnSenderKey:
    """This device's sender key for a group, the group version it was made for,
    and the members it has been sent to."""

    key: SenderKey
    version: int
    distributed: frozenset[str]


@dataclass(frozen=True)
class HeldMessage:
    """A group message kept until its sender's key arrives (ciphertext, as received)."""

    seq: int
    group_id: str
    sender: str
    device_id: str
    client_id: str
    body: bytes
    ts: int
    held_at: float


@dataclass(frozen=True)
class OutboxItem:
    """An outbox entry and the plaintext it carries (kept to re-encrypt for new devices)."""

    entry: OutboxEntry
    plaintext: bytes


class Store:
    """The SQLite store of one profile. Open with `Store.open(directory, ...)`."""

    def __init__(self, conn: sqlite3.Connection, vault: Vault, path: Path) -> None:
        self._db = conn
        self._vault = vault
        self.path = path
        self._depth = 0

    # --- opening -----------------------------------------------------------------

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
    ) -> Store:
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
            conn.executescript(_SCHEMA)
            _migrate(conn)
            ring = system_keyring() if keyring == _AUTO else keyring
            vault = cls._unlock(conn, passphrase, ring, allow_plaintext, kdf_limits)
        except BaseException:
            conn.close()
            raise
        store = cls(conn, vault, path)
        store._prune_seen(time.time())
        return store

    @staticmethod
    def _unlock(
        conn: sqlite3.Connection,
        passphrase: str | None,
        ring: KeyringLike | None,
        allow_plaintext: bool,
        kdf_limits: tuple[int, int],
    ) -> Vault:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if "protection" not in meta:
            return Store._create_vault(conn, passphrase, ring, allow_plaintext, kdf_limits)
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
        vault.verify(base64.b64decode(meta["check"]))
        return vault

    @staticmethod
    def _create_vault(
        conn: sqlite3.Connection,
        passphrase: str | None,
        ring: KeyringLike | None,
        allow_plaintext: bool,
        kdf_limits: tuple[int, int],
    ) -> Vault:
        meta: dict[str, str] = {"schema_version": str(SCHEMA_VERSION)}
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

    @property
    def protection(self) -> Protection:
        return self._vault.protection

    def keyring_name(self) -> str | None:
        """The name this profile's key has in the OS keyring (None when it has none)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'keyring_name'").fetchone()
        return str(row[0]) if row else None

    def close(self) -> None:
        self._db.close()

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
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # --- account and tokens -------------------------------------------------------

    def save_account(self, account: Account, identity: IdentityKeyPair) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO account (id, user_id, device_id, phone, identity)"
                " VALUES (1, ?, ?, ?, ?)",
                (
                    account.user_id,
                    account.device_id,
                    account.phone,
                    self._vault.seal(identity.to_bytes()),
                ),
            )

    def account(self) -> Account | None:
        row = self._db.execute("SELECT user_id, device_id, phone FROM account").fetchone()
        return Account(*row) if row else None

    def require_account(self) -> Account:
        account = self.account()
        if account is None:
            raise NotRegistered("this profile has no account yet: sign up first")
        return account

    def identity(self) -> IdentityKeyPair:
        row = self._db.execute("SELECT identity FROM account").fetchone()
        if row is None:
            raise NotRegistered("this profile has no identity key yet: sign up first")
        return IdentityKeyPair.from_bytes(self._vault.open(row[0]))

    def save_tokens(self, tokens: Tokens) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE account SET access_token = ?, refresh_token = ?, access_expires_at = ?",
                (
                    self._vault.seal(tokens.access_token.encode()),
                    self._vault.seal(tokens.refresh_token.encode()),
                    tokens.access_expires_at,
                ),
            )

    def forget_tokens(self) -> None:
        """This device was signed out: it can no longer speak to the service."""
        with self.transaction():
            self._db.execute(
                "UPDATE account SET access_token = NULL, refresh_token = NULL,"
                " access_expires_at = NULL"
            )

    def tokens(self) -> Tokens | None:
        row = self._db.execute(
            "SELECT access_token, refresh_token, access_expires_at FROM account"
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return Tokens(
            self._vault.open(row[0]).decode(), self._vault.open(row[1]).decode(), float(row[2])
        )

    # --- prekeys (also the crypto's PreKeySource) ----------------------------------

    def allocate_prekey_ids(self, count: int) -> int:
        """Reserve `count` consecutive one-time prekey ids; returns the first."""
        with self.transaction():
            row = self._db.execute("SELECT next_prekey_id FROM account").fetchone()
            if row is None:
                raise NotRegistered("no account")
            start = int(row[0])
            if start + count > MAX_PREKEY_ID:
                start = 1
            self._db.execute("UPDATE account SET next_prekey_id = ?", (start + count,))
            return start

    def allocate_signed_prekey_id(self) -> int:
        with self.transaction():
            row = self._db.execute("SELECT next_signed_prekey_id FROM account").fetchone()
            if row is None:
                raise NotRegistered("no account")
            key_id = int(row[0]) if int(row[0]) <= MAX_PREKEY_ID else 1
            self._db.execute("UPDATE account SET next_signed_prekey_id = ?", (key_id + 1,))
            return key_id

    def add_signed_prekey(self, key: SignedPreKey) -> None:
        """Store a new signed prekey; the previous current one is retired (kept for grace)."""
        blob = _pack(
            key_id=key.key_id,
            private_key=key.private_key,
            public_key=key.public_key,
            signature=key.signature,
            created_at=key.created_at,
        )
        with self.transaction():
            self._db.execute(
                "UPDATE signed_prekeys SET retired_at = ? WHERE retired_at IS NULL",
                (key.created_at,),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO signed_prekeys (key_id, secret, created_at, retired_at)"
                " VALUES (?, ?, ?, NULL)",
                (key.key_id, self._vault.seal(blob), key.created_at),
            )

    def current_signed_prekey(self) -> SignedPreKey | None:
        row = self._db.execute(
            "SELECT secret FROM signed_prekeys WHERE retired_at IS NULL"
            " ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        return self._signed_prekey_from(row[0]) if row else None

    def signed_prekey(self, key_id: int) -> SignedPreKey | None:
        """The current or a retired (still in its grace period) signed prekey."""
        row = self._db.execute(
            "SELECT secret FROM signed_prekeys WHERE key_id = ?", (key_id,)
        ).fetchone()
        return self._signed_prekey_from(row[0]) if row else None

    def drop_signed_prekeys_retired_before(self, cutoff: float) -> int:
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM signed_prekeys WHERE retired_at IS NOT NULL AND retired_at < ?",
                (cutoff,),
            )
            return cursor.rowcount

    def _signed_prekey_from(self, blob: bytes) -> SignedPreKey:
        raw = _unpack(self._vault.open(blob))
        return SignedPreKey(
            key_id=int(raw["key_id"]),
            private_key=_b(raw["private_key"]),
            public_key=_b(raw["public_key"]),
            signature=_b(raw["signature"]),
            created_at=float(raw["created_at"]),
        )

    def add_one_time_prekeys(self, keys: list[OneTimePreKey], now: float) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO one_time_prekeys (key_id, secret, created_at)"
                " VALUES (?, ?, ?)",
                [
                    (
                        k.key_id,
                        self._vault.seal(
                            _pack(
                                key_id=k.key_id, private_key=k.private_key, public_key=k.public_key
                            )
                        ),
                        now,
                    )
                    for k in keys
                ],
            )

    def take_one_time_prekey(self, key_id: int) -> OneTimePreKey | None:
        """The key, deleted in the current transaction (rolled back if decryption fails)."""
        with self.transaction():
            row = self._db.execute(
                "SELECT secret FROM one_time_prekeys WHERE key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                return None
            self._db.execute("DELETE FROM one_time_prekeys WHERE key_id = ?", (key_id,))
        raw = _unpack(self._vault.open(row[0]))
        return OneTimePreKey(
            key_id=int(raw["key_id"]),
            private_key=_b(raw["private_key"]),
            public_key=_b(raw["public_key"]),
        )

    def one_time_prekey_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM one_time_prekeys").fetchone()[0])

    # --- sessions ---------------------------------------------------------------------

    def session(self, user_id: str, device_id: str) -> Session | None:
        row = self._db.execute(
            "SELECT state FROM sessions WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        ).fetchone()
        return Session.from_bytes(self._vault.open(row[0])) if row else None

    def sessions(self, user_id: str) -> dict[str, Session]:
        rows = self._db.execute(
            "SELECT device_id, state FROM sessions WHERE user_id = ? ORDER BY device_id",
            (user_id,),
        ).fetchall()
        return {device: Session.from_bytes(self._vault.open(state)) for device, state in rows}

    def save_session(self, user_id: str, device_id: str, session: Session, now: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO sessions (user_id, device_id, state, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (user_id, device_id, self._vault.seal(session.to_bytes()), now),
            )

    def archive_session(self, user_id: str, device_id: str) -> None:
        """Keep the current session aside (newest first, at most MAX_OLD_SESSIONS): when
        both sides start a session at once, the other may keep using the one replaced."""
        with self.transaction():
            row = self._db.execute(
                "SELECT state FROM sessions WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            ).fetchone()
            if row is None:
                return
            self._db.execute(
                "INSERT INTO old_sessions (user_id, device_id, state) VALUES (?, ?, ?)",
                (user_id, device_id, row[0]),
            )
            self._db.execute(
                "DELETE FROM old_sessions WHERE user_id = ? AND device_id = ? AND seq NOT IN"
                " (SELECT seq FROM old_sessions WHERE user_id = ? AND device_id = ?"
                "  ORDER BY seq DESC LIMIT ?)",
                (user_id, device_id, user_id, device_id, MAX_OLD_SESSIONS),
            )
            self._db.execute(
                "DELETE FROM sessions WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )

    def old_sessions(self, user_id: str, device_id: str) -> list[tuple[int, Session]]:
        rows = self._db.execute(
            "SELECT seq, state FROM old_sessions WHERE user_id = ? AND device_id = ?"
            " ORDER BY seq DESC",
            (user_id, device_id),
        ).fetchall()
        return [(seq, Session.from_bytes(self._vault.open(state))) for seq, state in rows]

    def promote_session(
        self, user_id: str, device_id: str, seq: int, session: Session, now: float
    ) -> None:
        """An archived session proved to be the one in use: make it current again."""
        with self.transaction():
            self.archive_session(user_id, device_id)
            self._db.execute("DELETE FROM old_sessions WHERE seq = ?", (seq,))
            self.save_session(user_id, device_id, session, now)

    def delete_session(self, user_id: str, device_id: str) -> None:
        with self.transaction():
            self._db.execute(
                "DELETE FROM sessions WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )

    # --- contacts and their devices' identity keys ---------------------------------

    def add_contact(self, user_id: str, name: str | None, phone: str | None) -> Contact:
        """Create or update a contact (a name given here replaces the old one)."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO contacts (user_id, name, phone, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET"
                " name = COALESCE(excluded.name, contacts.name),"
                " phone = COALESCE(excluded.phone, contacts.phone)",
                (user_id, name, phone, time.time()),
            )
        contact = self.contact(user_id)
        assert contact is not None
        return contact

    def contact(self, user_id: str) -> Contact | None:
        row = self._db.execute(
            "SELECT user_id, name, phone, identity_changed, verified FROM contacts"
            " WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        return _contact(row) if row else None

    def find_contact(self, key: str) -> Contact | None:
        """By name (case-insensitive), phone, or user id."""
        row = self._db.execute(
            "SELECT user_id, name, phone, identity_changed, verified FROM contacts"
            " WHERE lower(name) = lower(?) OR phone = ? OR user_id = ?"
            " ORDER BY (lower(name) = lower(?)) DESC LIMIT 1",
            (key, key, key, key),
        ).fetchone()
        return _contact(row) if row else None

    def contacts(self) -> list[Contact]:
        rows = self._db.execute(
            "SELECT user_id, name, phone, identity_changed, verified FROM contacts"
            " ORDER BY name IS NULL, lower(name), user_id"
        ).fetchall()
        return [_contact(r) for r in rows]

    def set_verified(self, user_id: str, verified: bool) -> None:
        """The user compared safety numbers: clears the identity-changed warning."""
        with self.transaction():
            self._db.execute(
                "UPDATE contacts SET verified = ?, identity_changed = 0 WHERE user_id = ?",
                (int(verified), user_id),
            )

    def device_identities(self, user_id: str) -> dict[str, bytes]:
        """The identity key of each current device of `user_id`."""
        rows = self._db.execute(
            "SELECT device_id, identity_key FROM devices WHERE user_id = ? AND removed = 0"
            " ORDER BY device_id",
            (user_id,),
        ).fetchall()
        return {d: bytes(k) for d, k in rows}

    def record_identity(self, user_id: str, device_id: str, identity_key: bytes) -> bool:
        """Remember a device's identity key. True when this is a CHANGE the user must
        hear about: a known device with a new key, or a key not seen before from a
        contact we already had a key for (a reinstall shows up as a new device)."""
        with self.transaction():
            # removed devices count too: a reinstall removes one device and adds another
            rows = self._db.execute(
                "SELECT device_id, identity_key, removed FROM devices WHERE user_id = ?",
                (user_id,),
            ).fetchall()
            current = {d: (bytes(k), bool(r)) for d, k, r in rows}
            if current.get(device_id) == (identity_key, False):
                return False
            ever = {key for key, _ in current.values()}
            changed = bool(ever) and identity_key not in ever
            self._db.execute(
                "INSERT OR REPLACE INTO devices"
                " (user_id, device_id, identity_key, first_seen, removed) VALUES (?, ?, ?, ?, 0)",
                (user_id, device_id, identity_key, time.time()),
            )
            self._db.execute(
                "INSERT OR IGNORE INTO contacts (user_id, created_at) VALUES (?, ?)",
                (user_id, time.time()),
            )
            if changed:
                self._db.execute(
                    "UPDATE contacts SET identity_changed = 1, verified = 0 WHERE user_id = ?",
                    (user_id,),
                )
            return changed

    def forget_device(self, user_id: str, device_id: str) -> None:
        """A device the server no longer lists: its session goes; its key is remembered
        (as removed) so a replacement device with another key still raises a warning."""
        with self.transaction():
            for table in ("sessions", "old_sessions"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?",  # noqa: S608
                    (user_id, device_id),
                )
            self._db.execute(
                "UPDATE devices SET removed = 1 WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )

    # --- messages -----------------------------------------------------------------

    def add_message(
        self,
        *,
        peer: str,
        direction: Direction,
        sender: str,
        client_id: str,
        text: str,
        ts: int,
        state: MessageState,
        content: Content | None = None,
    ) -> Message | None:
        """Store a message; None if (sender, client id) is already stored.

        `text` is what lists show; `content` is the message itself when it is
        not a plain text (a text's content is its text).
        """
        kept = None if content is None or isinstance(content, Text) else content
        with self.transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO messages"
                " (peer, direction, sender, client_id, body, ts, state, content)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    peer,
                    direction.value,
                    sender,
                    client_id,
                    self._vault.seal(text.encode()),
                    ts,
                    state.value,
                    None if kept is None else self._vault.seal(encode_content(kept).encode()),
                ),
            )
            if cursor.rowcount == 0:
                return None
            row_id = cursor.lastrowid
        assert row_id is not None
        return Message(
            row_id,
            peer,
            direction,
            client_id,
            sender,
            text,
            ts,
            state,
            content=kept if kept is not None else _text_content(text),
        )

    def message_by_id(self, message_id: int) -> Message | None:
        """A message by its local row id (`Message.id`)."""
        row = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?",  # noqa: S608
            (message_id,),
        ).fetchone()
        return self._message(row) if row else None

    def set_message_file(self, message_id: int, path: Path | None) -> None:
        """Where an attachment was saved on this device (None: it is not, any more)."""
        sealed = None if path is None else self._vault.seal(os.fsencode(path))
        with self.transaction():
            self._db.execute("UPDATE messages SET file = ? WHERE id = ?", (sealed, message_id))

    def message(self, sender: str, client_id: str) -> Message | None:
        row = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE sender = ? AND client_id = ?",  # noqa: S608
            (sender, client_id),
        ).fetchone()
        return self._message(row) if row else None

    def history(self, peer: str, limit: int = 50, before_id: int | None = None) -> list[Message]:
        """The last `limit` messages with `peer`, oldest first."""
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
            " WHERE peer = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (peer, before_id if before_id is not None else 2**62, limit),
        ).fetchall()
        return [self._message(r) for r in reversed(rows)]

    def advance(
        self, sender: str, peer: str, client_ids: list[str], state: MessageState
    ) -> list[Message]:
        """Move messages forward to `state` (never backwards); returns those that moved."""
        moved: list[Message] = []
        with self.transaction():
            for client_id in client_ids:
                row = self._db.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
                    " WHERE sender = ? AND client_id = ? AND peer = ?",
                    (sender, client_id, peer),
                ).fetchone()
                if row is None:
                    continue
                message = self._message(row)
                if message.state.rank >= state.rank and message.state is not MessageState.FAILED:
                    continue
                self._db.execute(
                    "UPDATE messages SET state = ? WHERE id = ?", (state.value, message.id)
                )
                moved.append(replace(message, state=state))
        return moved

    def set_message_state(
        self, message_id: int, state: MessageState, ts: int | None = None
    ) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE messages SET state = ?, ts = COALESCE(?, ts) WHERE id = ?",
                (state.value, ts, message_id),
            )

    def unread(self, peer: str) -> list[Message]:
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
            " WHERE peer = ? AND direction = 'in' AND state = 'received' ORDER BY id",
            (peer,),
        ).fetchall()
        return [self._message(r) for r in rows]

    def _message(self, row: tuple[Any, ...]) -> Message:
        row_id, peer, direction, sender, client_id, body, ts, state, content, file = row
        text = self._vault.open(body).decode()
        return Message(
            id=row_id,
            peer=peer,
            direction=Direction(direction),
            client_id=client_id,
            sender=sender,
            text=text,
            ts=ts,
            state=MessageState(state),
            content=_text_content(text) if content is None else self._content(row_id, content),
            file=None if file is None else Path(os.fsdecode(self._vault.open(file))),
        )

    def _content(self, row_id: int, sealed: bytes) -> Content | None:
        try:
            return parse_content(self._vault.open(sealed))
        except ContentError as exc:
            # it was valid when stored; a damaged row must not hide the conversation
            log.warning("message %d has unreadable content: %s", row_id, exc)
            return None

    # --- outbox ---------------------------------------------------------------------

    def outbox_add(self, entry: OutboxEntry, plaintext: bytes, now: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO outbox (client_id, recipient, payloads, plaintext, created_at,"
                " body, version, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.client_id,
                    entry.to,
                    json.dumps(entry.payloads or {}),
                    self._vault.seal(plaintext),
                    now,
                    entry.body,
                    entry.version,
                    json.dumps(list(entry.after)) if entry.after else None,
                ),
            )

    def outbox_update_group(
        self, client_id: str, body: str, version: int, after: tuple[str, ...]
    ) -> None:
        """A group entry re-encrypted for the group's new version."""
        with self.transaction():
            self._db.execute(
                "UPDATE outbox SET body = ?, version = ?, after = ? WHERE client_id = ?",
                (body, version, json.dumps(list(after)) if after else None, client_id),
            )

    def outbox_update(self, client_id: str, payloads: dict[str, str]) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE outbox SET payloads = ? WHERE client_id = ?",
                (json.dumps(payloads), client_id),
            )

    def outbox_remove(self, client_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM outbox WHERE client_id = ?", (client_id,))

    def outbox_plaintext(self, client_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT plaintext FROM outbox WHERE client_id = ?", (client_id,)
        ).fetchone()
        return self._vault.open(row[0]) if row else None

    def outbox(self) -> list[OutboxItem]:
        """Every unsent entry, oldest first (FIFO)."""
        rows = self._db.execute(
            "SELECT client_id, recipient, payloads, plaintext, body, version, after"
            " FROM outbox ORDER BY seq"
        ).fetchall()
        return [
            OutboxItem(
                OutboxEntry(
                    client_id=cid,
                    to=to,
                    payloads=None if body is not None else json.loads(payloads),
                    body=body,
                    version=version,
                    after=tuple(json.loads(after)) if after else (),
                ),
                self._vault.open(plaintext),
            )
            for cid, to, payloads, plaintext, body, version, after in rows
        ]

    # --- groups -------------------------------------------------------------------------

    def save_group(self, group: Group, now: float) -> Group | None:
        """Keep a group as the service answered it (fresh: no longer stale). Returns
        what was stored before, if anything."""
        with self.transaction():
            previous = self.group(group.group_id)
            self._db.execute(
                "INSERT OR REPLACE INTO groups (group_id, name, version, members, admins,"
                " created_by, created_at, active, stale, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    group.group_id,
                    group.name,
                    group.version,
                    json.dumps(list(group.members)),
                    json.dumps(list(group.admins)),
                    group.created_by,
                    group.created_at,
                    int(group.active),
                    now,
                ),
            )
        return previous

    def note_group(self, group_id: str, now: float) -> None:
        """A group heard of from a message or a sender key, and not known as it is
        now: a placeholder if it is new, and either way stale until read again
        from the service."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO groups (group_id, name, version, members, admins,"
                " active, stale, updated_at) VALUES (?, '', 0, '[]', '[]', 1, 1, ?)"
                " ON CONFLICT (group_id) DO UPDATE SET stale = 1",
                (group_id, now),
            )

    def stale_groups(self) -> list[str]:
        rows = self._db.execute(
            "SELECT group_id FROM groups WHERE stale = 1 ORDER BY group_id"
        ).fetchall()
        return [r[0] for r in rows]

    def group(self, group_id: str) -> Group | None:
        row = self._db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM groups WHERE group_id = ?",  # noqa: S608
            (group_id,),
        ).fetchone()
        return _group(row) if row else None

    def groups(self, *, include_inactive: bool = False) -> list[Group]:
        """Known groups by name (placeholders not yet filled in are left out)."""
        rows = self._db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM groups"  # noqa: S608
            " WHERE version > 0 AND (active = 1 OR ?) ORDER BY lower(name), group_id",
            (int(include_inactive),),
        ).fetchall()
        return [_group(r) for r in rows]

    def find_groups(self, key: str) -> list[Group]:
        """By group id (even one only heard of, not read yet), or by name
        (case-insensitive; several groups may share one)."""
        rows = self._db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM groups"  # noqa: S608
            " WHERE group_id = ? OR (version > 0 AND lower(name) = lower(?))"
            " ORDER BY active DESC, group_id = ? DESC, group_id",
            (key, key, key),
        ).fetchall()
        return [_group(r) for r in rows]

    def leave_group(self, group_id: str) -> None:
        """This account is out of the group: it stays in the list (inactive, with its
        history) and every sender key of it, ours and theirs, is deleted."""
        with self.transaction():
            self._db.execute(
                "UPDATE groups SET active = 0, stale = 0 WHERE group_id = ?", (group_id,)
            )
            for table in ("own_sender_keys", "sender_keys", "held_group_messages"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE group_id = ?",  # noqa: S608
                    (group_id,),
                )

    # --- sender keys -----------------------------------------------------------------------

    def own_sender_key(self, group_id: str) -> OwnSenderKey | None:
        row = self._db.execute(
            "SELECT version, state, distributed FROM own_sender_keys WHERE group_id = ?",
            (group_id,),
        ).fetchone()
        if row is None:
            return None
        version, state, distributed = row
        return OwnSenderKey(
            SenderKey.from_bytes(self._vault.open(state)),
            int(version),
            frozenset(json.loads(distributed)),
        )

    def save_own_sender_key(self, group_id: str, own: OwnSenderKey, now: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO own_sender_keys (group_id, version, state, distributed, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id) DO UPDATE SET"
                " version = excluded.version, state = excluded.state,"
                " distributed = excluded.distributed",
                (
                    group_id,
                    own.version,
                    self._vault.seal(own.key.to_bytes()),
                    json.dumps(sorted(own.distributed)),
                    now,
                ),
            )

    def forget_distribution(self, user_id: str) -> None:
        """`user_id` must be sent our sender keys again (a device of theirs changed,
        or a key sent to them was never delivered)."""
        with self.transaction():
            rows = self._db.execute("SELECT group_id, distributed FROM own_sender_keys").fetchall()
            for group_id, distributed in rows:
                given = json.loads(distributed)
                if user_id in given:
                    given.remove(user_id)
                    self._db.execute(
                        "UPDATE own_sender_keys SET distributed = ? WHERE group_id = ?",
                        (json.dumps(given), group_id),
                    )

    def sender_key_record(
        self, group_id: str, sender: str, device_id: str
    ) -> SenderKeyRecord | None:
        row = self._db.execute(
            "SELECT record FROM sender_keys WHERE group_id = ? AND sender = ? AND device_id = ?",
            (group_id, sender, device_id),
        ).fetchone()
        return SenderKeyRecord.from_bytes(self._vault.open(row[0])) if row else None

    def save_sender_key_record(
        self, group_id: str, sender: str, device_id: str, record: SenderKeyRecord, now: float
    ) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO sender_keys"
                " (group_id, sender, device_id, record, updated_at) VALUES (?, ?, ?, ?, ?)",
                (group_id, sender, device_id, self._vault.seal(record.to_bytes()), now),
            )

    # --- group messages held for a key -----------------------------------------------

    def hold_group_message(
        self,
        group_id: str,
        sender: str,
        device_id: str,
        client_id: str,
        body: bytes,
        ts: int,
        now: float,
    ) -> bool:
        """Keep a group message until its sender key arrives; False if it is held already."""
        digest = hashlib.sha256(body).hexdigest()
        with self.transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO held_group_messages"
                " (group_id, sender, device_id, client_id, digest, body, ts, held_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (group_id, sender, device_id, client_id, digest, body, ts, now),
            )
            return cursor.rowcount == 1

    def held_group_messages(
        self, group_id: str | None = None, sender: str | None = None, device_id: str | None = None
    ) -> list[HeldMessage]:
        """Held messages, oldest first; all of them, or one group's, or one sender device's."""
        rows = self._db.execute(
            "SELECT seq, group_id, sender, device_id, client_id, body, ts, held_at"
            " FROM held_group_messages WHERE (? IS NULL OR group_id = ?)"
            " AND (? IS NULL OR sender = ?) AND (? IS NULL OR device_id = ?) ORDER BY seq",
            (group_id, group_id, sender, sender, device_id, device_id),
        ).fetchall()
        return [
            HeldMessage(seq, gid, snd, dev, cid, bytes(body), ts, held_at)
            for seq, gid, snd, dev, cid, body, ts, held_at in rows
        ]

    def release_held(self, seqs: list[int]) -> None:
        with self.transaction():
            self._db.executemany(
                "DELETE FROM held_group_messages WHERE seq = ?", [(s,) for s in seqs]
            )

    def prune_held(self, older_than: float, keep_per_sender: int) -> list[HeldMessage]:
        """Drop held messages held since before `older_than`, and all but the newest
        `keep_per_sender` of each sender device in each group; returns what went."""
        with self.transaction():
            dropped = [m for m in self.held_group_messages() if m.held_at < older_than]
            rows = self._db.execute(
                "SELECT seq FROM held_group_messages AS h WHERE seq NOT IN"
                " (SELECT seq FROM held_group_messages AS k WHERE k.group_id = h.group_id"
                "  AND k.sender = h.sender AND k.device_id = h.device_id"
                "  ORDER BY seq DESC LIMIT ?)",
                (keep_per_sender,),
            ).fetchall()
            crowded = {r[0] for r in rows}
            dropped += [
                m for m in self.held_group_messages() if m.seq in crowded and m not in dropped
            ]
            self.release_held([m.seq for m in dropped])
        return dropped

    # --- group ticks ------------------------------------------------------------------

    def save_group_receipts(self, message_id: int, receipts: GroupReceipts) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO group_ticks (message_id, receipts) VALUES (?, ?)",
                (message_id, self._vault.seal(json.dumps(receipts.to_dict()).encode())),
            )

    def group_receipts(self, message_id: int) -> GroupReceipts | None:
        row = self._db.execute(
            "SELECT receipts FROM group_ticks WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is None:
            return None
        try:
            return GroupReceipts.from_dict(json.loads(self._vault.open(row[0])))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("group ticks of message %d are unreadable: %s", message_id, exc)
            return None

    # --- seen (sender, client id) pairs -----------------------------------------------

    def is_seen(self, sender: str, client_id: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM seen WHERE sender = ? AND client_id = ?", (sender, client_id)
            ).fetchone()
            is not None
        )

    def mark_seen(self, sender: str, client_id: str, now: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO seen (sender, client_id, seen_at) VALUES (?, ?, ?)",
                (sender, client_id, now),
            )

    def _prune_seen(self, now: float) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM seen WHERE seen_at < ?", (now - SEEN_RETENTION_S,))


_MESSAGE_COLUMNS = "id, peer, direction, sender, client_id, body, ts, state, content, file"
_GROUP_COLUMNS = "group_id, name, version, members, admins, created_by, created_at, active"


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a store written by an earlier version up to SCHEMA_VERSION (new tables
    come from _SCHEMA's CREATE IF NOT EXISTS; new columns are added here)."""
    if not _missing_columns(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # again under the write lock: another process may have just done it
        for table, name, kind in _missing_columns(conn):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        # a store whose vault was never set up gets its version with the vault
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# Columns added since the first version of each table: (table, column, type).
_ADDED_COLUMNS = (
    ("messages", "content", "BLOB"),
    ("messages", "file", "BLOB"),
    ("outbox", "body", "TEXT"),
    ("outbox", "version", "INTEGER"),
    ("outbox", "after", "TEXT"),
)


def _missing_columns(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    columns = {
        table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for table in {t for t, _, _ in _ADDED_COLUMNS}
    }
    return [(t, name, kind) for t, name, kind in _ADDED_COLUMNS if name not in columns[t]]


def _text_content(text: str) -> Content | None:
    try:
        return Text(text)
    except ContentError:
        return None


def _group(row: tuple[Any, ...]) -> Group:
    group_id, name, version, members, admins, created_by, created_at, active = row
    return Group(
        group_id=group_id,
        name=name,
        version=int(version),
        members=tuple(json.loads(members)),
        admins=tuple(json.loads(admins)),
        created_by=created_by,
        created_at=created_at,
        active=bool(active),
    )


def _contact(row: tuple[Any, ...]) -> Contact:
    user_id, name, phone, changed, verified = row
    return Contact(user_id, name, phone, bool(changed), bool(verified))


def _pack(**fields: bytes | int | float) -> bytes:
    return json.dumps(
        {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in fields.items()}
    ).encode()


def _unpack(blob: bytes) -> dict[str, Any]:
    raw = json.loads(blob)
    if not isinstance(raw, dict):
        raise StoreLocked("a stored key is damaged")
    return raw


def _b(value: Any) -> bytes:
    return base64.b64decode(value)
