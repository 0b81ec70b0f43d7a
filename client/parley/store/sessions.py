"""One Double Ratchet session per remote device, and the few it replaced."""

from __future__ import annotations

from parley.crypto import Session
from parley.store.db import Repository

__all__ = ["MAX_OLD_SESSIONS", "Sessions"]

# Replaced sessions kept per device (Signal keeps a few for the same reason).
MAX_OLD_SESSIONS = 5


class Sessions(Repository):
    """Sealed session states by (user id, device id); archived ones newest first."""

    def get(self, user_id: str, device_id: str) -> Session | None:
        row = self._db.execute(
            "SELECT state FROM sessions WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        ).fetchone()
        return Session.from_bytes(self._vault.open(row[0])) if row else None

    def for_user(self, user_id: str) -> dict[str, Session]:
        rows = self._db.execute(
            "SELECT device_id, state FROM sessions WHERE user_id = ? ORDER BY device_id",
            (user_id,),
        ).fetchall()
        return {device: Session.from_bytes(self._vault.open(state)) for device, state in rows}

    def save(self, user_id: str, device_id: str, session: Session, now: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO sessions (user_id, device_id, state, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (user_id, device_id, self._vault.seal(session.to_bytes()), now),
            )

    def archive(self, user_id: str, device_id: str) -> None:
        """Keep the current session aside (newest first, at most MAX_OLD_SESSIONS): when
        both sides start a session at once, the other may keep using the one replaced."""
        with self.transaction():
            row = self._db.execute(
                "SELECT state FROM sessions WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            ).fetchone()
            if row is None:
                return
            self._db.execute(
                "INSERT INTO old_sessions (user_id, device_id, state) VALUES (?, ?, ?)",
                (user_id, device_id, row[0]),
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
        return [(seq, Session.from_bytes(self._vault.open(state))) for seq, state in rows]

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
