"""Contacts, the identity key of each of their devices, and whether they are verified."""

from __future__ import annotations

import time
from typing import Any

from parley.models import Contact
from parley.store.db import Repository

__all__ = ["Contacts"]


class Contacts(Repository):
    """Contacts by user id, and their devices' identity keys (removed ones remembered)."""

    def add(self, user_id: str, name: str | None, phone: str | None) -> Contact:
        """Create or update a contact (a name given here replaces the old one)."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO contacts (user_id, name, phone, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET"
                " name = COALESCE(excluded.name, contacts.name),"
                " phone = COALESCE(excluded.phone, contacts.phone)",
                (user_id, name, phone, time.time()),
            )
        contact = self.get(user_id)
        assert contact is not None
        return contact

    def get(self, user_id: str) -> Contact | None:
        row = self._db.execute(
            "SELECT user_id, name, phone, identity_changed, verified, accepted FROM contacts"
            " WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        return _contact(row) if row else None

    def find(self, key: str) -> Contact | None:
        """By name (case-insensitive), phone, or user id."""
        row = self._db.execute(
            "SELECT user_id, name, phone, identity_changed, verified, accepted FROM contacts"
            " WHERE lower(name) = lower(?) OR phone = ? OR user_id = ?"
            " ORDER BY (lower(name) = lower(?)) DESC LIMIT 1",
            (key, key, key, key),
        ).fetchone()
        return _contact(row) if row else None

    def all(self) -> list[Contact]:
        rows = self._db.execute(
            "SELECT user_id, name, phone, identity_changed, verified, accepted FROM contacts"
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

    # -- acceptance (parley.relationships) -----------------------------------------------

    def set_accepted(self, user_id: str, accepted: bool) -> bool:
        """Accept (or stop accepting) `user_id`, to be told to the service; whether
        that changed anything."""
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO contacts (user_id, created_at) VALUES (?, ?)",
                (user_id, time.time()),
            )
            changed = self._db.execute(
                "UPDATE contacts SET accepted = ?, told = 0 WHERE user_id = ? AND accepted != ?",
                (int(accepted), user_id, int(accepted)),
            ).rowcount
        return bool(changed)

    def is_accepted(self, user_id: str) -> bool:
        row = self._db.execute(
            "SELECT accepted FROM contacts WHERE user_id = ?", (user_id,)
        ).fetchone()
        return bool(row and row[0])

    def untold(self) -> list[tuple[str, bool]]:
        """(user id, accepted) of every change the service has not been told yet."""
        rows = self._db.execute(
            "SELECT user_id, accepted FROM contacts WHERE told = 0 ORDER BY user_id"
        ).fetchall()
        return [(uid, bool(accepted)) for uid, accepted in rows]

    def mark_told(self, user_id: str, accepted: bool) -> None:
        """The service now knows `user_id` as (not) accepted, unless it changed since."""
        with self.transaction():
            self._db.execute(
                "UPDATE contacts SET told = 1 WHERE user_id = ? AND accepted = ?",
                (user_id, int(accepted)),
            )

    def adopt_saved(self, saved: set[str]) -> None:
        """What the service holds as this account's contacts (another device of it may
        have accepted or removed someone): taken over wherever nothing here waits to be
        told."""
        with self.transaction():
            now = time.time()
            for user_id in saved:
                self._db.execute(
                    "INSERT OR IGNORE INTO contacts (user_id, created_at, accepted, told)"
                    " VALUES (?, ?, 1, 1)",
                    (user_id, now),
                )
            rows = self._db.execute(
                "SELECT user_id, accepted FROM contacts WHERE told = 1"
            ).fetchall()
            for user_id, accepted in rows:
                if bool(accepted) != (user_id in saved):
                    self._db.execute(
                        "UPDATE contacts SET accepted = ? WHERE user_id = ?",
                        (int(user_id in saved), user_id),
                    )

    def requests(self) -> list[Contact]:
        """Contacts not accepted who have written to this account (1:1)."""
        rows = self._db.execute(
            "SELECT user_id, name, phone, identity_changed, verified, accepted FROM contacts"
            " WHERE accepted = 0 AND EXISTS (SELECT 1 FROM messages"
            " WHERE messages.peer = contacts.user_id AND messages.direction = 'in')"
            " ORDER BY created_at, user_id"
        ).fetchall()
        return [_contact(r) for r in rows]

    def identities(self, user_id: str) -> dict[str, bytes]:
        """The identity key of each current device of `user_id`."""
        rows = self._db.execute(
            "SELECT device_id, identity_key FROM devices WHERE user_id = ? AND removed = 0"
            " ORDER BY device_id",
            (user_id,),
        ).fetchall()
        return {d: bytes(k) for d, k in rows}

    def record_identity(
        self, user_id: str, device_id: str, identity_key: bytes, *, vouched: bool = False
    ) -> bool:
        """Remember a device's identity key. True when this is a CHANGE the user must
        hear about: a known device with a new key, or a key not seen before from a
        contact we already had a key for (a reinstall shows up as a new device).
        `vouched`: the contact's signed device list, under the account identity already
        pinned, lists this key for this device (a linked companion): no change."""
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
            changed = bool(ever) and identity_key not in ever and not vouched
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

    def mark_identity_changed(self, user_id: str) -> None:
        """The contact's account identity changed: warn until verified again."""
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO contacts (user_id, created_at) VALUES (?, ?)",
                (user_id, time.time()),
            )
            self._db.execute(
                "UPDATE contacts SET identity_changed = 1, verified = 0 WHERE user_id = ?",
                (user_id,),
            )

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


def _contact(row: tuple[Any, ...]) -> Contact:
    user_id, name, phone, changed, verified, accepted = row
    return Contact(user_id, name, phone, bool(changed), bool(verified), bool(accepted))
