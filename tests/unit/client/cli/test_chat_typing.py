"""What `parley chat` shows of typing: the contact's in a 1:1 chat, each member's in
a group chat, and never one chat's typing in another."""

from __future__ import annotations

from parley.cli.chat import typing_here, typing_status
from parley.models import Contact, Group, Typing

BOB = Contact("b" * 32, "Bob", None)
GROUP = Group("e" * 32, "Climbing", 1, ("a" * 32, "b" * 32), ("a" * 32,))


def test_typing_to_us_shows_in_the_contacts_chat_only() -> None:
    event = Typing(BOB, True)
    assert typing_here(event, BOB.user_id)
    assert not typing_here(event, GROUP.conversation)


def test_typing_in_a_group_shows_in_that_group_only_not_in_the_members_chat() -> None:
    event = Typing(BOB, True, GROUP)
    assert typing_here(event, GROUP.conversation)
    assert not typing_here(event, BOB.user_id)
    assert not typing_here(event, "g:" + "f" * 32)


def test_the_status_line_names_everyone_typing() -> None:
    assert typing_status([]) == ""
    assert typing_status(["Bob"]) == "Bob is typing…"
    assert typing_status(["Bob", "Carol"]) == "Bob and Carol are typing…"
    assert typing_status(["Bob", "Carol", "Dan"]) == "Bob, Carol and Dan are typing…"
