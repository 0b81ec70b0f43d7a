"""Searching the local history by text, without an index on disk.

A message's text (for anything but a text: the line that stands for it, with a
file's name and caption, a place's or a card's name; see
`parley.conversations.payload.describe`) is sealed in the store like every
secret. Any index that could answer a search without the profile's key would
say what the messages contain: plaintext words (SQLite FTS5), or a keyed hash
per word, whose equal values and frequencies give common words away. So there
is none: a search opens the sealed texts it looks at, newest first, and
compares them in memory, stopping once it has `limit` matches (or has looked
at `scan` messages). About 11-17 µs a message on a small 2-CPU machine: 0.2-0.35 s
for 20,000 when nothing (or little) matches, a few milliseconds for a common word
(`python -m bench --only search`).

Nothing is written: there is nothing to keep up when a message is edited,
deleted for everyone or disappears, and nothing that outlives it.

Matching: the query's words, each the beginning of a word of the text (all of
them, in any order); case-insensitive, compatibility forms folded (NFKC: "ﬁ" is
"fi", full-width letters are letters) and diacritics ignored ("cafe" finds
"Café", "zurich" finds "Zürich"). A query without a word (emoji only) is looked
for as it is. Scripts written without spaces match only at the start of a run.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Generator
from contextlib import closing

from parley.content import ACTION_KINDS
from parley.models import Message
from parley.store.db import Cell, Database, Repository
from parley.store.messages import Messages

__all__ = ["DEFAULT_LIMIT", "Search", "fold", "matcher"]

DEFAULT_LIMIT = 20

# the diacritics decomposition leaves behind (Combining Diacritical Marks and its
# supplements, extended, for symbols, half marks); not every combining mark: the
# vowel signs of Indic scripts, say, are letters of the word
_DIACRITICS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """`text` as search compares it: caseless, compatibility-normalized (NFKC), and
    without diacritics."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return unicodedata.normalize("NFC", _DIACRITICS.sub("", decomposed))


def matcher(query: str) -> Callable[[str], bool]:
    """Whether a folded text matches `query`: each of its words begins a word of the
    text; a query without words, when the text holds it. ValueError: an empty query."""
    folded = fold(query).strip()
    if not folded:
        raise ValueError("search for what? the query is empty")
    words = sorted(set(_WORD.findall(folded)), key=len, reverse=True)
    if not words:
        return lambda text: folded in text
    patterns = [re.compile(r"(?<!\w)" + re.escape(word)) for word in words]
    return lambda text: all(pattern.search(text) for pattern in patterns)


class Search(Repository):
    """The shown messages whose text matches, newest first."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._messages = Messages(db)

    def find(
        self,
        query: str,
        *,
        peer: str | None = None,
        limit: int = DEFAULT_LIMIT,
        scan: int | None = None,
        now_ms: int,
    ) -> list[Message]:
        """Up to `limit` messages matching `query` (see `matcher`), newest first, in
        conversation `peer` or in all; looking at the `scan` most recent at most
        (None: all). Never an action, a message deleted for everyone, one that
        disappeared (or whose timer ran out), a timer change; an edited one by its
        current text. ValueError: an empty query, or a limit below 1."""
        if limit < 1 or (scan is not None and scan < 0):
            raise ValueError("the limit is at least 1 (and the scan at least 0)")
        matches = matcher(query)
        found: list[Message] = []
        with closing(self._texts(peer, scan, now_ms)) as texts:  # its read ends here
            for row_id, text in texts:
                if not matches(fold(text)):
                    continue
                message = self._messages.by_id(row_id)
                if message is None or message.kind in ACTION_KINDS:
                    continue  # gone meanwhile; a timer change is a notice, not a message
                found.append(message)
                if len(found) >= limit:
                    break
        return found

    def _texts(
        self, peer: str | None, scan: int | None, now_ms: int
    ) -> Generator[tuple[int, str], None, None]:
        """The shown messages' texts, newest first, opened one by one as they are read."""
        where = "action = 0 AND deleted IS NULL AND (expires_at IS NULL OR expires_at > ?)"
        params: list[object] = [now_ms]
        if peer is not None:
            where += " AND peer = ?"
            params.append(peer)
        params.append(-1 if scan is None else scan)
        rows = self._db.execute(
            f"SELECT id, sender, client_id, body FROM messages WHERE {where}"  # noqa: S608
            " ORDER BY id DESC LIMIT ?",
            params,
        )
        try:
            for row_id, sender, client_id, body in rows:
                cell = Cell("messages", "body", (sender, client_id))
                yield row_id, self._vault.open(body, cell).decode()
        finally:
            rows.close()
