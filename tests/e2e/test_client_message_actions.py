"""Replies, reactions, edits, deletes for everyone, forwards and disappearing timers
end to end: real clients and crypto on the local stack, a person with two devices,
and a group with an admin."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from parley import (
    ActionRefused,
    Client,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    MessageSent,
    NotFound,
    ReactionChanged,
    TimerChanged,
)
from parley.conversations import actions
from parley.models import Account, Message
from tests.e2e.conftest import LocalStack
from tests.e2e.support import (
    WAIT_S,
    acquainted,
    clients,
    expect,
    new_device,
    new_person,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 24 * 3600


def shown(app: Client, sender: str, client_id: str) -> Message:
    found = app.store.messages.get(sender, client_id)
    assert found is not None
    return found


async def until(condition: object) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_replies_reactions_edits_deletes_and_forwards_reach_every_device(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    alice = await new_person(local_stack, tmp_path, "alice")
    bob = await new_person(local_stack, tmp_path, "bob")
    await acquainted(local_stack, tmp_path, {"alice": alice, "bob": bob})
    await new_device(local_stack, tmp_path, alice, "alice-laptop")
    async with clients(local_stack, tmp_path, "alice", "alice-laptop", "bob") as apps:
        phone, laptop, bobs = apps
        streams = [app.events() for app in apps]
        phone_events, laptop_events, bob_events = streams
        for app in apps:
            await asyncio.wait_for(app.wait_synced(), WAIT_S)
        await phone.refresh_own_devices()

        asked = await phone.send(bob.user_id, "Lunch at 1?")
        got = await expect(bob_events, MessageReceived, lambda e: e.message.text == "Lunch at 1?")
        await expect(laptop_events, MessageSent, lambda e: e.message.client_id == asked.client_id)

        # a reply quotes its message on every device
        answer = await bobs.reply(got.message, "yes, at the usual place")
        for events in (phone_events, laptop_events):
            came = await expect(
                events, MessageReceived, lambda e: e.message.client_id == answer.client_id
            )
            assert came.message.reply_to is not None
            assert came.message.reply_to.target == asked.target
            assert came.message.reply_to.excerpt == "Lunch at 1?"

        # a reaction shows on both of Alice's devices; a new one replaces it
        await bobs.react(got.message, "👍")
        await bobs.react(got.message, "🎉")
        for app, events in ((phone, phone_events), (laptop, laptop_events)):
            await expect(events, ReactionChanged, lambda e: e.emoji == "🎉")
            assert shown(app, alice.user_id, asked.client_id).reactions == ((bob.user_id, "🎉"),)

        # the author edits; Bob and her laptop show the new text, edited
        await phone.edit(asked, "Lunch at 1:30?")
        for events in (bob_events, laptop_events):
            edited = await expect(events, MessageEdited)
            assert (edited.message.text, edited.message.edited) == ("Lunch at 1:30?", True)
        # Bob may not edit Alice's message, nor delete it for everyone
        with pytest.raises(ActionRefused):
            await bobs.edit(got.message, "no lunch")
        with pytest.raises(ActionRefused):
            await bobs.delete_for_everyone(got.message)

        # Bob forwards Alice's message back to her: marked, counted
        (copy,) = await bobs.forward(shown(bobs, alice.user_id, asked.client_id), [alice.user_id])
        forwarded = await expect(
            phone_events, MessageReceived, lambda e: e.message.client_id == copy.client_id
        )
        assert (forwarded.message.forwarded, forwarded.message.text) == (1, "Lunch at 1:30?")

        # delete for everyone: gone on every device, reactions too
        await phone.delete_for_everyone(asked)
        for app, events in ((bobs, bob_events), (laptop, laptop_events)):
            deleted = await expect(events, MessageDeleted)
            assert deleted.by == "author"
            gone = shown(app, alice.user_id, asked.client_id)
            assert (gone.text, gone.content, gone.reactions) == (actions.DELETED, None, ())
        with pytest.raises(ActionRefused):
            await bobs.react(shown(bobs, alice.user_id, asked.client_id), "😮")

        # a file deleted for everyone leaves Bob's device and media storage
        picture = tmp_path / "note.txt"
        picture.write_text("the plan, in writing")
        sent_file = await phone.send_file(bob.user_id, picture)
        came = await expect(
            bob_events, MessageReceived, lambda e: e.message.client_id == sent_file.client_id
        )
        saved = await bobs.download(came.message)
        media_id = came.message.attachment.media_id  # type: ignore[union-attr]
        await phone.delete_for_everyone(sent_file)
        await expect(
            bob_events, MessageDeleted, lambda e: e.message.client_id == sent_file.client_id
        )
        assert not saved.exists()
        with pytest.raises(NotFound):
            await bobs.api.media_url(media_id)

        # a disappearing timer set by Bob holds on every device and in what follows
        await bobs.set_disappearing(alice.user_id, DAY)
        for app, events in ((phone, phone_events), (laptop, laptop_events)):
            changed = await expect(events, TimerChanged)
            assert (changed.seconds, changed.set_by) == (DAY, bob.user_id)
            assert app.disappearing(bob.user_id) == DAY
        brief = await phone.send(bob.user_id, "this one disappears")
        came = await expect(
            bob_events, MessageReceived, lambda e: e.message.client_id == brief.client_id
        )
        assert came.message.timer == DAY
        await bobs.mark_read(alice.user_id)
        read = shown(bobs, alice.user_id, brief.client_id)
        assert read.expires_at is not None
        for stream in streams:
            stream.close()


async def test_in_a_group_an_admin_deletes_for_everyone_and_only_admins_set_the_timer(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    people: dict[str, Account] = {
        name: await new_person(local_stack, tmp_path, name) for name in ("alice", "bob", "carol")
    }
    await acquainted(local_stack, tmp_path, people)
    async with clients(local_stack, tmp_path, "alice", "bob", "carol") as (alice, bob, carol):
        streams = [app.events() for app in (alice, bob, carol)]
        alice_events, bob_events, carol_events = streams
        for app in (alice, bob, carol):
            await asyncio.wait_for(app.wait_synced(), WAIT_S)
        group = await alice.create_group("Crag", [people["bob"].user_id, people["carol"].user_id])
        await alice.send(group, "welcome")
        for events in (bob_events, carol_events):
            await expect(events, MessageReceived, lambda e: e.message.text == "welcome")
        await until(lambda: [g.name for g in bob.groups()] == ["Crag"])

        spam = await bob.send(bob.group(group.group_id), "buy my stuff")
        for events in (alice_events, carol_events):
            await expect(events, MessageReceived, lambda e: e.message.client_id == spam.client_id)
        # Carol is no admin: her client refuses, and neither may delete Bob's message
        with pytest.raises(ActionRefused):
            await carol.set_disappearing(carol.group(group.group_id), DAY)
        with pytest.raises(ActionRefused):
            await carol.delete_for_everyone(shown(carol, people["bob"].user_id, spam.client_id))

        await alice.delete_for_everyone(shown(alice, people["bob"].user_id, spam.client_id))
        for app, events in ((bob, bob_events), (carol, carol_events)):
            deleted = await expect(events, MessageDeleted)
            assert (deleted.by, deleted.deleted_by) == ("admin", people["alice"].user_id)
            gone = shown(app, people["bob"].user_id, spam.client_id)
            assert gone.text == actions.ADMIN_DELETED

        await alice.set_disappearing(group, 7 * DAY)
        for app, events in ((bob, bob_events), (carol, carol_events)):
            await expect(events, TimerChanged, lambda e: e.seconds == 7 * DAY)
            assert app.disappearing(group.group_id) == 7 * DAY
        for stream in streams:
            stream.close()
