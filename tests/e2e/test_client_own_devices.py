"""One person, two devices: what the phone sends shows on the laptop too, as sent,
with its ticks; in a group as well (the phone gives the laptop its sender key).
Real clients and the whole local stack."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parley import Direction, MessageReceived, MessageSent, MessageState
from tests.e2e.conftest import LocalStack
from tests.e2e.support import (
    WAIT_S,
    acquainted,
    clients,
    expect,
    new_device,
    new_person,
    until_state,
)


async def test_what_one_device_sends_shows_on_the_accounts_other_devices(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    alice = await new_person(local_stack, tmp_path, "alice")
    bob = await new_person(local_stack, tmp_path, "bob")
    await acquainted(local_stack, tmp_path, {"alice": alice, "bob": bob})
    await new_device(local_stack, tmp_path, alice, "alice-laptop")
    async with clients(local_stack, tmp_path, "alice", "alice-laptop", "bob") as devices:
        phone, laptop, bobs = devices
        laptop_events, bob_events = laptop.events(), bobs.events()
        for device in devices:
            await asyncio.wait_for(device.wait_synced(), WAIT_S)
        listed = await phone.refresh_own_devices()  # done on connecting too; here, surely
        assert len(listed) == 2
        await phone.add_contact(bob.phone, "Bob")

        sent = await phone.send("Bob", "from my phone")

        copy = await expect(
            laptop_events, MessageSent, lambda e: e.message.client_id == sent.client_id
        )
        assert (copy.message.peer, copy.message.text) == (bob.user_id, "from my phone")
        assert copy.message.direction is Direction.OUT
        got = await expect(bob_events, MessageReceived)
        assert got.message.text == "from my phone"  # once: Bob gets no copy of the copy
        await bobs.mark_read(got.contact)
        await until_state(laptop, laptop_events, sent.client_id, MessageState.READ)

        group = await phone.create_group("Us", ["Bob"])
        said = await phone.send(group, "in the group")

        own = await expect(
            laptop_events, MessageSent, lambda e: e.message.client_id == said.client_id
        )
        assert (own.message.group_id, own.message.text) == (group.group_id, "in the group")
        assert own.message.direction is Direction.OUT
        heard = await expect(bob_events, MessageReceived, lambda e: e.message.group_id is not None)
        assert heard.message.text == "in the group"
        await until_state(phone, phone.events(), said.client_id, MessageState.DELIVERED)
        # nothing from the phone ever shows on the laptop as received from someone
        shown = [e for e in laptop_events.drain() if isinstance(e, MessageReceived)]
        assert shown == []
