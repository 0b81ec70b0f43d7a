"""`Client.search`, `star`, `unstar`, `starred` and their commands (`parley search`,
`star`, `unstar`, `starred`) over a real profile, offline."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley import Client, StarRefused
from parley.cli import main
from parley.content import Content, Reaction, Target, Text
from parley.conversations import payload
from parley.crypto import IdentityKeyPair
from parley.ids import group_address
from parley.models import Account, Direction, Group, Message, MessageState
from parley.store import Store

ME, BOB, CAROL = "a" * 32, "b" * 32, "c" * 32
GROUP = "d" * 32
NOW_S = 1_700_000_000.0


def add(store: Store, peer: str, what: str | Content, sender: str, n: int) -> Message:
    content = Text(what) if isinstance(what, str) else what
    added = store.messages.add(
        peer=peer,
        direction=Direction.OUT if sender == ME else Direction.IN,
        sender=sender,
        client_id=f"c{n}",
        text=payload.describe(content),
        ts=int(NOW_S * 1000) + n,
        state=MessageState.RECEIVED,
        content=content,
    )
    assert added is not None
    return added


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Alice's profile (plaintext dev mode, so no passphrase is asked) with Bob, Carol
    and a group, and a few messages: #1-#5."""
    store = Store.open(tmp_path / "profiles" / "alice", keyring=None, allow_plaintext=True)
    store.accounts.save(Account(ME, "a1" * 8, "+15550000001"), IdentityKeyPair.generate())
    store.contacts.add(BOB, "Bob", "+15550000002")
    store.contacts.add(CAROL, "Carol", "+15550000003")
    store.groups.save(Group(GROUP, "Climbing", 1, (ME, BOB, CAROL), (ME,)), NOW_S)
    add(store, BOB, "Dinner at the Café?", BOB, 1)
    add(store, BOB, "sure, dinner at 8", ME, 2)
    add(store, CAROL, "lunch tomorrow?", CAROL, 3)
    add(store, group_address(GROUP), "dinner after climbing!", CAROL, 4)
    add(store, BOB, Reaction(Target(BOB, "c1"), "👍"), ME, 5)  # an action: hidden
    store.close()
    monkeypatch.setenv("PARLEY_HOME", str(tmp_path))
    monkeypatch.setenv("PARLEY_LOCAL_FILE", str(tmp_path / "no-local.json"))
    monkeypatch.delenv("PARLEY_PROFILE", raising=False)
    return tmp_path


@pytest.fixture
async def client(home: Path) -> AsyncIterator[Client]:
    opened = Client("alice", connect=False, keyring=None, clock=lambda: NOW_S)
    await opened.open()
    yield opened
    await opened.close()


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--profile", "alice", *argv], out=out)
    return code, out.getvalue()


# --- the SDK ----------------------------------------------------------------------------


async def test_search_finds_newest_first_in_all_or_one_conversation(client: Client) -> None:
    assert [m.id for m in client.search("DINNER")] == [4, 2, 1]
    assert [m.id for m in client.search("cafe din")] == [1]
    assert [m.id for m in client.search("dinner", conversation="Bob")] == [2, 1]
    assert [m.id for m in client.search("dinner", conversation="Climbing")] == [4]
    assert [m.id for m in client.search("dinner", limit=1)] == [4]
    with pytest.raises(ValueError, match="empty"):
        client.search("  ")


async def test_star_unstar_and_starred(client: Client) -> None:
    assert client.star(1).starred
    assert client.star(client.message(4)).starred
    assert client.message(1).starred
    assert [m.id for m in client.starred()] == [4, 1]
    assert [m.id for m in client.starred("Bob")] == [1]
    assert not client.unstar(1).starred
    assert not client.unstar(1).starred  # not starred: no change
    assert [m.id for m in client.starred()] == [4]


async def test_an_action_or_a_deleted_message_is_not_starred(client: Client) -> None:
    with pytest.raises(StarRefused, match="cannot be starred"):
        client.star(5)
    client.store.messages.delete_for_everyone(2, "author", "This message was deleted")
    with pytest.raises(StarRefused, match="deleted for everyone"):
        client.star(2)
    assert client.starred() == []


# --- the commands -----------------------------------------------------------------------


def test_parley_search_shows_each_match_under_its_conversation(home: Path) -> None:
    code, out = run("search", "dinner")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "── Climbing ──"
    assert lines[1].endswith("Carol: dinner after climbing!")
    assert lines[2] == "── Bob ──"
    assert "you: sure, dinner at 8" in lines[3]
    assert lines[4].endswith("Bob: Dinner at the Café?")
    assert len(lines) == 5
    assert lines[4].startswith("#1 ")  # the number to star it by


def test_parley_search_in_one_chat_with_a_limit(home: Path) -> None:
    code, out = run("search", "dinner", "at", "--in", "Bob", "-n", "1")
    assert code == 0
    assert out.splitlines()[0] == "── Bob ──"
    assert "you: sure, dinner at 8" in out.splitlines()[1]
    assert len(out.splitlines()) == 2
    code, out = run("search", "supper", "--in", "Carol")
    assert (code, out) == (0, "No messages with Carol match “supper”.\n")


def test_parley_star_starred_and_unstar(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("starred") == (0, "No starred messages.\n")
    code, out = run("star", "1")
    assert (code, out) == (0, "★ #1 starred: Dinner at the Café?\n")
    run("star", "3")
    code, out = run("starred")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "── Carol ──"
    assert lines[1].endswith("Carol: lunch tomorrow?")
    assert lines[2] == "── Bob ──"
    assert lines[3].endswith("Bob: Dinner at the Café?")
    code, out = run("starred", "Bob")
    assert out.splitlines()[1:] == lines[3:]
    assert run("unstar", "1") == (0, "#1 unstarred.\n")
    assert run("unstar", "1") == (0, "#1 was not starred.\n")
    assert run("starred", "Bob") == (0, "No starred messages with Bob.\n")

    code, out = run("star", "5")
    assert (code, out) == (1, "")
    assert "cannot be starred" in capsys.readouterr().err
