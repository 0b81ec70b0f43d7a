"""`parley group …`, group sends, history and chat in the CLI, end to end on the
local stack: three people, three profiles, one machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import LocalStack
from tests.e2e.support import Cli


@pytest.fixture
def cli(local_stack: LocalStack, tmp_path: Path) -> Cli:
    return Cli(local_stack, tmp_path)


def test_group_create_send_inbox_info_history_and_admin_only_changes(cli: Cli) -> None:
    phones = {name: cli.signup(name) for name in ("alice", "bob", "carol")}
    for name in ("bob", "carol"):
        cli.run("alice", "contacts", "add", phones[name], name.title())
    cli.run("bob", "contacts", "add", phones["alice"], "Alice")
    cli.run("bob", "contacts", "add", phones["carol"], "Carol")

    created = cli.run("alice", "group", "create", "Climbing", "Bob", "Carol")
    found = re.search(r"Created Climbing \(group [0-9a-f]{32}\): (.*)\.", created)
    assert found is not None
    assert sorted(found.group(1).split(", ")) == ["Bob", "Carol", "you"]
    assert "✓ Saturday at the crag?" in cli.run(
        "alice", "send", "Climbing", "Saturday at the crag?"
    )

    inbox = cli.run("bob", "inbox")
    assert "[Climbing] " in inbox
    assert "Alice: Saturday at the crag?" in inbox
    assert "You are in Climbing (3 members)." in inbox

    info = cli.run("bob", "group", "info", "Climbing")
    assert re.search(r"^  you\s+member$", info, re.MULTILINE)
    assert re.search(r"^  Alice\s+admin$", info, re.MULTILINE)
    assert re.search(r"^  Carol\s+member$", info, re.MULTILINE)
    # Bob's safety number with Alice is the one Alice sees with Bob
    bob_sees = re.findall(r"(?:\d{5} ){11}\d{5}", info)
    alice_sees = re.findall(r"(?:\d{5} ){11}\d{5}", cli.run("alice", "safety-number", "Bob"))
    assert alice_sees[0] in bob_sees

    # a plain member cannot vouch; the admin can, after looking at the members
    assert "not_admin" in cli.run("bob", "group", "vouch", "Climbing", "--yes", ok=False)
    vouched = cli.run("alice", "group", "vouch", "Climbing", "--yes")
    assert "Bob" in vouched
    assert "You signed the membership of Climbing as it is (3 members)" in vouched
    refused = cli.run("bob", "group", "remove", "Climbing", "Carol", ok=False)
    assert "not_admin" in refused
    assert "3 members" in cli.run("bob", "group", "list")

    assert "✓ I bring the rope" in cli.run("bob", "send", "Climbing", "I bring the rope")
    cli.run("alice", "inbox")
    cli.run("carol", "inbox")  # Carol's device acks both
    cli.run("alice", "inbox")  # the receipts reach Alice
    history = cli.run("alice", "history", "Climbing")
    assert history.startswith("Group Climbing (3 members)")
    assert re.search(r"you: Saturday at the crag\?  ✓✓", history)
    assert re.search(r"Bob: I bring the rope$", history, re.MULTILINE)

    removed = cli.run("alice", "group", "remove", "Climbing", "Carol")
    assert "Climbing now has 2 members." in removed
    assert "✓ just us now" in cli.run("alice", "send", "Climbing", "just us now")
    assert "just us now" in cli.run("bob", "inbox")
    assert "just us now" not in cli.run("carol", "inbox")
    assert "just us now" not in cli.run("carol", "history", "Climbing")

    assert "You left Climbing." in cli.run("bob", "group", "leave", "Climbing")
    assert "No groups yet" in cli.run("bob", "group", "list")
    assert "— you are no longer in it" in cli.run("bob", "history", "Climbing")


def test_group_chat_shows_who_said_what_and_sends_what_is_typed(cli: Cli) -> None:
    phones = {name: cli.signup(name) for name in ("alice", "bob", "carol")}
    for name in ("bob", "carol"):
        cli.run("alice", "contacts", "add", phones[name], name.title())
    cli.run("bob", "contacts", "add", phones["alice"], "Alice")
    cli.run("alice", "group", "create", "Crew", "Bob", "Carol")
    cli.run("alice", "send", "Crew", "first!")
    cli.run("bob", "inbox")

    with cli.chat("bob", "Crew") as chat:
        header = chat.wait_for(r"^Chat in Crew \(")
        assert re.search(r"\bAlice\b", header)
        assert re.search(r"\byou\b", header)
        chat.wait_for(r"Alice: first!")
        cli.run("alice", "send", "Crew", "is the chat open?")
        chat.wait_for(r"Alice: is the chat open\?")
        chat.type("yes, typing in the group")
        chat.wait_for(r"✓\s+yes, typing in the group")  # the server took it
        chat.type("/members")
        chat.wait_for(r"^  Alice \(admin\)")
        chat.type("/quit")
        assert chat.wait() == 0

    assert "Bob: yes, typing in the group" in cli.run("alice", "inbox")
    carol = cli.run("carol", "inbox")
    assert "yes, typing in the group" in carol
    assert "[Crew]" in carol
