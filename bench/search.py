"""Searching the local history (`Client.search`): what a search costs without an index.

A profile sealed as usual (XChaCha20-Poly1305 per value; a cheap passphrase KDF,
which only the opening pays) holding 20,000 chat-sized messages across 10
conversations. A search opens the sealed texts newest first and compares them in
memory (parley.store.search), so its cost grows with how far it must look: the
whole history for a word nowhere in it, a few dozen messages for a common one.
"""

from __future__ import annotations

import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nacl.pwhash

from bench.report import Figure, print_table
from parley.content import Text
from parley.models import Direction, MessageState
from parley.store import Store

__all__ = ["main", "run"]

_WORDS = (
    "the",
    "a",
    "to",
    "and",
    "you",
    "i",
    "it",
    "is",
    "that",
    "of",
    "in",
    "for",
    "on",
    "me",
    "we",
    "my",
    "be",
    "have",
    "are",
    "this",
    "with",
    "just",
    "what",
    "so",
    "can",
    "at",
    "do",
    "not",
    "but",
    "get",
    "was",
    "like",
    "will",
    "ok",
    "yes",
    "no",
    "see",
    "soon",
    "call",
    "later",
    "work",
    "home",
    "love",
    "thanks",
    "dinner",
    "tonight",
    "tomorrow",
    "meeting",
    "café",
    "photo",
    "beach",
    "running",
    "late",
    "train",
    "station",
    "Zürich",
    "Paris",
    "weekend",
)
_KDF = (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)


def _fill(store: Store, count: int) -> None:
    rng = random.Random(2024)
    peers = [f"{i:032x}" for i in range(1, 11)]
    with store.transaction():
        for i in range(count):
            peer = rng.choice(peers)
            text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 25)))
            store.messages.add(
                peer=peer,
                direction=Direction.IN,
                sender=peer,
                client_id=f"m{i}",
                text=text,
                ts=1_700_000_000_000 + i,
                state=MessageState.RECEIVED,
                content=Text(text),
            )


def _median_s(search: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        search()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(quick: bool = False) -> list[Figure]:
    count, repeat = (500, 1) if quick else (20_000, 5)
    with tempfile.TemporaryDirectory() as tmp:
        passphrase = secrets.token_hex(8)
        store = Store.open(Path(tmp) / "p", passphrase=passphrase, keyring=None, kdf_limits=_KDF)
        try:
            _fill(store, count)
            now = 2_000_000_000_000
            miss = _median_s(lambda: store.search.find("zanzibar", now_ms=now), repeat)
            common = _median_s(lambda: store.search.find("dinner", now_ms=now), repeat)
        finally:
            store.close()
    how = f"median of {repeat}, {count:,} sealed messages in 10 chats, newest first"
    return [
        Figure("search", f"no match ({count:,} messages opened)", miss * 1000, "ms", how),
        Figure("search", "per message opened", miss / count * 1e6, "µs", how),
        Figure("search", "common word, first 20 matches", common * 1000, "ms", how),
    ]


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
