"""The (sender, client id) pairs already received, so a message redelivered is dropped."""

from __future__ import annotations

from parley.store.db import Repository

__all__ = ["SEEN_RETENTION_S", "Seen"]

# (sender, client id) pairs outlive the server's 30-day mailbox TTL.
SEEN_RETENTION_S = 35 * 24 * 3600


class Seen(Repository):
    """Received (sender, client id) pairs, kept for SEEN_RETENTION_S."""

    def contains(self, sender: str, client_id: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM seen WHERE sender = ? AND client_id = ?", (sender, client_id)
            ).fetchone()
            is not None
        )

    def add(self, sender: str, client_id: str, now: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO seen (sender, client_id, seen_at) VALUES (?, ?, ?)",
                (sender, client_id, now),
            )

    def prune(self, now: float) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM seen WHERE seen_at < ?", (now - SEEN_RETENTION_S,))
