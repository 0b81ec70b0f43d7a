"""Sender keys: this device's per group (and which members were given it), those the
other member devices gave us, and group messages held until their sender's key arrives."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from parley.crypto.sender_keys import SenderKey, SenderKeyRecord
from parley.store.db import Cell, Repository

__all__ = ["HeldMessage", "OwnSenderKey", "SenderKeys"]


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


class SenderKeys(Repository):
    """Sealed sender keys by group (ours) and by (group, sender, device) (theirs)."""

    def own(self, group_id: str) -> OwnSenderKey | None:
        row = self._db.execute(
            "SELECT version, state, distributed FROM own_sender_keys WHERE group_id = ?",
            (group_id,),
        ).fetchone()
        if row is None:
            return None
        version, state, distributed = row
        return OwnSenderKey(
            SenderKey.from_bytes(self._vault.open(state, _own_cell(group_id))),
            int(version),
            frozenset(json.loads(distributed)),
        )

    def save_own(self, group_id: str, own: OwnSenderKey, now: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO own_sender_keys (group_id, version, state, distributed, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id) DO UPDATE SET"
                " version = excluded.version, state = excluded.state,"
                " distributed = excluded.distributed",
                (
                    group_id,
                    own.version,
                    self._vault.seal(own.key.to_bytes(), _own_cell(group_id)),
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

    def record(self, group_id: str, sender: str, device_id: str) -> SenderKeyRecord | None:
        row = self._db.execute(
            "SELECT record FROM sender_keys WHERE group_id = ? AND sender = ? AND device_id = ?",
            (group_id, sender, device_id),
        ).fetchone()
        if row is None:
            return None
        return SenderKeyRecord.from_bytes(
            self._vault.open(row[0], _record_cell(group_id, sender, device_id))
        )

    def save_record(
        self, group_id: str, sender: str, device_id: str, record: SenderKeyRecord, now: float
    ) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO sender_keys"
                " (group_id, sender, device_id, record, updated_at) VALUES (?, ?, ?, ?, ?)",
                (
                    group_id,
                    sender,
                    device_id,
                    self._vault.seal(record.to_bytes(), _record_cell(group_id, sender, device_id)),
                    now,
                ),
            )

    def hold(
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

    def held(
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

    def release(self, seqs: list[int]) -> None:
        with self.transaction():
            self._db.executemany(
                "DELETE FROM held_group_messages WHERE seq = ?", [(s,) for s in seqs]
            )

    def prune_held(self, older_than: float, keep_per_sender: int) -> list[HeldMessage]:
        """Drop held messages held since before `older_than`, and all but the newest
        `keep_per_sender` of each sender device in each group; returns what went."""
        with self.transaction():
            dropped = [m for m in self.held() if m.held_at < older_than]
            rows = self._db.execute(
                "SELECT seq FROM held_group_messages AS h WHERE seq NOT IN"
                " (SELECT seq FROM held_group_messages AS k WHERE k.group_id = h.group_id"
                "  AND k.sender = h.sender AND k.device_id = h.device_id"
                "  ORDER BY seq DESC LIMIT ?)",
                (keep_per_sender,),
            ).fetchall()
            crowded = {r[0] for r in rows}
            dropped += [m for m in self.held() if m.seq in crowded and m not in dropped]
            self.release([m.seq for m in dropped])
        return dropped


def _own_cell(group_id: str) -> Cell:
    return Cell("own_sender_keys", "state", (group_id,))


def _record_cell(group_id: str, sender: str, device_id: str) -> Cell:
    return Cell("sender_keys", "record", (group_id, sender, device_id))
