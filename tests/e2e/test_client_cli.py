"""The `parley` CLI end to end: two people, two profiles, one machine."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import LocalStack
from tests.e2e.support import WAIT_S, Cli


@pytest.fixture
def cli(local_stack: LocalStack, tmp_path: Path) -> Cli:
    return Cli(local_stack, tmp_path)


def test_signup_contacts_send_inbox_history_and_safety_numbers(cli: Cli) -> None:
    alice_phone = cli.signup("alice")
    bob_phone = cli.signup("bob")

    whoami = cli.run("alice", "whoami")
    assert alice_phone in whoami
    assert "NOT ENCRYPTED (plaintext dev mode)" in whoami
    alice_id = re.search(r"user id\s+([0-9a-f]{32})", whoami)
    assert alice_id is not None

    assert "Added Bob" in cli.run("alice", "contacts", "add", bob_phone, "Bob")
    assert "Added Alice" in cli.run("bob", "contacts", "add", alice_phone, "Alice")
    assert "Bob" in cli.run("alice", "contacts", "list")

    sent = cli.run("alice", "send", "Bob", "Hello from the command line")
    assert "✓ Hello from the command line" in sent

    inbox = cli.run("bob", "inbox")
    assert "Alice: Hello from the command line" in inbox

    # Alice picks up the delivered receipt; her history shows ✓✓
    cli.run("alice", "inbox")
    history = cli.run("alice", "history", "Bob")
    assert re.search(r"you: Hello from the command line  ✓✓$", history, re.MULTILINE)

    numbers = [
        re.findall(r"(?:\d{5} ){11}\d{5}", cli.run(who, "safety-number", other))
        for who, other in (("alice", "Bob"), ("bob", "Alice"))
    ]
    assert numbers[0] == numbers[1]
    assert len(numbers[0]) == 1


def test_chat_shows_incoming_messages_and_sends_what_is_typed(cli: Cli) -> None:
    alice_phone = cli.signup("alice")
    bob_phone = cli.signup("bob")
    cli.run("alice", "contacts", "add", bob_phone, "Bob")
    cli.run("bob", "contacts", "add", alice_phone, "Alice")

    with cli.chat("bob", "Alice") as chat:
        chat.wait_for(r"^Chat with Alice")
        cli.run("alice", "send", "Bob", "Are you in the chat?")
        chat.wait_for(r"Alice: Are you in the chat\?")
        chat.type("Yes, typing from the chat")
        chat.wait_for(r"✓\s+Yes, typing from the chat")  # the server took it
        chat.type("/quit")
        assert chat.wait() == 0

    assert "Bob: Yes, typing from the chat" in cli.run("alice", "inbox")
    # the chat was open when Alice's message arrived: Bob read it (blue ticks for her).
    # The chat sent that receipt before it quit, but the stack may still be on it (a
    # cold start of WsReceipt took 1.4 s once, and Alice's inbox synced before it was
    # stored): her app shows it at a later sync, as a phone's would.
    deadline = time.monotonic() + WAIT_S
    while not re.search(r"you: Are you in the chat\?  ✓✓ read", cli.run("alice", "history", "Bob")):
        assert time.monotonic() < deadline, cli.run("alice", "history", "Bob")
        cli.run("alice", "inbox")


def test_commands_fail_clearly_without_an_account_or_a_contact(cli: Cli) -> None:
    missing = cli.run("nobody", "history", "Bob", ok=False)
    assert "sign up first" in missing
    cli.signup("carol")
    assert "no contact 'Dave'" in cli.run("carol", "send", "Dave", "hi", ok=False)


def test_devices_lists_this_one_and_remove_signs_it_out(cli: Cli) -> None:
    cli.signup("erin")
    device_id = re.search(r"device id\s+([0-9a-f]{16})", cli.run("erin", "whoami"))
    assert device_id is not None

    listed = cli.run("erin", "devices")
    row = rf"^{device_id[1]}  primary #0\s+signed in \S+ \S+  this device$"
    assert re.search(row, listed, re.MULTILINE)
    assert "no such device" in cli.run("erin", "devices", "remove", "0123456789abcdef", ok=False)
    assert "16 lowercase hex" in cli.run("erin", "devices", "remove", "nope", ok=False)

    out = cli.run("erin", "devices", "remove", device_id[1])
    assert "This device is signed out" in out
    assert "sign up" in cli.run("erin", "devices", ok=False)


def test_reply_react_edit_delete_and_timer_from_the_command_line_and_chat(cli: Cli) -> None:
    alice_phone = cli.signup("alice")
    bob_phone = cli.signup("bob")
    cli.run("alice", "contacts", "add", bob_phone, "Bob")
    cli.run("bob", "contacts", "add", alice_phone, "Alice")
    cli.run("alice", "send", "Bob", "Dinner at 8?")
    cli.run("bob", "inbox")

    def number(profile: str, text: str) -> str:
        """The #N `history` shows for the message with `text`."""
        other = "Bob" if profile == "alice" else "Alice"
        shown = cli.run(profile, "history", other)
        found = re.search(rf"^#(\d+) .*{re.escape(text)}", shown, re.MULTILINE)
        assert found is not None, shown
        return found[1]

    asked = number("bob", "Dinner at 8?")
    assert "✓" in cli.run("bob", "reply", asked, "Make it 9")
    assert "reacted 👍" in cli.run("bob", "react", asked, "👍")
    assert "a reaction is one emoji" in cli.run("bob", "react", asked, "ok", ok=False)
    inbox = cli.run("alice", "inbox")
    assert "Bob: Make it 9" in inbox
    assert "reacted 👍 to" in inbox

    mine = number("alice", "Dinner at 8?")
    cli.run("alice", "edit", mine, "Dinner at 8:30?")
    history = cli.run("alice", "history", "Bob")
    # Bob's reply quotes the original, shown as it is here now
    assert re.search(r"┌ you: “Dinner at 8:30\?”", history)
    assert "Dinner at 8:30? (edited)" in history
    assert re.search(r"^\s+👍 Bob$", history, re.MULTILINE)
    assert "edited #" in cli.run("bob", "inbox")
    assert "Dinner at 8:30? (edited)" in cli.run("bob", "history", "Alice")

    refused = cli.run("bob", "edit", number("bob", "Dinner at 8:30?"), "mine now", ok=False)
    assert "only its author edits" in refused

    assert "24 hours" in cli.run("alice", "timer", "Bob", "24h")
    assert "24 hours" in cli.run("bob", "inbox")
    assert "disappearing messages: 24 hours" in cli.run("bob", "timer", "Alice")

    cli.run("alice", "delete", mine)
    cli.run("bob", "inbox")
    assert "🚫 This message was deleted" in cli.run("bob", "history", "Alice")

    with cli.chat("bob", "Alice") as chat:
        chat.wait_for(r"^Chat with Alice")
        reply_to = number("bob", "Make it 9")
        chat.type(f"/react {reply_to} 🎉")
        chat.wait_for(r"🎉 you")
        chat.type("/timer off")
        chat.wait_for(r"disappearing messages: off")
        chat.type("/quit")
        assert chat.wait() == 0
