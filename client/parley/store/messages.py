"""Messages with their tick state, and (for anything but text) the content that shows
them and where a downloaded file was saved; what acts on them (reactions, edits,
deletes for everyone, disappearing timers) and the actions held for a message that
has not arrived yet.

Actions (a reaction, an edit, a delete) are stored as rows too, marked `action`:
their (sender, client id) row is what makes each one apply exactly once, however
often it is delivered. Lists (`history`, `since`, `unread`) never show them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from parley.content import (
    ACTION_KINDS,
    Content,
    ContentError,
    PaymentStatus,
    Target,
    Text,
    encode_content,
    parse_content,
)
from parley.models import Direction, Message, MessageState, PaymentAnswer
from parley.payments.rules import latest_answers
from parley.store.db import Cell, Repository

__all__ = ["Messages"]

log = logging.getLogger("parley.store")

_MESSAGE_COLUMNS = (
    "id, peer, direction, sender, client_id, body, ts, state, content, file,"
    " edited_at, deleted, timer, expires_at"
)
# shown messages only: not actions, not what disappeared
_SHOWN = "action = 0"


def _cell(column: str, sender: str, client_id: str) -> Cell:
    """A message's sealed values are bound to its (sender, client id)."""
    return Cell("messages", column, (sender, client_id))


def _target_key(author: str, client_id: str) -> str:
    """How an action row names the message it acts on (the `target` column)."""
    return f"{author}/{client_id}"


def _reaction_cell(message_id: int, reactor: str) -> Cell:
    return Cell("reactions", "emoji", (message_id, reactor))


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
        not a plain text (a text's content is its text). An action (reaction,
        edit, delete) is stored hidden: lists do not show it.
        """
        plain = isinstance(content, Text) and content.ctx is None
        kept = None if content is None or plain else content
        action = content is not None and content.kind in ACTION_KINDS and content.kind != "timer"
        ctx = getattr(content, "ctx", None)
        timer = ctx.timer if ctx is not None else 0
        aimed = getattr(content, "target", None) if action else None
        with self.transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO messages (peer, direction, sender, client_id, body, ts,"
                " state, content, action, timer, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    int(action),
                    timer,
                    None if aimed is None else _target_key(aimed.author, aimed.client_id),
                ),
            )
            if cursor.rowcount == 0:
                return None
            row_id = cursor.lastrowid
            if isinstance(content, PaymentStatus) and content.ctx and content.ctx.reply:
                # the request it answers finds it here (parley.payments.rules)
                quoted = content.ctx.reply.target
                self._db.execute(
                    "INSERT INTO payment_answers (answer_id, target_sender, target_client_id)"
                    " VALUES (?, ?, ?)",
                    (row_id, quoted.author, quoted.client_id),
                )
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
            timer=timer,
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
            f" WHERE peer = ? AND id < ? AND {_SHOWN} ORDER BY id DESC LIMIT ?",
            (peer, before_id if before_id is not None else 2**62, limit),
        ).fetchall()
        return [self._message(r) for r in reversed(rows)]

    def since(self, ts: int) -> list[Message]:
        """Every message of every conversation from `ts` (ms) on, oldest first (in
        the order stored, the order `history` shows): what a new companion is given."""
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
            f" WHERE ts >= ? AND {_SHOWN} ORDER BY id",
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
            " WHERE peer = ? AND direction = 'in' AND state = 'received'"
            f" AND {_SHOWN} ORDER BY id",
            (peer,),
        ).fetchall()
        return [self._message(r) for r in rows]

    # --- what acts on a message ---------------------------------------------------------

    def find(self, target: Target) -> Message | None:
        """A shown message (not an action) by how others name it."""
        found = self.get(target.author, target.client_id)
        return found if found is not None and not self._is_action(found.id) else None

    def _is_action(self, message_id: int) -> bool:
        row = self._db.execute("SELECT action FROM messages WHERE id = ?", (message_id,)).fetchone()
        return bool(row and row[0])

    def edit(self, message_id: int, text: str, content: Content, edited_at: int) -> bool:
        """Its author's new text, unless the last edit applied is newer (so edits
        arriving out of order end on the latest; at the same time, the later one, as
        for reactions). False: an older edit, or gone."""
        with self.transaction():
            row = self._db.execute(
                "SELECT sender, client_id, edited_at, deleted FROM messages WHERE id = ?",
                (message_id,),
            ).fetchone()
            if row is None or row[3] is not None or (row[2] is not None and row[2] > edited_at):
                return False
            sender, client_id = row[0], row[1]
            plain = isinstance(content, Text) and content.ctx is None
            self._db.execute(
                "UPDATE messages SET body = ?, content = ?, edited_at = ? WHERE id = ?",
                (
                    self._vault.seal(text.encode(), _cell("body", sender, client_id)),
                    None
                    if plain
                    else self._vault.seal(
                        encode_content(content).encode(), _cell("content", sender, client_id)
                    ),
                    edited_at,
                    message_id,
                ),
            )
        return True

    def delete_for_everyone(self, message_id: int, by: str, note: str) -> Path | None:
        """Drop its content, file path and reactions; it shows `note` from now on.
        Returns the path of its downloaded file, if it had one, for the caller to
        remove (after the transaction)."""
        with self.transaction():
            found = self._named_with_file(message_id)
            if found is None:
                return None
            sender, client_id, path = found
            self._db.execute(
                "UPDATE messages SET body = ?, content = NULL, file = NULL, deleted = ?,"
                " edited_at = NULL WHERE id = ?",
                (self._vault.seal(note.encode(), _cell("body", sender, client_id)), by, message_id),
            )
            self._db.execute("DELETE FROM reactions WHERE message_id = ?", (message_id,))
            self._db.execute("DELETE FROM stars WHERE message_id = ?", (message_id,))
            self._forget_actions_on(sender, client_id)
        return path

    def erase(self, message_id: int) -> Path | None:
        """Forget a message that disappeared: the row, its reactions; returns the path
        of its downloaded file for the caller to remove. A redelivery stays dropped
        (parley.store.seen)."""
        with self.transaction():
            found = self._named_with_file(message_id)
            if found is None:
                return None
            sender, client_id, path = found
            self._forget_actions_on(sender, client_id)
            self._db.execute("DELETE FROM reactions WHERE message_id = ?", (message_id,))
            self._db.execute("DELETE FROM group_ticks WHERE message_id = ?", (message_id,))
            self._db.execute("DELETE FROM payment_answers WHERE answer_id = ?", (message_id,))
            self._db.execute("DELETE FROM stars WHERE message_id = ?", (message_id,))
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
        return path

    def _forget_actions_on(self, sender: str, client_id: str) -> None:
        """The reactions, edits and deletes aimed at a message that is gone: an edit's
        text must not outlive it. Each stays applied once: redeliveries are dropped
        by (sender, client id) (parley.store.seen)."""
        aimed = _target_key(sender, client_id)
        self._db.execute(
            "DELETE FROM held_actions WHERE target_sender = ? AND target_client_id = ?",
            (sender, client_id),
        )
        self._db.execute("DELETE FROM messages WHERE action = 1 AND target = ?", (aimed,))

    def _named_with_file(self, message_id: int) -> tuple[str, str, Path | None] | None:
        """A message's (sender, client id) and where its file was saved, if it was."""
        row = self._db.execute(
            "SELECT sender, client_id, file FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            return None
        sender, client_id, file = row
        return sender, client_id, self._file_path(sender, client_id, file)

    def _file_path(self, sender: str, client_id: str, sealed: bytes | None) -> Path | None:
        if sealed is None:
            return None
        return Path(os.fsdecode(self._vault.open(sealed, _cell("file", sender, client_id))))

    def react(self, message_id: int, reactor: str, emoji: str, ts: int) -> bool:
        """`reactor`'s reaction ("" takes it back), unless theirs so far is newer. At
        the same time (ms) the later one wins: the messages of one `send` frame share
        their millisecond and every device gets them in the frame's order."""
        with self.transaction():
            row = self._db.execute(
                "SELECT ts FROM reactions WHERE message_id = ? AND reactor = ?",
                (message_id, reactor),
            ).fetchone()
            if row is not None and row[0] > ts:
                return False
            if emoji:
                self._db.execute(
                    "INSERT OR REPLACE INTO reactions (message_id, reactor, emoji, ts)"
                    " VALUES (?, ?, ?, ?)",
                    (
                        message_id,
                        reactor,
                        self._vault.seal(emoji.encode(), _reaction_cell(message_id, reactor)),
                        ts,
                    ),
                )
            elif row is not None:
                self._db.execute(
                    "DELETE FROM reactions WHERE message_id = ? AND reactor = ?",
                    (message_id, reactor),
                )
            else:
                return False
        return True

    def latest_action_ts(self, message_id: int, actor: str) -> int:
        """The time of the last reaction of `actor` to it, or of its last edit (0: none)."""
        row = self._db.execute(
            "SELECT MAX(ts) FROM (SELECT ts FROM reactions WHERE message_id = ? AND reactor = ?"
            " UNION ALL SELECT edited_at FROM messages WHERE id = ? AND sender = ?)",
            (message_id, actor, message_id, actor),
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def shares_file(self, sender: str, media_id: str, other_than: int) -> bool:
        """Whether another message of `sender` still here carries the same uploaded
        object (a file they forwarded on): opens their messages with content, so a
        few milliseconds per thousand."""
        rows = self._db.execute(
            "SELECT id, client_id, content FROM messages WHERE sender = ? AND id != ?"
            " AND content IS NOT NULL AND deleted IS NULL AND action = 0",
            (sender, other_than),
        ).fetchall()
        for row_id, client_id, sealed in rows:
            content = self._content(row_id, sealed, _cell("content", sender, client_id))
            if getattr(content, "media_id", None) == media_id:
                return True
        return False

    def restamp_reaction(self, message_id: int, reactor: str, emoji: str, ts: int) -> None:
        """`reactor`'s reaction, if it is still `emoji`, at the service's time `ts`."""
        with self.transaction():
            cell = _reaction_cell(message_id, reactor)
            row = self._db.execute(
                "SELECT emoji FROM reactions WHERE message_id = ? AND reactor = ?",
                (message_id, reactor),
            ).fetchone()
            if row is not None and self._vault.open(row[0], cell).decode() == emoji:
                self._db.execute(
                    "UPDATE reactions SET ts = ? WHERE message_id = ? AND reactor = ?",
                    (ts, message_id, reactor),
                )

    def restamp_timer(self, peer: str, set_by: str, seconds: int, ts: int) -> None:
        """The conversation's timer, if it is still `set_by`'s `seconds`, at time `ts`."""
        with self.transaction():
            self._db.execute(
                "UPDATE conversation_timers SET ts = ? WHERE peer = ? AND set_by = ?"
                " AND seconds = ?",
                (ts, peer, set_by, seconds),
            )

    def reactions(self, message_id: int) -> tuple[tuple[str, str], ...]:
        rows = self._db.execute(
            "SELECT reactor, emoji FROM reactions WHERE message_id = ? ORDER BY ts, reactor",
            (message_id,),
        ).fetchall()
        return tuple(
            (reactor, self._vault.open(emoji, _reaction_cell(message_id, reactor)).decode())
            for reactor, emoji in rows
        )

    def hold(self, action_id: int, target: Target, now: float) -> None:
        """Keep an action whose target has not arrived, to apply when it does."""
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO held_actions"
                " (action_id, target_sender, target_client_id, held_at) VALUES (?, ?, ?, ?)",
                (action_id, target.author, target.client_id, now),
            )

    def held_for(self, target: Target) -> list[Message]:
        """The actions waiting for `target`, in the order they arrived."""
        rows = self._db.execute(
            f"SELECT {', '.join('m.' + c.strip() for c in _MESSAGE_COLUMNS.split(','))}"  # noqa: S608
            " FROM held_actions h JOIN messages m ON m.id = h.action_id"
            " WHERE h.target_sender = ? AND h.target_client_id = ? ORDER BY m.id",
            (target.author, target.client_id),
        ).fetchall()
        return [self._message(r) for r in rows]

    def unhold(self, action_ids: list[int]) -> None:
        with self.transaction():
            self._db.executemany(
                "DELETE FROM held_actions WHERE action_id = ?", [(i,) for i in action_ids]
            )

    def drop_held(self, before: float) -> int:
        """Forget actions held since before `before` (their target never came), their
        rows too (a redelivery stays dropped: parley.store.seen)."""
        with self.transaction():
            self._db.execute(
                "DELETE FROM messages WHERE id IN"
                " (SELECT action_id FROM held_actions WHERE held_at < ?)",
                (before,),
            )
            cursor = self._db.execute("DELETE FROM held_actions WHERE held_at < ?", (before,))
        return cursor.rowcount

    def held_from(self, sender: str) -> int:
        """How many actions of `sender` wait for their targets."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM held_actions h JOIN messages m ON m.id = h.action_id"
            " WHERE m.sender = ?",
            (sender,),
        ).fetchone()
        return int(row[0])

    def forget(self, message_id: int) -> None:
        """Drop a row that must never apply (an action refused before it was held)."""
        with self.transaction():
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def hide(self, message_id: int) -> None:
        """Lists stop showing it (a change that broke a rule)."""
        with self.transaction():
            self._db.execute("UPDATE messages SET action = 1 WHERE id = ?", (message_id,))

    def start_timer(self, message_id: int, expires_at: int) -> bool:
        """Set when a message with a timer disappears (once: the first start wins)."""
        with self.transaction():
            cursor = self._db.execute(
                "UPDATE messages SET expires_at = ? WHERE id = ? AND timer > 0"
                " AND expires_at IS NULL",
                (expires_at, message_id),
            )
        return cursor.rowcount > 0

    def expired(self, now_ms: int) -> list[Message]:
        """Messages whose disappearing timer has run out."""
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
            " WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY id",
            (now_ms,),
        ).fetchall()
        return [self._message(r) for r in rows]

    def next_expiry(self) -> int | None:
        """When the next running timer ends (ms), if one runs."""
        row = self._db.execute(
            "SELECT MIN(expires_at) FROM messages WHERE expires_at IS NOT NULL"
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def timer_of(self, peer: str) -> int:
        """The conversation's disappearing timer (seconds; 0: off)."""
        row = self._db.execute(
            "SELECT seconds FROM conversation_timers WHERE peer = ?", (peer,)
        ).fetchone()
        return int(row[0]) if row else 0

    def set_timer(self, peer: str, seconds: int, set_by: str, ts: int) -> bool:
        """The conversation's timer from now on, unless the last change is newer (at
        the same time, the later one wins, as for reactions)."""
        with self.transaction():
            row = self._db.execute(
                "SELECT ts FROM conversation_timers WHERE peer = ?", (peer,)
            ).fetchone()
            if row is not None and row[0] > ts:
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO conversation_timers (peer, seconds, set_by, ts)"
                " VALUES (?, ?, ?, ?)",
                (peer, seconds, set_by, ts),
            )
        return True

    def _message(self, row: tuple[Any, ...]) -> Message:
        row_id, peer, direction, sender, client_id, body, ts, state, content, file = row[:10]
        edited_at, deleted, timer, expires_at = row[10:]
        text = self._vault.open(body, _cell("body", sender, client_id)).decode()
        message = Message(
            id=row_id,
            peer=peer,
            direction=Direction(direction),
            client_id=client_id,
            sender=sender,
            text=text,
            ts=ts,
            state=MessageState(state),
            content=(
                None
                if deleted is not None
                else _text_content(text)
                if content is None
                else self._content(row_id, content, _cell("content", sender, client_id))
            ),
            file=self._file_path(sender, client_id, file),
            edited_at=edited_at,
            deleted=deleted,
            reactions=self.reactions(row_id),
            timer=timer,
            expires_at=expires_at,
            starred=self._starred(row_id),
        )
        return self._with_answers(message)

    def _with_answers(self, message: Message) -> Message:
        """A payment request with the answers that count for it (parley.payments.rules)."""
        if message.kind != "payment":
            return message
        answers = self.payment_answers(message)
        return replace(message, payment_answers=answers) if answers else message

    def payment_answers(self, request: Message) -> tuple[PaymentAnswer, ...]:
        """The answers that count for a payment request, each person's latest."""
        rows = self._db.execute(
            "SELECT answer_id FROM payment_answers"
            " WHERE target_sender = ? AND target_client_id = ? ORDER BY answer_id",
            (request.sender, request.client_id),
        ).fetchall()
        replies = (self.by_id(answer_id) for (answer_id,) in rows)
        return latest_answers(request, (r for r in replies if r is not None))

    def _starred(self, message_id: int) -> bool:
        """Starred on this device (parley.store.stars)."""
        query = "SELECT 1 FROM stars WHERE message_id = ?"
        return self._db.execute(query, (message_id,)).fetchone() is not None

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
