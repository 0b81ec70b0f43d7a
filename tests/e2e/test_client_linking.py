"""Linked devices end to end: a companion linked by its code gets what contacts
send, contacts see the account's devices change (no identity warning), unlinking
stops delivery to it at once, and a pairing is good for one link only. Real
clients and the whole local stack."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from parley import (
    DeviceLinked,
    DevicesChanged,
    DeviceUnlinked,
    Disconnected,
    LinkError,
    LinkExpired,
    MessageReceived,
    ParleyClientError,
)
from parley.crypto import IdentityKeyPair
from parley.devices.adv import LinkCode
from parley.devices.linking import approve_link
from parley.profiles import profile_dir
from tests.e2e.conftest import LocalStack
from tests.e2e.support import (
    WAIT_S,
    client,
    clients,
    expect,
    link_on,
    new_person,
    wait_synced,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_linked_companion_gets_messages_until_it_is_unlinked(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    alice = await new_person(local_stack, tmp_path, "alice")
    bob_account = await new_person(local_stack, tmp_path, "bob")
    async with clients(local_stack, tmp_path, "alice", "bob") as (phone, bob):
        phone_events, bob_events = phone.events(), bob.events()
        await wait_synced(phone, bob)
        await bob.add_contact(alice.phone, "Alice")
        await bob.send("Alice", "before the laptop")  # Bob verifies Alice's list v1
        assert (await expect(phone_events, MessageReceived)).message.text == "before the laptop"

        before = await phone.own_list()
        assert (before.version, before.device_ids) == (1, frozenset({alice.device_id}))
        # the laptop shows its code; the phone links it
        codes: asyncio.Queue[str] = asyncio.Queue()
        linking = asyncio.create_task(
            link_on(local_stack, tmp_path, "alice-laptop", codes.put_nowait, poll_interval=0.2)
        )
        code = await asyncio.wait_for(codes.get(), WAIT_S)
        assert code.startswith("parley-link:1:")
        laptop_id = await phone.link_device(code)
        laptop_account = await asyncio.wait_for(linking, WAIT_S)
        assert (laptop_account.user_id, laptop_account.device_id) == (alice.user_id, laptop_id)
        assert (laptop_account.role, laptop_account.key_index) == ("companion", 1)
        linked = await expect(phone_events, DeviceLinked)
        assert linked.device_id == laptop_id

        listed = {d.device_id: d for d in await phone.devices()}
        assert (listed[alice.device_id].role, listed[alice.device_id].key_index) == ("primary", 0)
        assert (listed[laptop_id].role, listed[laptop_id].key_index) == ("companion", 1)
        assert listed[laptop_id].listed

        # the same code cannot link again: refused here, and by the service when the
        # approval is replayed (as if signed before the link completed)
        with pytest.raises(LinkError):
            await phone.link_device(code)
        with pytest.raises(LinkExpired, match=r"already used|gone"):
            await approve_link(
                phone.api, phone.store, phone.engine.sealer.identity, before, code, now_ms=1
            )

        async with client(local_stack, tmp_path, "alice-laptop") as laptop:
            laptop_events = laptop.events()
            await asyncio.wait_for(laptop.wait_synced(), WAIT_S)

            await bob.send("Alice", "to both of your devices")
            changed = await expect(bob_events, DevicesChanged)
            assert (changed.added, changed.removed) == ((laptop_id,), ())
            bob_alice = bob.store.contacts.get(alice.user_id)
            assert bob_alice is not None
            assert not bob_alice.identity_changed  # a linked device is no new identity
            for events in (phone_events, laptop_events):
                got = await expect(
                    events, MessageReceived, lambda e: e.message.text == "to both of your devices"
                )
                assert got.contact.user_id == bob_account.user_id

            # a companion links and unlinks no other device
            with pytest.raises(ParleyClientError, match="only the primary"):
                await laptop.link_device(code)
            with pytest.raises(ParleyClientError, match="only the primary"):
                await laptop.unlink_device(alice.device_id)

            # the phone unlinks the laptop: it is signed out at once
            await phone.unlink_device(laptop_id)
            await expect(laptop_events, Disconnected)
            unlinked = await expect(phone_events, DeviceUnlinked)
            assert unlinked.device_id == laptop_id
            assert [d.device_id for d in await phone.devices()] == [alice.device_id]

            await bob.send("Alice", "just your phone now")
            got = await expect(
                phone_events, MessageReceived, lambda e: e.message.text == "just your phone now"
            )
            async with asyncio.timeout(WAIT_S):
                await bob.wait_outbox_empty()
            assert set(bob.store.sessions.for_user(alice.user_id)) == {alice.device_id}
            shown = [e for e in laptop_events.drain() if isinstance(e, MessageReceived)]
            assert shown == []


async def test_an_unknown_or_expired_pairing_fails_and_leaves_no_profile(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    await new_person(local_stack, tmp_path, "carol")
    stranger = IdentityKeyPair.generate()
    never_made = LinkCode("0" * 32, "0" * 16, stranger.public_key, bytes(16))
    async with client(local_stack, tmp_path, "carol", connect=False) as carol:
        with pytest.raises(LinkExpired):
            await carol.link_device(str(never_made))
        with pytest.raises(ValueError, match="not a Parley link code"):
            await carol.link_device("https://example.com/not-a-code")

    # a new device nobody links in time gives up, leaving nothing behind
    shown: list[str] = []
    with pytest.raises(LinkExpired, match="in time"):
        await link_on(
            local_stack, tmp_path, "carol-tablet", shown.append, timeout=0.5, poll_interval=0.2
        )
    assert len(shown) == 1
    assert not profile_dir("carol-tablet", tmp_path).exists()
