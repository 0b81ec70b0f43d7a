"""Per-member ticks of the group messages this account sent."""

from __future__ import annotations

import json
import logging

from parley.groups.ticks import GroupReceipts
from parley.store.db import Cell, Repository

__all__ = ["Receipts"]

log = logging.getLogger("parley.store")


def _cell(message_id: int) -> Cell:
    return Cell("group_ticks", "receipts", (message_id,))


class Receipts(Repository):
    """Sealed `GroupReceipts` by local message id."""

    def save(self, message_id: int, receipts: GroupReceipts) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO group_ticks (message_id, receipts) VALUES (?, ?)",
                (
                    message_id,
                    self._vault.seal(json.dumps(receipts.to_dict()).encode(), _cell(message_id)),
                ),
            )

    def get(self, message_id: int) -> GroupReceipts | None:
        row = self._db.execute(
            "SELECT receipts FROM group_ticks WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is None:
            return None
        try:
            return GroupReceipts.from_dict(json.loads(self._vault.open(row[0], _cell(message_id))))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("group ticks of message %d are unreadable: %s", message_id, exc)
            return None
