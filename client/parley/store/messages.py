"""Messages with their tick state, and (for anything but text) the content that shows
them and where a downloaded file was saved."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from parley.content import Content, ContentError, Text, encode_content, parse_content
from parley.models import Direction, Message, MessageState
from parley.store.db import Cell, Repository

__all__ = ["Messages"]

log = logging.getLogger("parley.store")

_MESSAGE_COLUMNS = "id, peer, direction, sender, client_id, body, ts, state, content, file"


def _cell(column: str, sender: str, client_id: str) -> Cell:
    """A message's sealed values are bound to its (sender, client id)."""
    return Cell("messages", column, (sender, client_id))


class Messages(Repository):
    """Messages by conversation (`peer`), unique by (sender, client id). An attachment's
    key travels only inside the encrypted message, so this is the only place that keeps it."""

    def add(
        self,
        *,
        peer: str,
        direction: Direction,
        sender: str,
        client_id: str,
        text: str,
        ts: int,
        state: MessageState,
        content: Content | None = None,
    ) -> Message | None:
        """Store a message; None if (sender, client id) is already stored.

        `text` is what lists show; `content` is the message itself when it is
        not a plain text (a text's content is its text).
        """
        kept = None if content is None or isinstance(content, Text) else content
        with self.transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO messages"
                " (peer, direction, sender, client_id, body, ts, state, content)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    peer,
                    direction.value,
                    sender,
                    client_id,
                    self._vault.seal(text.encode(), _cell("body", sender, client_id)),
                    ts,
                    state.value,
                    None
                    if kept is None
                    else self._vault.seal(
                        encode_content(kept).encode(), _cell("content", sender, client_id)
                    ),
                ),
            )
            if cursor.rowcount == 0:
                return None
            row_id = cursor.lastrowid
        assert row_id is not None
        return Message(
            row_id,
            peer,
            direction,
            client_id,
            sender,
            text,
            ts,
            state,
            content=kept if kept is not None else _text_content(text),
        )

    def by_id(self, message_id: int) -> Message | None:
        """A message by its local row id (`Message.id`)."""
        row = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?",  # noqa: S608
            (message_id,),
        ).fetchone()
        return self._message(row) if row else None

    def set_file(self, message_id: int, path: Path | None) -> None:
        """Where an attachment was saved on this device (None: it is not, any more)."""
        with self.transaction():
            row = self._db.execute(
                "SELECT sender, client_id FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return
            cell = _cell("file", *row)
            sealed = None if path is None else self._vault.seal(os.fsencode(path), cell)
            self._db.execute("UPDATE messages SET file = ? WHERE id = ?", (sealed, message_id))

    def get(self, sender: str, client_id: str) -> Message | None:
        row = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE sender = ? AND client_id = ?",  # noqa: S608
            (sender, client_id),
        ).fetchone()
        return self._message(row) if row else None

    def history(self, peer: str, limit: int = 50, before_id: int | None = None) -> list[Message]:
        """The last `limit` messages with `peer`, oldest first."""
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
            " WHERE peer = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (peer, before_id if before_id is not None else 2**62, limit),
        ).fetchall()
        return [self._message(r) for r in reversed(rows)]

    def since(self, ts: int) -> list[Message]:
        """Every message of every conversation from `ts` (ms) on, oldest first (in
        the order stored, the order `history` shows): what a new companion is given."""
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
            " WHERE ts >= ? ORDER BY id",
            (ts,),
        ).fetchall()
        return [self._message(r) for r in rows]

    def advance(
        self, sender: str, peer: str, client_ids: list[str], state: MessageState
    ) -> list[Message]:
        """Move messages forward to `state` (never backwards); returns those that moved."""
        moved: list[Message] = []
        with self.transaction():
            for client_id in client_ids:
                row = self._db.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
                    " WHERE sender = ? AND client_id = ? AND peer = ?",
                    (sender, client_id, peer),
                ).fetchone()
                if row is None:
                    continue
                message = self._message(row)
                if message.state.rank >= state.rank and message.state is not MessageState.FAILED:
                    continue
                self._db.execute(
                    "UPDATE messages SET state = ? WHERE id = ?", (state.value, message.id)
                )
                moved.append(replace(message, state=state))
        return moved

    def set_state(self, message_id: int, state: MessageState, ts: int | None = None) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE messages SET state = ?, ts = COALESCE(?, ts) WHERE id = ?",
                (state.value, ts, message_id),
            )

    def unread(self, peer: str) -> list[Message]:
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
            " WHERE peer = ? AND direction = 'in' AND state = 'received' ORDER BY id",
            (peer,),
        ).fetchall()
        return [self._message(r) for r in rows]

    def _message(self, row: tuple[Any, ...]) -> Message:
        row_id, peer, direction, sender, client_id, body, ts, state, content, file = row
        text = self._vault.open(body, _cell("body", sender, client_id)).decode()
        return Message(
            id=row_id,
            peer=peer,
            direction=Direction(direction),
            client_id=client_id,
            sender=sender,
            text=text,
            ts=ts,
            state=MessageState(state),
            content=(
                _text_content(text)
                if content is None
                else self._content(row_id, content, _cell("content", sender, client_id))
            ),
            file=(
                None
                if file is None
                else Path(os.fsdecode(self._vault.open(file, _cell("file", sender, client_id))))
            ),
        )

    def _content(self, row_id: int, sealed: bytes, cell: Cell) -> Content | None:
        try:
            return parse_content(self._vault.open(sealed, cell))
        except ContentError as exc:
            # it was valid when stored; a damaged row must not hide the conversation
            log.warning("message %d has unreadable content: %s", row_id, exc)
            return None


def _text_content(text: str) -> Content | None:
    try:
        return Text(text)
    except ContentError:
        return None
