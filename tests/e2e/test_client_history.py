"""A new companion gets its account's recent history: Alice's phone (the primary)
has talked with Bob, 1:1 and in a group; she links a laptop by its code, the phone
sends the history end-to-end encrypted through the media bucket, and the laptop
shows the old messages in order with their ticks. Real clients and the whole local
stack."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from parley import HistoryImported, MessageReceived, MessageState
from tests.e2e.conftest import LocalStack
from tests.e2e.support import (
    WAIT_S,
    Chat,
    Cli,
    acquainted,
    client,
    clients,
    expect,
    link_on,
    new_person,
    until_state,
    wait_synced,
)


def lines(messages: list[object]) -> list[tuple[object, ...]]:
    return [
        (m.sender, m.client_id, m.text, m.state, m.direction)  # type: ignore[attr-defined]
        for m in messages
    ]


async def test_a_new_companion_shows_the_old_messages_in_order_with_their_ticks(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    alice = await new_person(local_stack, tmp_path, "alice")
    bob = await new_person(local_stack, tmp_path, "bob")
    await acquainted(local_stack, tmp_path, {"alice": alice, "bob": bob})
    async with clients(local_stack, tmp_path, "alice", "bob") as (phone, bobs):
        phone_events, bob_events = phone.events(), bobs.events()
        await wait_synced(phone, bobs)
        await phone.add_contact(bob.phone, "Bob")
        first = await phone.send("Bob", "one")
        got = await expect(bob_events, MessageReceived)
        await bobs.mark_read(got.contact)
        await until_state(phone, phone_events, first.client_id, MessageState.READ)
        await bobs.send(got.contact, "two")
        await expect(phone_events, MessageReceived, lambda e: e.message.text == "two")
        third = await phone.send("Bob", "three")
        await until_state(phone, phone_events, third.client_id, MessageState.DELIVERED)
        group = await phone.create_group("Us", ["Bob"])
        said = await phone.send(group, "in the group")
        await until_state(phone, phone_events, said.client_id, MessageState.DELIVERED)
        before_1to1 = lines(phone.history("Bob"))
        before_group = lines(phone.history(group))
        assert [t for _, _, t, _, _ in before_1to1] == ["one", "two", "three"]

        # the laptop shows a code; the phone links it and sends the history
        shown: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        joining = asyncio.create_task(
            link_on(local_stack, tmp_path, "alice-laptop", shown.set_result)
        )
        code = await asyncio.wait_for(shown, WAIT_S)
        laptop_id = await phone.link_device(code)
        laptop_account = await asyncio.wait_for(joining, WAIT_S)
        assert (laptop_account.user_id, laptop_account.device_id) == (alice.user_id, laptop_id)
        sent = await asyncio.wait_for(phone.history_sent(laptop_id), WAIT_S)
        assert sent is not None
        assert (sent.messages, sent.conversations) == (4, 2)
        await asyncio.wait_for(phone.wait_outbox_empty(), WAIT_S)

        laptop = client(local_stack, tmp_path, "alice-laptop")
        laptop_events = laptop.events()
        await laptop.open()
        try:
            imported = await expect(laptop_events, HistoryImported)
            assert (imported.messages, imported.conversations) == (4, 2)
            assert lines(laptop.history("Bob")) == before_1to1
            assert lines(laptop.history(group)) == before_group
            bob_here = laptop.contact("Bob")
            assert bob_here.phone == bob.phone
            states = [m.state for m in laptop.history("Bob")]
            assert states == [MessageState.READ, MessageState.RECEIVED, MessageState.DELIVERED]

            # ticks keep moving there, and what follows arrives as usual
            await bobs.mark_read(got.contact)
            await until_state(laptop, laptop_events, third.client_id, MessageState.READ)
            await bobs.send(got.contact, "four")
            later = await expect(laptop_events, MessageReceived)
            assert later.message.text == "four"
            assert [m.text for m in laptop.history("Bob")] == ["one", "two", "three", "four"]
        finally:
            await laptop.close()


def test_the_cli_links_a_laptop_by_its_code_and_it_imports_the_history(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    cli = Cli(local_stack, tmp_path)
    alice_phone = cli.signup("alice")
    bob_phone = cli.signup("bob")
    cli.run("alice", "contacts", "add", bob_phone, "Bob")
    cli.run("bob", "contacts", "add", alice_phone, "Alice")
    assert "✓" in cli.run("alice", "send", "Bob", "before the laptop")
    cli.run("bob", "inbox")
    process = subprocess.Popen(
        cli.command("alice-laptop", "link", "--insecure-dev-store", "--history-wait", "60"),
        env=cli.env,
        stdin=subprocess.PIPE,  # unused: nothing is typed
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    laptop = Chat(process)  # its lines, as they come
    try:
        shown = laptop.wait_for(r"^  parley devices link parley-link:1:")
        code = shown.split()[-1]
        linked = cli.run("alice", "devices", "link", code)
        assert "Approved device" in linked
        assert "sent it 1 messages of history (1 conversations)." in linked
        laptop.wait_for(r"^Joined the account of ")
        laptop.wait_for(r"^imported 1 message in 1 conversation from your primary device")
        assert laptop.wait() == 0
    finally:
        if process.poll() is None:
            process.kill()
        laptop.reader.join(timeout=5)
    history = cli.run("alice-laptop", "history", "Bob")
    assert "you: before the laptop  ✓✓" in history
    devices = cli.run("alice", "devices")
    assert "primary #0" in devices
    assert "companion #1" in devices
