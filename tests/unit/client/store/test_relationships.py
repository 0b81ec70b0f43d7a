"""Message requests in the store (parley.relationships): who is accepted, what the
service must still be told, what another device of the account decided, and a
profile from before message requests keeping its conversations as they were."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from parley import relationships
from parley.models import Account, Direction, Group, MessageState
from parley.protocol import IncomingMessage
from parley.store import DB_FILE, Store

ME, DEV = "a" * 32, "1" * 16
BOB, CAROL, DAVE = "b" * 32, "c" * 32, "d" * 32


def plain(path: Path) -> Store:
    return Store.open(path, keyring=None, allow_plaintext=True)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = plain(tmp_path / "p")
    from parley.crypto import IdentityKeyPair

    opened.accounts.save(Account(ME, DEV, "+15550000001"), IdentityKeyPair.generate())
    return opened


def _incoming(store: Store, sender: str, client_id: str) -> None:
    store.contacts.add(sender, None, None)
    store.messages.add(
        peer=sender,
        direction=Direction.IN,
        sender=sender,
        client_id=client_id,
        text="hello",
        ts=1,
        state=MessageState.RECEIVED,
    )


def message(sender: str, group: str | None = None) -> IncomingMessage:
    return IncomingMessage(
        server_id="s1",
        client_id="m1",
        sender=sender,
        sender_device=DEV,
        body=b"",
        ts=1,
        group=group,
    )


def test_a_stranger_who_writes_is_a_request_until_accepted(store: Store) -> None:
    _incoming(store, BOB, "m1")
    assert [c.user_id for c in relationships.requests(store)] == [BOB]
    assert not relationships.knows(store, BOB)
    assert not relationships.ticks(store, message(BOB))

    assert relationships.accept(store, BOB)
    assert not relationships.accept(store, BOB)  # nothing new
    assert relationships.requests(store) == []
    assert relationships.knows(store, BOB)
    assert relationships.ticks(store, message(BOB))
    assert store.contacts.untold() == [(BOB, True)]


def test_a_shared_group_is_a_relationship_and_a_group_message_always_ticks(
    store: Store,
) -> None:
    _incoming(store, CAROL, "m1")
    assert relationships.ticks(store, message(DAVE, group="g" * 32))
    store.groups.save(Group("g" * 32, "Climbing", 1, (ME, CAROL), (ME,)), now=1.0)
    assert relationships.knows(store, CAROL)
    assert not relationships.knows(store, DAVE)
    # a group this account has left is no relationship any more
    store.groups.save(Group("h" * 32, "Old", 1, (ME, DAVE), (ME,), active=False), now=1.0)
    assert not relationships.knows(store, DAVE)
    # nor is a group where no admin's signed change let them in
    unsigned = Group("i" * 32, "Ghost", 1, (ME, CAROL, DAVE), (ME,), unverified=(DAVE,))
    store.groups.save(unsigned, now=1.0)
    assert not relationships.knows(store, DAVE)
    assert relationships.requests(store) == []
    assert store.contacts.untold() == []  # a group member is not a saved contact


def test_accepting_oneself_does_nothing(store: Store) -> None:
    assert not relationships.accept(store, ME)
    assert store.contacts.untold() == []


class FakeService:
    def __init__(self, saved: set[str]) -> None:
        self.saved = saved
        self.calls: list[tuple[str, str]] = []

    async def save_contact(self, user_id: str) -> None:
        self.calls.append(("PUT", user_id))
        self.saved.add(user_id)

    async def remove_contact(self, user_id: str) -> None:
        self.calls.append(("DELETE", user_id))
        self.saved.discard(user_id)

    async def saved_contacts(self) -> list[str]:
        return sorted(self.saved)


async def test_sync_tells_what_changed_here_then_takes_over_the_other_devices(
    store: Store,
) -> None:
    relationships.accept(store, BOB)
    relationships.accept(store, CAROL)
    service = FakeService({CAROL})
    await relationships.sync(service, store)
    assert service.calls == [("PUT", BOB), ("PUT", CAROL)]
    assert store.contacts.untold() == []

    # another device of the account accepted Dave and removed Carol
    service.saved = {BOB, DAVE}
    service.calls.clear()
    await relationships.sync(service, store)
    assert service.calls == []
    assert {c.user_id for c in store.contacts.all() if c.accepted} == {BOB, DAVE}

    # removed here while offline: told, and not undone by the service's older list
    relationships.remove(store, BOB)
    await relationships.sync(service, store)
    assert service.calls == [("DELETE", BOB)]
    assert not store.contacts.is_accepted(BOB)


def test_a_profile_from_before_message_requests_keeps_its_contacts_accepted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old"
    old = plain(path)
    old.contacts.add(BOB, "Bob", "+15550000002")
    old.close()
    # as the previous version left it: no acceptance columns
    with sqlite3.connect(path / DB_FILE) as conn:
        conn.execute("ALTER TABLE contacts DROP COLUMN accepted")
        conn.execute("ALTER TABLE contacts DROP COLUMN told")
    conn.close()

    reopened = plain(path)
    contact = reopened.contacts.get(BOB)
    assert contact is not None
    assert contact.accepted
    assert reopened.contacts.untold() == [(BOB, True)]  # the service hears of it
    reopened.contacts.add(CAROL, None, None)  # a new stranger is not
    assert not reopened.contacts.is_accepted(CAROL)
