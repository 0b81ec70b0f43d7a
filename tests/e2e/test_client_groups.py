"""Group chats end to end: real clients, real sender keys, the whole local stack.

Each person signs up through the SMS sink into a throwaway profile and uses
`parley.Client` as an app would. Groups stay at or under 32 members here, the
size the send function fans out inline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from parley import (
    ApiError,
    Client,
    EventStream,
    GroupMembersUnverified,
    MessageReceived,
    MessageState,
    Typing,
)
from parley.groups import NotAGroupMember
from parley.models import Account, Group, GroupUpdated
from parley.protocol import IncomingMessage, OutboxEntry
from tests.e2e.conftest import LocalStack
from tests.e2e.support import WAIT_S, client, clients, expect, new_person, spy, until_state

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def received(stream: EventStream, group: Group, count: int) -> list[str]:
    """The texts of the next `count` messages shown in `group`."""
    texts: list[str] = []
    while len(texts) < count:
        event = await expect(
            stream, MessageReceived, lambda e: e.message.group_id == group.group_id
        )
        texts.append(event.message.text)
    return texts


async def until(condition: Callable[[], bool]) -> None:
    """Until `condition()` holds, checked every 50 ms: some of what is checked (a
    member's tick, a group read in the background) raises no event of its own."""
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def tap(client: Client) -> list[IncomingMessage]:
    """Every envelope the client's engine is handed, as the server sent it."""
    return spy(client.engine, "receive")


def group_texts(client: Client, group: Group) -> list[str]:
    return [m.text for m in client.history(group, 100)]


def envelope_of(seen: list[IncomingMessage], text_sender: str, group: Group) -> IncomingMessage:
    """The last group envelope from `text_sender` in `group` (its ciphertext)."""
    mine = [m for m in seen if m.group == group.group_id and m.sender == text_sender]
    assert mine, "no group envelope was seen"
    return mine[-1]


@pytest.fixture
async def people(local_stack: LocalStack, tmp_path: Path) -> tuple[Path, dict[str, Account]]:
    names = ("alice", "bob", "carol", "dan")
    accounts = {name: await new_person(local_stack, tmp_path, name) for name in names}
    return tmp_path, accounts


async def test_a_group_talks_with_ticks_per_member_and_an_offline_member_catches_up(
    local_stack: LocalStack, people: tuple[Path, dict[str, Account]]
) -> None:
    home, accounts = people
    async with clients(local_stack, home, "alice", "bob") as (alice, bob):
        carol = client(local_stack, home, "carol")
        await carol.open()
        alice_events, bob_events, carol_events = alice.events(), bob.events(), carol.events()
        for c in (alice, bob, carol):
            await asyncio.wait_for(c.wait_synced(), WAIT_S)
        await alice.add_contact(accounts["bob"].phone, "Bob")
        await alice.add_contact(accounts["carol"].phone, "Carol")

        group = await alice.create_group("Climbing", ["Bob", "Carol"])
        assert group.members[0] == accounts["alice"].user_id
        assert set(group.members) == {accounts[n].user_id for n in ("alice", "bob", "carol")}
        assert group.admins == (accounts["alice"].user_id,)
        assert alice.groups() == [group]

        first = await alice.send("Climbing", "Saturday at the crag?")
        assert first.group_id == group.group_id
        assert await received(bob_events, group, 1) == ["Saturday at the crag?"]
        got = await expect(carol_events, MessageReceived)
        assert got.message.text == "Saturday at the crag?"
        assert got.contact.user_id == accounts["alice"].user_id
        # the newcomers learn the group from the service on their own
        await until(lambda: [g.name for g in bob.groups()] == ["Climbing"])

        await until_state(alice, alice_events, first.client_id, MessageState.DELIVERED)
        await bob.mark_read(group.group_id)

        def read_by() -> set[str]:
            return {t.user_id for t in alice.group_ticks(first) if t.read}

        await until(lambda: read_by() == {accounts["bob"].user_id})
        detail = {t.user_id: t for t in alice.group_ticks(first)}
        assert detail[accounts["carol"].user_id].delivered
        assert detail[accounts["carol"].user_id].read_at is None
        stored = alice.store.messages.get(accounts["alice"].user_id, first.client_id)
        assert stored is not None
        assert stored.state is MessageState.DELIVERED  # not every member read it yet
        await carol.mark_read(group.group_id)
        await until_state(alice, alice_events, first.client_id, MessageState.READ)

        # Carol goes offline; Alice and Bob go on talking
        carol_events.close()
        await carol.close()
        await alice.send(group, "who brings the rope?")
        bob_group = bob.group(group.group_id)
        await bob.send(bob_group, "I do")
        await bob.send(bob_group, "and the quickdraws")
        assert await received(alice_events, group, 2) == ["I do", "and the quickdraws"]
        assert await received(bob_events, group, 1) == ["who brings the rope?"]

        async with client(local_stack, home, "carol") as carol_again:
            events = carol_again.events()
            await asyncio.wait_for(carol_again.wait_synced(), WAIT_S)
            shown = [e for e in events.drain() if isinstance(e, MessageReceived)]
            by_sender: dict[str, list[str]] = {}
            for event in shown:
                by_sender.setdefault(event.message.sender, []).append(event.message.text)
            assert by_sender == {
                accounts["alice"].user_id: ["who brings the rope?"],
                accounts["bob"].user_id: ["I do", "and the quickdraws"],
            }
            assert len(group_texts(carol_again, group)) == 4


async def test_admins_change_members_the_removed_cannot_read_on_the_added_cannot_read_back(
    local_stack: LocalStack, people: tuple[Path, dict[str, Account]]
) -> None:
    home, accounts = people
    ids = {name: account.user_id for name, account in accounts.items()}
    async with clients(local_stack, home, *ids) as everyone:
        alice, bob, carol, dan = everyone
        streams = {name: c.events() for name, c in zip(ids, everyone, strict=True)}
        for c in everyone:
            await asyncio.wait_for(c.wait_synced(), WAIT_S)
        bob_seen, carol_seen, alice_seen = tap(bob), tap(carol), tap(alice)
        group = await alice.create_group("Crew", [ids["bob"], ids["carol"]])

        await alice.send(group, "before Dan")
        for name in ("bob", "carol"):
            assert await received(streams[name], group, 1) == ["before Dan"]
        before_dan = envelope_of(bob_seen, ids["alice"], group)
        await until(lambda: bool(bob.groups()))
        await bob.send(group.group_id, "Bob here")
        for name in ("alice", "carol"):
            assert await received(streams[name], group, 1) == ["Bob here"]

        # a member who is not an admin cannot change the group; nothing changes
        with pytest.raises(ApiError) as refused:
            await bob.add_members(group.group_id, [ids["dan"]])
        assert refused.value.code == "not_admin"
        with pytest.raises(ApiError) as refused:
            await bob.remove_members(group.group_id, [ids["carol"]])
        assert refused.value.code == "not_admin"
        assert (await alice.refresh_group(group)).version == group.version

        # Alice adds Dan and removes Carol
        added = await alice.add_members(group, [ids["dan"]])
        assert added.version == group.version + 1
        changed = await alice.remove_members(group, [ids["carol"]])
        assert set(changed.members) == {ids["alice"], ids["bob"], ids["dan"]}

        # Bob still holds the old version: the server says stale, Bob catches up and
        # resends under the same client id, with a key Carol never gets
        regroups: list[str] = []
        regroup = bob.engine.regroup

        async def counted(entry: OutboxEntry, group: Group) -> object:
            regroups.append(entry.client_id)
            return await regroup(entry, group)

        bob.engine.regroup = counted  # type: ignore[method-assign,assignment]
        said = await bob.send(group.group_id, "after the change")
        for name in ("alice", "dan"):
            assert await received(streams[name], group, 1) == ["after the change"]
        await until_state(bob, streams["bob"], said.client_id, MessageState.SENT)
        assert regroups == [said.client_id]
        bob_now = bob.group(group.group_id)
        assert bob_now.version == changed.version
        assert ids["carol"] not in bob_now.members

        await alice.send(group, "welcome Dan")
        assert await received(streams["dan"], group, 1) == ["welcome Dan"]
        assert await received(streams["bob"], group, 1) == ["welcome Dan"]

        # Carol's client never got those; handed the ciphertexts, it cannot open them
        assert said.client_id not in {m.client_id for m in carol_seen}
        for sender in ("alice", "bob"):
            envelope = envelope_of(alice_seen if sender == "bob" else bob_seen, ids[sender], group)
            outcome = carol.engine.receive(replace(envelope, server_id=f"leak-{sender}"))
            assert outcome.events == []
        assert "after the change" not in group_texts(carol, group)
        assert "welcome Dan" not in group_texts(carol, group)

        # Dan cannot read what was said before he joined
        outcome = dan.engine.receive(replace(before_dan, server_id="old"))
        assert outcome.events == []
        assert group_texts(dan, group) == ["after the change", "welcome Dan"]
        assert "Bob here" not in group_texts(dan, group)

        # Carol finds out she is out when she speaks: her new key would go to the
        # members as they are now, so the group is read first, and she is not in it
        with pytest.raises(NotAGroupMember):
            await carol.send(group.group_id, "hello?")
        await expect(streams["carol"], GroupUpdated, lambda e: not e.group.active)
        assert carol.groups() == []
        assert carol.store.sender_keys.own(group.group_id) is None

        # anyone may leave
        await dan.leave(group.group_id)
        assert dan.groups() == []
        now = await alice.refresh_group(group)
        assert set(now.members) == {ids["alice"], ids["bob"]}


async def test_a_member_the_service_slips_in_gets_no_key_until_an_admin_vouches(
    local_stack: LocalStack, people: tuple[Path, dict[str, Account]]
) -> None:
    home, accounts = people
    ids = {name: account.user_id for name, account in accounts.items()}
    async with clients(local_stack, home, "alice", "bob", "dan") as (alice, bob, dan):
        streams = {"alice": alice.events(), "bob": bob.events(), "dan": dan.events()}
        warnings = {"alice": alice.events(), "bob": bob.events()}  # read apart from messages
        for c in (alice, bob, dan):
            await asyncio.wait_for(c.wait_synced(), WAIT_S)
        group = await alice.create_group("Crew", [ids["bob"]])
        await alice.send(group, "just us")
        assert await received(streams["bob"], group, 1) == ["just us"]

        # the service (whoever controls its database) adds Dan with no admin's change,
        # and moves the version so that members hand out new keys
        ddb = local_stack.moto("dynamodb")
        (table,) = [t for t in ddb.list_tables()["TableNames"] if t.endswith("-groups")]
        ddb.put_item(
            TableName=table,
            Item={
                "group_id": {"S": group.group_id},
                "sk": {"S": f"MEMBER#{ids['dan']}"},
                "member": {"S": ids["dan"]},
                "role": {"S": "member"},
                "joined_ms": {"N": "9999999999999"},
                "added_by": {"S": ids["alice"]},
            },
        )
        ddb.update_item(
            TableName=table,
            Key={"group_id": {"S": group.group_id}, "sk": {"S": "META"}},
            UpdateExpression="SET version = version + :one, member_count = :three",
            ExpressionAttributeValues={":one": {"N": "1"}, ":three": {"N": "3"}},
        )

        for name, sender, other in (("alice", alice, "bob"), ("bob", bob, "alice")):
            said = await sender.send(group.group_id, f"still just us? ({name})")
            warned = await expect(warnings[name], GroupMembersUnverified)
            assert warned.user_ids == (ids["dan"],)
            assert await received(streams[other], group, 1) == [said.text]
            assert sender.group(group.group_id).unverified == (ids["dan"],)
        # Dan's device gets both ciphertexts (the service fans them out) but no key
        await until(lambda: len(dan.store.sender_keys.held()) == 2)
        assert not [e for e in streams["dan"].drain() if isinstance(e, MessageReceived)]

        # Alice knows Dan and vouches: from then on he gets her key (from its current
        # step: what she said before stays closed to him)
        vouched = await alice.vouch_group(group.group_id, [ids["bob"], ids["dan"]], [])
        assert vouched.unverified == ()
        await alice.send(group.group_id, "welcome Dan")
        assert await received(streams["dan"], group, 1) == ["welcome Dan"]
        # Bob's device trusts Alice's vouch when it next reads the group
        now = await bob.refresh_group(group.group_id)
        assert now.unverified == ()


async def test_typing_in_a_group_shows_on_the_other_members_devices_only(
    local_stack: LocalStack, people: tuple[Path, dict[str, Account]]
) -> None:
    home, accounts = people
    async with clients(local_stack, home, "alice", "bob", "carol", "dan") as everyone:
        alice, bob, carol, _dan = everyone
        streams = [c.events() for c in everyone]
        for c in everyone:
            await asyncio.wait_for(c.wait_synced(), WAIT_S)
        await alice.add_contact(accounts["bob"].phone, "Bob")
        await alice.add_contact(accounts["carol"].phone, "Carol")
        group = await alice.create_group("Typists", ["Bob", "Carol"])
        await alice.send(group, "hello")  # the members learn the group from it
        for member, stream in ((bob, streams[1]), (carol, streams[2])):
            await received(stream, group, 1)
            await until(lambda m=member: group.group_id in {g.group_id for g in m.groups()})

        await alice.typing(group, True)
        for stream in streams[1:3]:
            on = await expect(stream, Typing)
            assert on.group is not None
            assert (on.group.group_id, on.contact.user_id, on.typing) == (
                group.group_id,
                accounts["alice"].user_id,
                True,
            )
        await alice.typing(group, False)
        off = await expect(streams[1], Typing)
        assert (off.group is not None, off.typing) == (True, False)
        await bob.typing(bob.group(group.group_id), True)
        seen_by_alice = await expect(streams[0], Typing)
        assert seen_by_alice.group is not None
        assert seen_by_alice.contact.user_id == accounts["bob"].user_id

        # Dan is in no group with them: nothing reached him (his stream ends empty of it)
        assert not any(isinstance(e, Typing) for e in streams[3].drain())
        assert not any(isinstance(e, Typing) for e in streams[0].drain())
