"""The outbox: entries not yet accepted by the service, oldest first."""

from __future__ import annotations

import json
from dataclasses import dataclass

from parley.protocol import OutboxEntry
from parley.store.db import Cell, Repository

__all__ = ["Outbox", "OutboxItem"]


def _cell(client_id: str) -> Cell:
    return Cell("outbox", "plaintext", (client_id,))


@dataclass(frozen=True)
class OutboxItem:
    """An outbox entry and the plaintext it carries (kept to re-encrypt for new devices)."""

    entry: OutboxEntry
    plaintext: bytes


class Outbox(Repository):
    """Unsent entries by client id (a sealed copy of each plaintext kept with them)."""

    def add(self, entry: OutboxEntry, plaintext: bytes, now: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO outbox (client_id, recipient, payloads, plaintext, created_at,"
                " body, version, after, ttl, ephemeral, ring)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.client_id,
                    entry.to,
                    json.dumps(entry.payloads or {}),
                    self._vault.seal(plaintext, _cell(entry.client_id)),
                    now,
                    entry.body,
                    entry.version,
                    json.dumps(list(entry.after)) if entry.after else None,
                    entry.ttl,
                    int(entry.ephemeral),
                    int(entry.ring),
                ),
            )

    def update_group(self, client_id: str, body: str, version: int, after: tuple[str, ...]) -> None:
        """A group entry re-encrypted for the group's new version."""
        with self.transaction():
            self._db.execute(
                "UPDATE outbox SET body = ?, version = ?, after = ? WHERE client_id = ?",
                (body, version, json.dumps(list(after)) if after else None, client_id),
            )

    def update(self, client_id: str, payloads: dict[str, str]) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE outbox SET payloads = ? WHERE client_id = ?",
                (json.dumps(payloads), client_id),
            )

    def remove(self, client_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM outbox WHERE client_id = ?", (client_id,))

    def plaintext(self, client_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT plaintext FROM outbox WHERE client_id = ?", (client_id,)
        ).fetchone()
        return self._vault.open(row[0], _cell(client_id)) if row else None

    def drop_ephemeral(self) -> int:
        """Forget call signalling not sent before a restart (its call is over); how many."""
        with self.transaction():
            cursor = self._db.execute("DELETE FROM outbox WHERE ephemeral = 1")
        return cursor.rowcount

    def items(self) -> list[OutboxItem]:
        """Every unsent entry, oldest first (FIFO)."""
        rows = self._db.execute(
            "SELECT client_id, recipient, payloads, plaintext, body, version, after, ttl,"
            " ephemeral, ring FROM outbox ORDER BY seq"
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
                    ttl=ttl,
                    ephemeral=bool(ephemeral),
                    ring=bool(ring),
                ),
                self._vault.open(plaintext, _cell(cid)),
            )
            for cid, to, payloads, plaintext, body, version, after, ttl, ephemeral, ring in rows
        ]
