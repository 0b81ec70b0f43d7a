"""The call log: each call this device placed, rang for or heard of, newest first.

Who, when, which way, how it ended and how long it lasted are sealed together in
one value per call (the row keeps only the call's random id and its start time, to
order by), so the profile's file shows how many calls there were and when, but not
with whom.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

from parley.models import CallRecord, Direction
from parley.store.db import Cell, Repository

__all__ = ["CallLog"]

# How many calls the log keeps (the oldest go first).
MAX_CALLS = 1000


def _cell(call_id: str) -> Cell:
    return Cell("calls", "details", (call_id,))


def _record(details: dict[str, Any]) -> CallRecord:
    return CallRecord(**{**details, "direction": Direction(details["direction"])})


class CallLog(Repository):
    """Call records by call id."""

    def save(self, record: CallRecord) -> None:
        """Add the call, or replace what the log says of it."""
        sealed = self._vault.seal(json.dumps(asdict(record)).encode(), _cell(record.call_id))
        with self.transaction():
            self._db.execute(
                "INSERT INTO calls (call_id, started_at, details) VALUES (?, ?, ?)"
                " ON CONFLICT (call_id) DO UPDATE SET details = excluded.details",
                (record.call_id, record.started_at, sealed),
            )
            self._db.execute(
                "DELETE FROM calls WHERE id NOT IN"
                " (SELECT id FROM calls ORDER BY started_at DESC, id DESC LIMIT ?)",
                (MAX_CALLS,),
            )

    def update(self, call_id: str, **changes: Any) -> CallRecord | None:
        """Change some fields of a logged call; the new record, or None if unknown."""
        with self.transaction():
            record = self.get(call_id)
            if record is None:
                return None
            record = replace(record, **changes)
            self.save(record)
        return record

    def get(self, call_id: str) -> CallRecord | None:
        row = self._db.execute("SELECT details FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        if row is None:
            return None
        return _record(json.loads(self._vault.open(row[0], _cell(call_id))))

    def listed(self, limit: int = 50) -> list[CallRecord]:
        """The newest `limit` calls, newest first."""
        rows = self._db.execute(
            "SELECT call_id, details FROM calls ORDER BY started_at DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [_record(json.loads(self._vault.open(blob, _cell(cid)))) for cid, blob in rows]
