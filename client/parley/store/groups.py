"""Each group as last seen on the service (or only heard of, until read again)."""

from __future__ import annotations

import json
from typing import Any

from parley.models import Group
from parley.store.db import Repository

__all__ = ["Groups"]

_GROUP_COLUMNS = (
    "group_id, name, version, members, admins, created_by, created_at, active, rev, head,"
    " unverified"
)


class Groups(Repository):
    """Groups by id; a stale one is to be read again from the service."""

    def save(self, group: Group, now: float) -> Group | None:
        """Keep a group as the service answered it (fresh: no longer stale). Returns
        what was stored before, if anything."""
        with self.transaction():
            previous = self.get(group.group_id)
            self._db.execute(
                "INSERT OR REPLACE INTO groups (group_id, name, version, members, admins,"
                " created_by, created_at, active, stale, updated_at, rev, head, unverified)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (
                    group.group_id,
                    group.name,
                    group.version,
                    json.dumps(list(group.members)),
                    json.dumps(list(group.admins)),
                    group.created_by,
                    group.created_at,
                    int(group.active),
                    now,
                    group.rev,
                    group.head,
                    json.dumps(list(group.unverified)),
                ),
            )
        return previous

    def note(self, group_id: str, now: float) -> None:
        """A group heard of from a message or a sender key, and not known as it is
        now: a placeholder if it is new, and either way stale until read again
        from the service."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO groups (group_id, name, version, members, admins,"
                " active, stale, updated_at) VALUES (?, '', 0, '[]', '[]', 1, 1, ?)"
                " ON CONFLICT (group_id) DO UPDATE SET stale = 1",
                (group_id, now),
            )

    def stale(self) -> list[str]:
        rows = self._db.execute(
            "SELECT group_id FROM groups WHERE stale = 1 ORDER BY group_id"
        ).fetchall()
        return [r[0] for r in rows]

    def get(self, group_id: str) -> Group | None:
        row = self._db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM groups WHERE group_id = ?",  # noqa: S608
            (group_id,),
        ).fetchone()
        return _group(row) if row else None

    def shares(self, user_id: str) -> bool:
        """Whether `user_id` is a member of a group this account is in, let in by an
        admin's signed change (one query): a member the service slipped in is no
        relationship."""
        row = self._db.execute(
            "SELECT 1 FROM groups, json_each(groups.members) AS m"
            " WHERE groups.version > 0 AND groups.active = 1 AND m.value = ?"
            " AND NOT EXISTS (SELECT 1 FROM json_each(groups.unverified) AS u"
            " WHERE u.value = m.value) LIMIT 1",
            (user_id,),
        ).fetchone()
        return row is not None

    def all(self, *, include_inactive: bool = False) -> list[Group]:
        """Known groups by name (placeholders not yet filled in are left out)."""
        rows = self._db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM groups"  # noqa: S608
            " WHERE version > 0 AND (active = 1 OR ?) ORDER BY lower(name), group_id",
            (int(include_inactive),),
        ).fetchall()
        return [_group(r) for r in rows]

    def find(self, key: str) -> list[Group]:
        """By group id (even one only heard of, not read yet), or by name
        (case-insensitive; several groups may share one)."""
        rows = self._db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM groups"  # noqa: S608
            " WHERE group_id = ? OR (version > 0 AND lower(name) = lower(?))"
            " ORDER BY active DESC, group_id = ? DESC, group_id",
            (key, key, key),
        ).fetchall()
        return [_group(r) for r in rows]

    def chain(self, group_id: str) -> tuple[int, bytes, str] | None:
        """The group's signed chain as last verified here: (seq, head hash, seats as
        `parley.groups.chain.ChainState` wrote them), or None if none yet."""
        row = self._db.execute(
            "SELECT seq, head, seats FROM group_chains WHERE group_id = ?", (group_id,)
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def save_chain(self, group_id: str, seq: int, head: bytes, seats: str, now: float) -> None:
        """Keep a verified chain state (the caller checked it follows on from the last)."""
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO group_chains (group_id, seq, head, seats, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (group_id, seq, head, seats, now),
            )

    def leave(self, group_id: str) -> None:
        """This account is out of the group: it stays in the list (inactive, with its
        history) and every sender key of it, ours and theirs, is deleted."""
        with self.transaction():
            self._db.execute(
                "UPDATE groups SET active = 0, stale = 0 WHERE group_id = ?", (group_id,)
            )
            # the verified chain stays: back in the group, it continues from there
            for table in ("own_sender_keys", "sender_keys", "held_group_messages"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE group_id = ?",  # noqa: S608
                    (group_id,),
                )


def _group(row: tuple[Any, ...]) -> Group:
    group_id, name, version, members, admins, created_by, created_at, active = row[:8]
    rev, head, unverified = row[8:]
    return Group(
        group_id=group_id,
        name=name,
        version=int(version),
        members=tuple(json.loads(members)),
        admins=tuple(json.loads(admins)),
        created_by=created_by,
        created_at=created_at,
        active=bool(active),
        rev=int(rev),
        head=int(head),
        unverified=tuple(json.loads(unverified)),
    )
