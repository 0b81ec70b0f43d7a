"""Searching the local history and starring messages: what matches (words and their
beginnings, whatever the case, width or accents), what never does (actions,
messages deleted for everyone or gone, an edited message's old text), and that
neither writes any text to the disk."""

from __future__ import annotations

from pathlib import Path

import nacl.pwhash
import pytest

from parley.content import (
    Attachment,
    ContactCard,
    Content,
    Context,
    Edit,
    Location,
    Reaction,
    Target,
    Text,
    TimerChange,
    with_context,
)
from parley.conversations import payload
from parley.models import Direction, Message, MessageState
from parley.store import Store
from parley.store.search import fold, matcher

CHEAP_KDF = (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)
ME, BOB, CAROL = "a" * 32, "b" * 32, "c" * 32
NOW = 1_700_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "p", passphrase="pw", keyring=None, kdf_limits=CHEAP_KDF)


_counter = iter(range(1_000_000))


def add(store: Store, peer: str, what: str | Content, *, sender: str | None = None) -> Message:
    content = Text(what) if isinstance(what, str) else what
    sender = sender or peer
    added = store.messages.add(
        peer=peer,
        direction=Direction.OUT if sender == ME else Direction.IN,
        sender=sender,
        client_id=f"c{next(_counter)}",
        text=payload.describe(content),
        ts=NOW,
        state=MessageState.RECEIVED,
        content=content,
    )
    assert added is not None
    return added


def disappearing(text: str) -> Content:
    return with_context(Text(text), Context(timer=86400))


def find(store: Store, query: str, **options: object) -> list[str]:
    found = store.search.find(query, now_ms=NOW, **options)  # type: ignore[arg-type]
    return [m.text for m in found]


# --- matching ---------------------------------------------------------------------------


def test_folding_ignores_case_width_ligatures_and_diacritics() -> None:
    assert fold("Dinner at the CAFÉ") == "dinner at the cafe"
    assert fold("ＺÜＲＩＣＨ") == "zurich"
    assert fold("Straße") == "strasse"
    assert fold("ﬁle") == "file"
    assert fold("Ελληνικά") == "ελληνικα"
    assert fold("नमस्ते") == "नमस्ते"  # an Indic vowel sign is part of the word


def test_a_query_matches_words_and_their_beginnings_in_any_order() -> None:
    text = fold("Dinner at the Café tonight? Bring résumé.pdf")
    assert matcher("cafe")(text)
    assert matcher("CAF")(text)
    assert matcher("tonight dinner")(text)
    assert matcher("resume.pdf")(text)
    assert matcher("café, DIN!")(text)
    assert not matcher("inner")(text)  # inside a word is not the start of one
    assert not matcher("dinner lunch")(text)  # every word must be there
    assert matcher("🎉")(fold("party 🎉 tonight"))  # no word: as it is
    with pytest.raises(ValueError, match="empty"):
        matcher("   ")


# --- the store --------------------------------------------------------------------------


def test_search_finds_by_word_and_prefix_newest_first(store: Store) -> None:
    add(store, BOB, "Dinner at the Café?")
    add(store, BOB, "lunch instead")
    add(store, CAROL, "dinner was great, merci à toi")
    add(store, BOB, "DINNERTIME")

    assert find(store, "dinner") == [
        "DINNERTIME",
        "dinner was great, merci à toi",
        "Dinner at the Café?",
    ]
    assert find(store, "cafe din") == ["Dinner at the Café?"]
    assert find(store, "A TOI") == ["dinner was great, merci à toi"]
    assert find(store, "supper") == []
    assert find(store, "dinner", limit=1) == ["DINNERTIME"]
    assert store.stars.add(4, 1.0) is None  # a write right after a search that stopped early
    assert find(store, "dinner", scan=2) == ["DINNERTIME", "dinner was great, merci à toi"]
    with pytest.raises(ValueError, match="at least 1"):
        find(store, "dinner", limit=0)


def test_search_in_one_conversation_finds_nothing_in_the_others(store: Store) -> None:
    add(store, BOB, "see you at the station")
    add(store, CAROL, "the station is closed")
    add(store, BOB, "from Carol's group", sender=CAROL)  # wherever it is, by its peer
    assert find(store, "station", peer=BOB) == ["see you at the station"]
    assert find(store, "station", peer=CAROL) == ["the station is closed"]
    assert find(store, "carol", peer=BOB) == ["from Carol's group"]


def test_files_places_and_cards_are_found_by_name_and_caption(store: Store) -> None:
    photo = Attachment(
        kind="image",
        media_id="0" * 32,
        key=bytes(32),
        header=bytes(24),
        sha256="0" * 64,
        size=1000,
        mime="image/jpeg",
        name="beach.jpg",
        caption="the view from Sète",
    )
    add(store, BOB, photo)
    add(store, BOB, Location(48.8584, 2.2945, "Eiffel Tower"))
    add(store, BOB, ContactCard("Carol Dupré", ("+15550000003",)))
    assert [m.kind for m in store.search.find("sete view", now_ms=NOW)] == ["image"]
    assert [m.kind for m in store.search.find("beach.jpg", now_ms=NOW)] == ["image"]
    assert [m.kind for m in store.search.find("eiffel", now_ms=NOW)] == ["location"]
    assert [m.kind for m in store.search.find("dupre", now_ms=NOW)] == ["contact"]


def test_an_edited_message_is_found_by_its_new_text_only(store: Store) -> None:
    message = add(store, ME, "meet at noon", sender=ME)
    assert store.messages.edit(message.id, "meet at midnight", Text("meet at midnight"), NOW + 1)
    assert find(store, "noon") == []
    assert find(store, "midnight") == ["meet at midnight"]


def test_deleted_erased_and_expired_messages_and_actions_never_match(store: Store) -> None:
    deleted = add(store, BOB, "secret plan alpha")
    erased = add(store, BOB, "secret plan beta")
    expired = add(store, BOB, disappearing("secret plan gamma"))
    add(store, BOB, "secret plan delta")
    add(store, BOB, Reaction(Target(BOB, deleted.client_id), "👍"))
    add(store, BOB, Edit(Target(BOB, erased.client_id), "secret plan epsilon"))
    add(store, BOB, TimerChange(86400))  # a notice, shown, but not a message
    hidden = add(store, BOB, "secret plan zeta")
    store.messages.hide(hidden.id)

    store.messages.delete_for_everyone(deleted.id, "author", "This message was deleted")
    store.messages.erase(erased.id)
    store.messages.start_timer(expired.id, NOW - 1)  # not swept yet: gone all the same

    assert find(store, "secret plan") == ["secret plan delta"]
    assert find(store, "deleted") == []
    assert find(store, "reacted") == []
    assert find(store, "disappearing") == []


def test_searching_and_starring_write_no_text_to_the_disk(store: Store, tmp_path: Path) -> None:
    message = add(store, BOB, "zanzibar rendezvous")
    assert find(store, "zanzibar") == ["zanzibar rendezvous"]
    assert store.stars.add(message.id, 1.0) is None
    store.close()
    for file in (tmp_path / "p").iterdir():
        raw = file.read_bytes()
        assert b"zanzibar" not in raw
        assert b"rendezvous" not in raw


# --- stars ------------------------------------------------------------------------------


def test_star_unstar_and_list_newest_first_by_conversation(store: Store) -> None:
    first = add(store, BOB, "first")
    add(store, BOB, "not starred")
    second = add(store, CAROL, "second")
    third = add(store, BOB, "third")
    for message in (third, first, second):
        assert store.stars.add(message.id, 1.0) is None
    assert store.stars.add(first.id, 2.0) is None  # again: no change

    assert [m.text for m in store.stars.listed(now_ms=NOW)] == ["third", "second", "first"]
    assert [m.text for m in store.stars.listed(BOB, now_ms=NOW)] == ["third", "first"]
    assert all(m.starred for m in store.stars.listed(now_ms=NOW))
    assert [m.starred for m in store.messages.history(BOB)] == [True, False, True]

    assert store.stars.remove(first.id)
    assert not store.stars.remove(first.id)
    assert [m.text for m in store.stars.listed(now_ms=NOW)] == ["third", "second"]
    assert store.messages.by_id(first.id) is not None
    assert not store.messages.by_id(first.id).starred  # type: ignore[union-attr]


def test_actions_and_deleted_messages_cannot_be_starred(store: Store) -> None:
    message = add(store, BOB, "hello")
    reaction = add(store, BOB, Reaction(Target(BOB, message.client_id), "👍"))
    assert "cannot be starred" in (store.stars.add(reaction.id, 1.0) or "")
    store.messages.delete_for_everyone(message.id, "author", "This message was deleted")
    assert "deleted for everyone" in (store.stars.add(message.id, 1.0) or "")
    assert "no message" in (store.stars.add(10_000, 1.0) or "")
    assert store.stars.listed(now_ms=NOW) == []


def test_a_deleted_or_disappeared_message_loses_its_star(store: Store) -> None:
    deleted, erased = add(store, BOB, "one"), add(store, BOB, "two")
    expired = add(store, BOB, disappearing("three"))
    for message in (deleted, erased, expired):
        assert store.stars.add(message.id, 1.0) is None
    store.messages.delete_for_everyone(deleted.id, "author", "This message was deleted")
    store.messages.erase(erased.id)
    store.messages.start_timer(expired.id, NOW - 1)
    assert store.stars.listed(now_ms=NOW) == []
    assert not store.stars.has(deleted.id)
    assert not store.stars.has(erased.id)


def test_an_edited_message_keeps_its_star(store: Store) -> None:
    message = add(store, ME, "meet at noon", sender=ME)
    assert store.stars.add(message.id, 1.0) is None
    assert store.messages.edit(message.id, "meet at one", Text("meet at one"), NOW + 1)
    assert [m.text for m in store.stars.listed(now_ms=NOW)] == ["meet at one"]
