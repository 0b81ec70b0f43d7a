"""The profile's prekeys: signed prekeys (current and retired) and one-time prekeys,
and the base keys of the session starts (X3DH first messages) accepted with them.

`PreKeys` is also the crypto's `PreKeySource` (`signed_prekey`, `take_one_time_prekey`,
`note_session_start`).
"""

from __future__ import annotations

from parley.crypto import OneTimePreKey, SignedPreKey
from parley.errors import NotRegistered
from parley.store.db import Cell, Repository, from_b64, pack, unpack

__all__ = ["MAX_PREKEY_ID", "SESSION_START_RETENTION_S", "PreKeys"]

# Prekey ids wrap well inside the 32-bit range the wire allows.
MAX_PREKEY_ID = 0xFF_FFFF
# A session start's base key is kept this long (the mailbox keeps a message 30 days,
# plus margin), and past it for as long as its signed prekey is kept: a first message
# is never accepted twice while anything could still open it.
SESSION_START_RETENTION_S = 35 * 24 * 3600


def _signed_cell(key_id: int) -> Cell:
    return Cell("signed_prekeys", "secret", (key_id,))


def _one_time_cell(key_id: int) -> Cell:
    return Cell("one_time_prekeys", "secret", (key_id,))


class PreKeys(Repository):
    """Prekey ids, the sealed private halves of the prekeys published, and the base
    keys of accepted session starts."""

    def allocate_ids(self, count: int) -> int:
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

    def allocate_signed_id(self) -> int:
        with self.transaction():
            row = self._db.execute("SELECT next_signed_prekey_id FROM account").fetchone()
            if row is None:
                raise NotRegistered("no account")
            key_id = int(row[0]) if int(row[0]) <= MAX_PREKEY_ID else 1
            self._db.execute("UPDATE account SET next_signed_prekey_id = ?", (key_id + 1,))
            return key_id

    def add_signed(self, key: SignedPreKey) -> None:
        """Store a new signed prekey; the previous current one is retired (kept for grace)."""
        blob = pack(
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
                (key.key_id, self._vault.seal(blob, _signed_cell(key.key_id)), key.created_at),
            )

    def current_signed(self) -> SignedPreKey | None:
        row = self._db.execute(
            "SELECT key_id, secret FROM signed_prekeys WHERE retired_at IS NULL"
            " ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        return self._signed_from(int(row[0]), row[1]) if row else None

    def signed_prekey(self, key_id: int) -> SignedPreKey | None:
        """The current or a retired (still in its grace period) signed prekey."""
        row = self._db.execute(
            "SELECT secret FROM signed_prekeys WHERE key_id = ?", (key_id,)
        ).fetchone()
        return self._signed_from(key_id, row[0]) if row else None

    def drop_retired_before(self, cutoff: float) -> int:
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM signed_prekeys WHERE retired_at IS NOT NULL AND retired_at < ?",
                (cutoff,),
            )
            return cursor.rowcount

    def _signed_from(self, key_id: int, blob: bytes) -> SignedPreKey:
        raw = unpack(self._vault.open(blob, _signed_cell(key_id)))
        return SignedPreKey(
            key_id=int(raw["key_id"]),
            private_key=from_b64(raw["private_key"]),
            public_key=from_b64(raw["public_key"]),
            signature=from_b64(raw["signature"]),
            created_at=float(raw["created_at"]),
        )

    def add_one_time(self, keys: list[OneTimePreKey], now: float) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO one_time_prekeys (key_id, secret, created_at)"
                " VALUES (?, ?, ?)",
                [
                    (
                        k.key_id,
                        self._vault.seal(
                            pack(
                                key_id=k.key_id, private_key=k.private_key, public_key=k.public_key
                            ),
                            _one_time_cell(k.key_id),
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
        raw = unpack(self._vault.open(row[0], _one_time_cell(key_id)))
        return OneTimePreKey(
            key_id=int(raw["key_id"]),
            private_key=from_b64(raw["private_key"]),
            public_key=from_b64(raw["public_key"]),
        )

    def one_time_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM one_time_prekeys").fetchone()[0])

    # --- session starts -----------------------------------------------------------

    def note_session_start(self, base_key: bytes, signed_prekey_id: int, now: float) -> bool:
        """Remember an accepted session start's base key; False if it was accepted
        before (a replayed first message). Saved in the caller's transaction."""
        with self.transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO session_starts (base_key, signed_prekey_id, accepted_at)"
                " VALUES (?, ?, ?)",
                (base_key, signed_prekey_id, now),
            )
            return cursor.rowcount == 1

    def prune_session_starts(self, now: float) -> int:
        """Forget base keys accepted SESSION_START_RETENTION_S before `now` whose signed
        prekey is gone (nothing could open their first message any more)."""
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM session_starts WHERE accepted_at < ?"
                " AND signed_prekey_id NOT IN (SELECT key_id FROM signed_prekeys)",
                (now - SESSION_START_RETENTION_S,),
            )
            return cursor.rowcount
