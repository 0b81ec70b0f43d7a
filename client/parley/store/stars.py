"""Starred messages: this device's own bookmarks, kept by message id.

A star is a row (message id, when it was starred) and no text: whoever has the
profile's file sees which messages are starred, as they see which conversation
a message is in and its ticks, but nothing of what they say. Stars stay on this
device (linked devices and history exports do not carry them). A message deleted
for everyone, or that disappears, loses its star (`Messages.delete_for_everyone`
and `Messages.erase` drop it).
"""

from __future__ import annotations

from parley.models import Message
from parley.store.db import Database, Repository
from parley.store.messages import Messages

__all__ = ["Stars"]


class Stars(Repository):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._messages = Messages(db)

    def add(self, message_id: int, at: float) -> str | None:
        """Star a shown message (starring it again changes nothing): None, or why it
        cannot be (none such, an action, deleted for everyone)."""
        with self.transaction():
            row = self._db.execute(
                "SELECT action, deleted FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return f"no message {message_id} in this profile"
            if row[0]:
                return (
                    "a reaction, edit or delete is not a message of its own: it cannot be starred"
                )
            if row[1] is not None:
                return "a message deleted for everyone cannot be starred"
            self._db.execute(
                "INSERT OR IGNORE INTO stars (message_id, starred_at) VALUES (?, ?)",
                (message_id, at),
            )
        return None

    def remove(self, message_id: int) -> bool:
        """Unstar; False if it was not starred."""
        with self.transaction():
            cursor = self._db.execute("DELETE FROM stars WHERE message_id = ?", (message_id,))
        return cursor.rowcount > 0

    def has(self, message_id: int) -> bool:
        row = self._db.execute("SELECT 1 FROM stars WHERE message_id = ?", (message_id,)).fetchone()
        return row is not None

    def listed(self, peer: str | None = None, *, now_ms: int) -> list[Message]:
        """The starred messages, in conversation `peer` or in all, newest first (none
        whose disappearing timer ran out)."""
        where = "(m.expires_at IS NULL OR m.expires_at > ?)"
        params: list[object] = [now_ms]
        if peer is not None:
            where += " AND m.peer = ?"
            params.append(peer)
        rows = self._db.execute(
            "SELECT m.id FROM stars s JOIN messages m ON m.id = s.message_id"  # noqa: S608
            f" WHERE m.action = 0 AND m.deleted IS NULL AND {where} ORDER BY m.id DESC",
            params,
        ).fetchall()
        found = (self._messages.by_id(row_id) for (row_id,) in rows)
        return [message for message in found if message is not None]
