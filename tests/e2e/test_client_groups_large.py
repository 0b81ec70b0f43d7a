"""A group just past the size the send function serves inline: its messages go
through the fan-out queue (the local stack runs it as Lambda's SQS event source
would), and the SDK works the same, keys first, members online and offline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from parley import MessageReceived, MessageState
from parley_server.logic.group_fanout import INLINE_MEMBERS
from tests.e2e.conftest import LocalStack
from tests.e2e.support import WAIT_S, client, clients, expect, new_person, until_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_large_group_message_goes_through_the_queue_to_online_and_offline_members(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    size = INLINE_MEMBERS + 2
    accounts = [await new_person(local_stack, tmp_path, f"p{n}") for n in range(size)]
    async with clients(local_stack, tmp_path, "p0", "p1") as (sender, online):
        sender_events, online_events = sender.events(), online.events()
        for c in (sender, online):
            await asyncio.wait_for(c.wait_synced(), WAIT_S)
        group = await sender.create_group("Everyone", [a.user_id for a in accounts[1:]])
        assert len(group.members) == size

        queued = '"GroupFanOutJobsQueued":[1.0]'
        before = local_stack.output().count(queued)
        message = await sender.send(group, "hello, all of you")
        got = await expect(online_events, MessageReceived)
        assert got.message.text == "hello, all of you"
        assert got.message.group_id == group.group_id
        await until_state(sender, sender_events, message.client_id, MessageState.SENT)
        # it was queued, not fanned out inline (WsSend's metric line says so)
        assert local_stack.output().count(queued) == before + 1

    # the last member was offline all along: it finds the key and the message waiting
    async with client(local_stack, tmp_path, f"p{size - 1}") as offline:
        events = offline.events()
        await asyncio.wait_for(offline.wait_synced(), WAIT_S)
        shown = [e for e in events.drain() if isinstance(e, MessageReceived)]
        assert [e.message.text for e in shown] == ["hello, all of you"]
        assert shown[0].contact.user_id == accounts[0].user_id
