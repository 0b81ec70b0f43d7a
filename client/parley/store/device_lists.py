"""Signed device lists as last verified, per user: the pinned account identity, the
highest version seen under it, and the list itself (its exact signed bytes, so it
can be verified again and shown).

The store keeps what the caller verified (`parley.devices.lists`); it does not
verify. Lists are public (the service hands them to anyone who sends to the
account), so they are not sealed.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from parley.store.db import Repository

__all__ = ["DeviceLists", "StoredList"]


@dataclass(frozen=True)
class StoredList:
    user_id: str
    account_identity: bytes  # pinned on first sight (TOFU)
    version: int  # the highest verified under that identity
    body: bytes
    signature: bytes

    def wire(self) -> dict[str, str]:
        """As the service sends it, to verify again."""
        return {
            "body": base64.b64encode(self.body).decode(),
            "signature": base64.b64encode(self.signature).decode(),
        }


class DeviceLists(Repository):
    """The last verified device list of each user (this account's own too)."""

    def get(self, user_id: str) -> StoredList | None:
        row = self._db.execute(
            "SELECT account_identity, version, body, signature FROM device_lists WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        if row is None:
            return None
        return StoredList(user_id, bytes(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]))

    def save(
        self, user_id: str, account_identity: bytes, version: int, body: bytes, signature: bytes
    ) -> None:
        """Keep a verified list (replacing the one before: the caller checked it is newer,
        or that the account identity changed)."""
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO device_lists"
                " (user_id, account_identity, version, body, signature, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, account_identity, version, body, signature, time.time()),
            )

    def forget(self, user_id: str) -> None:
        """Unpin (this account moved to a new primary: its next list starts a new chain)."""
        with self.transaction():
            self._db.execute("DELETE FROM device_lists WHERE user_id = ?", (user_id,))
