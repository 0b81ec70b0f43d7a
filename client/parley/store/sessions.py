"""One Double Ratchet session per remote device, and the few it replaced.

Each row also says how many skipped message keys its session holds and since
when (`skipped`, `skipped_since`; NULL when not known yet, for rows written before
they were kept), so that the keys of every session together stay under
MAX_TOTAL_SKIPPED_KEYS, the oldest dropped first, and expired keys can be found
without opening every session.
"""

from __future__ import annotations

import heapq
import math

from parley.crypto import Session
from parley.crypto.session import SKIPPED_KEY_TTL_S
from parley.store.db import Cell, Repository

__all__ = ["MAX_OLD_SESSIONS", "MAX_TOTAL_SKIPPED_KEYS", "Sessions"]

# Replaced sessions kept per device (Signal keeps a few for the same reason).
MAX_OLD_SESSIONS = 5
# Skipped message keys kept across every session, current and archived (each
# session keeps at most MAX_SKIPPED_KEYS, 2,000): about 1.5 MB of state at most.
MAX_TOTAL_SKIPPED_KEYS = 20_000

# a row of either table: ("sessions", (user_id, device_id))
# or ("old_sessions", (seq, user_id, device_id))
_Row = tuple[str, tuple[str | int, ...]]


def _current_cell(user_id: str, device_id: str) -> Cell:
    return Cell("sessions", "state", (user_id, device_id))


def _old_cell(seq: int, user_id: str, device_id: str) -> Cell:
    return Cell("old_sessions", "state", (seq, user_id, device_id))


def _counts(session: Session) -> tuple[int, float | None]:
    return session.skipped_keys, session.oldest_skipped_at


class Sessions(Repository):
    """Sealed session states by (user id, device id); archived ones newest first."""

    def get(self, user_id: str, device_id: str) -> Session | None:
        row = self._db.execute(
            "SELECT state FROM sessions WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        ).fetchone()
        if row is None:
            return None
        return Session.from_bytes(self._vault.open(row[0], _current_cell(user_id, device_id)))

    def for_user(self, user_id: str) -> dict[str, Session]:
        rows = self._db.execute(
            "SELECT device_id, state FROM sessions WHERE user_id = ? ORDER BY device_id",
            (user_id,),
        ).fetchall()
        return {
            device: Session.from_bytes(self._vault.open(state, _current_cell(user_id, device)))
            for device, state in rows
        }

    def save(self, user_id: str, device_id: str, session: Session, now: float) -> None:
        """Store `session` as the current one of the device. If the skipped keys of
        every session then exceed MAX_TOTAL_SKIPPED_KEYS, the oldest go (from
        `session` too, which is changed in place)."""
        with self.transaction():
            self._write_current(user_id, device_id, session, now)
            self._cap_total(("sessions", (user_id, device_id)), session)

    def _write_current(self, user_id: str, device_id: str, session: Session, now: float) -> None:
        count, since = _counts(session)
        self._db.execute(
            "INSERT OR REPLACE INTO sessions"
            " (user_id, device_id, state, updated_at, skipped, skipped_since)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                user_id,
                device_id,
                self._vault.seal(session.to_bytes(), _current_cell(user_id, device_id)),
                now,
                count,
                since,
            ),
        )

    def _write_old(self, seq: int, user_id: str, device_id: str, session: Session) -> None:
        count, since = _counts(session)
        self._db.execute(
            "UPDATE old_sessions SET state = ?, skipped = ?, skipped_since = ? WHERE seq = ?",
            (
                self._vault.seal(session.to_bytes(), _old_cell(seq, user_id, device_id)),
                count,
                since,
                seq,
            ),
        )

    def archive(self, user_id: str, device_id: str) -> None:
        """Keep the current session aside (newest first, at most MAX_OLD_SESSIONS): when
        both sides start a session at once, the other may keep using the one replaced."""
        with self.transaction():
            row = self._db.execute(
                "SELECT state, skipped, skipped_since FROM sessions"
                " WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            ).fetchone()
            if row is None:
                return
            state, count, since = row
            cursor = self._db.execute(
                "INSERT INTO old_sessions (user_id, device_id, state, skipped, skipped_since)"
                " VALUES (?, ?, x'', ?, ?)",
                (user_id, device_id, count, since),
            )
            seq = cursor.lastrowid
            assert seq is not None
            # sealed again, bound to its new place
            plain = self._vault.open(state, _current_cell(user_id, device_id))
            self._db.execute(
                "UPDATE old_sessions SET state = ? WHERE seq = ?",
                (self._vault.seal(plain, _old_cell(seq, user_id, device_id)), seq),
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

    def old(self, user_id: str, device_id: str) -> list[tuple[int, Session]]:
        rows = self._db.execute(
            "SELECT seq, state FROM old_sessions WHERE user_id = ? AND device_id = ?"
            " ORDER BY seq DESC",
            (user_id, device_id),
        ).fetchall()
        return [
            (seq, Session.from_bytes(self._vault.open(state, _old_cell(seq, user_id, device_id))))
            for seq, state in rows
        ]

    def promote(self, user_id: str, device_id: str, seq: int, session: Session, now: float) -> None:
        """An archived session proved to be the one in use: make it current again."""
        with self.transaction():
            self.archive(user_id, device_id)
            self._db.execute("DELETE FROM old_sessions WHERE seq = ?", (seq,))
            self.save(user_id, device_id, session, now)

    def delete(self, user_id: str, device_id: str) -> None:
        with self.transaction():
            self._db.execute(
                "DELETE FROM sessions WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )

    # --- skipped message keys -------------------------------------------------------

    def skipped_total(self) -> int:
        """Skipped message keys held by every session, current and archived."""
        with self.transaction():
            self._count_unknown()
            (total,) = self._db.execute(
                "SELECT COALESCE((SELECT SUM(skipped) FROM sessions), 0)"
                " + COALESCE((SELECT SUM(skipped) FROM old_sessions), 0)"
            ).fetchone()
            return int(total)

    def prune_skipped(self, now: float) -> int:
        """Drop the skipped keys that expired by `now` from every stored session (and
        give keys saved without a time `now` as theirs); returns the sessions changed."""
        cutoff = now - SKIPPED_KEY_TTL_S
        changed = 0
        with self.transaction():
            where = "skipped IS NULL OR (skipped > 0 AND COALESCE(skipped_since <= ?, 1))"
            for row, session in self._load(where, (cutoff,)):
                session.expire_skipped(now)
                self._rewrite(row, session)
                changed += 1
        return changed

    def _cap_total(self, saved: _Row, session: Session) -> None:
        """Drop the oldest skipped keys of all sessions beyond MAX_TOTAL_SKIPPED_KEYS."""
        excess = self.skipped_total() - MAX_TOTAL_SKIPPED_KEYS
        if excess <= 0:
            return
        loaded = {row: s for row, s in self._load("skipped > 0", ()) if row != saved}
        if session.skipped_keys:
            loaded[saved] = session  # the caller's copy: it loses its keys too
        rows = list(loaded)
        # each session's keys are oldest first; a key of unknown time counts as oldest
        keys = (
            (-math.inf if math.isnan(t) else t, index, position)
            for index, row in enumerate(rows)
            for position, t in enumerate(loaded[row].skipped_times())
        )
        drop = [0] * len(rows)
        for _, index, _ in heapq.nsmallest(excess, keys):
            drop[index] += 1
        for index, row in enumerate(rows):
            if drop[index]:
                loaded[row].drop_oldest_skipped(drop[index])
                self._rewrite(row, loaded[row])

    def _count_unknown(self) -> None:
        """Fill in the counts of rows written before they were kept."""
        for row, session in self._load("skipped IS NULL", ()):
            self._rewrite(row, session)

    def _load(self, where: str, args: tuple[object, ...]) -> list[tuple[_Row, Session]]:
        found: list[tuple[_Row, Session]] = []
        for user_id, device_id, state in self._db.execute(
            f"SELECT user_id, device_id, state FROM sessions WHERE {where}",  # noqa: S608
            args,
        ).fetchall():
            session = Session.from_bytes(self._vault.open(state, _current_cell(user_id, device_id)))
            found.append((("sessions", (user_id, device_id)), session))
        for seq, user_id, device_id, state in self._db.execute(
            f"SELECT seq, user_id, device_id, state FROM old_sessions WHERE {where}",  # noqa: S608
            args,
        ).fetchall():
            session = Session.from_bytes(
                self._vault.open(state, _old_cell(seq, user_id, device_id))
            )
            found.append((("old_sessions", (seq, user_id, device_id)), session))
        return found

    def _rewrite(self, row: _Row, session: Session) -> None:
        table, key = row
        if table == "sessions":
            user_id, device_id = key
            count, since = _counts(session)
            self._db.execute(
                "UPDATE sessions SET state = ?, skipped = ?, skipped_since = ?"
                " WHERE user_id = ? AND device_id = ?",
                (
                    self._vault.seal(
                        session.to_bytes(), _current_cell(str(user_id), str(device_id))
                    ),
                    count,
                    since,
                    user_id,
                    device_id,
                ),
            )
        else:
            seq, user_id, device_id = key
            self._write_old(int(seq), str(user_id), str(device_id), session)
