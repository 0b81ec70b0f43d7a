"""Device lists where they are used: sealing encrypts only for listed devices,
pins the account identity, refuses rollbacks; receiving drops what comes from
devices no verified list vouches for."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from parley.answers import KeyBundles
from parley.conversations import payload
from parley.crypto import IdentityKeyPair
from parley.devices.lists import ListedDevice, sign_list
from parley.engine import Engine
from parley.errors import ContactNotFound, DeviceListError, UnlistedDevice
from parley.keys import publish_initial_keys
from parley.models import (
    Account,
    Contact,
    DevicesChanged,
    IdentityChanged,
    MessageReceived,
    MessageSent,
)
from parley.protocol import IncomingMessage, OutboxEntry
from parley.store import Store
from tests.unit.client.fakes import KeyServer

ALICE, BOB = "a" * 32, "b" * 32
ALICE_DEV, ALICE_DEV2, BOB_DEV, BOB_DEV2 = "a1" * 8, "a2" * 8, "b1" * 8, "b2" * 8


async def make_engine(
    tmp: Path, server: KeyServer, uid: str, did: str, *, primary: bool = False
) -> Engine:
    store = Store.open(tmp / f"{uid[:4]}-{did}", keyring=None, allow_plaintext=True)
    identity = IdentityKeyPair.generate()
    role, index = ("primary", 0) if primary else (None, None)
    store.accounts.save(Account(uid, did, "+1555000" + uid[:4], role, index), identity)
    if primary:
        store.accounts.set_role("primary", 0, identity.public_key)
        server.enroll(uid, did, identity)
    await publish_initial_keys(server.uploader(uid, did), store, 1000.0)
    return Engine(store, server.fetch, clock=lambda: 2000.0)


async def alice_and_bob(tmp: Path, server: KeyServer) -> Engine:
    """Alice's engine; Bob has his primary (BOB_DEV)."""
    alice = await make_engine(tmp, server, ALICE, ALICE_DEV)
    await make_engine(tmp, server, BOB, BOB_DEV, primary=True)
    return alice


async def alice_and_bob_with_a_companion(tmp: Path, server: KeyServer) -> Engine:
    """Alice's engine; Bob has his primary (BOB_DEV) and a companion (BOB_DEV2)."""
    alice = await alice_and_bob(tmp, server)
    await make_engine(tmp, server, BOB, BOB_DEV2)
    return alice


def envelope(entry: OutboxEntry, sender: str, sender_device: str, device: str) -> IncomingMessage:
    assert entry.payloads is not None
    return IncomingMessage(
        f"m#{entry.client_id}", entry.client_id, sender, sender_device, entry.payloads[device], 1
    )


@pytest.fixture
def server() -> KeyServer:
    return KeyServer()


BOB_CONTACT = Contact(BOB, "Bob", None)
ALICE_CONTACT = Contact(ALICE, "Alice", None)


async def test_a_device_the_service_offers_off_the_list_gets_nothing_and_is_logged(
    tmp_path: Path, server: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await alice_and_bob_with_a_companion(tmp_path, server)
    server.unlisted.add((BOB, BOB_DEV2))  # inserted behind the primary's back

    with caplog.at_level(logging.WARNING, logger="parley.devices"):
        _, entry, events = await alice.prepare(BOB_CONTACT, "hi")

    assert set(entry.payloads or {}) == {BOB_DEV}
    assert events == []
    assert f"device {BOB_DEV2} of {BOB} is not on their signed device list" in caplog.text
    assert [r.levelname for r in caplog.records if r.name == "parley.devices"] == ["WARNING"]

    # the service insists on it: the send fails as unlisted_device
    with pytest.raises(UnlistedDevice) as refused:
        await alice.repair(entry, missing=(BOB_DEV2,), extra=())
    assert refused.value.device_ids == (BOB_DEV2,)
    failed = alice.failed(entry, "unlisted_device", str(refused.value))
    assert failed is not None
    assert failed.code == "unlisted_device"


async def test_a_bundle_whose_identity_differs_from_the_listed_one_is_skipped(
    tmp_path: Path, server: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await alice_and_bob_with_a_companion(tmp_path, server)
    alice_fetch = server.fetch

    async def swapped(uid: str) -> KeyBundles:
        answer = await alice_fetch(uid)
        # the service hands out the companion's prekeys under another identity key
        forged = server.devices[BOB][BOB_DEV].identity_key
        devices = [
            d
            if d.device_id != BOB_DEV2
            else type(d)(
                d.device_id,
                d.bundle.__class__(
                    identity_key=forged,
                    signed_prekey_id=d.bundle.signed_prekey_id,
                    signed_prekey=d.bundle.signed_prekey,
                    signed_prekey_signature=d.bundle.signed_prekey_signature,
                ),
            )
            for d in answer.devices
        ]
        return KeyBundles(devices, answer.device_list)

    alice.sealer._fetch = swapped
    with caplog.at_level(logging.WARNING, logger="parley.devices"):
        _, entry, _ = await alice.prepare(BOB_CONTACT, "hi")
    assert set(entry.payloads or {}) == {BOB_DEV}
    assert "another identity key than their signed device list names" in caplog.text


async def test_a_rollback_to_an_older_list_is_refused(
    tmp_path: Path, server: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await alice_and_bob(tmp_path, server)
    old = server.device_list(BOB)
    assert old is not None
    await make_engine(tmp_path, server, BOB, BOB_DEV2)
    _, entry, _ = await alice.prepare(BOB_CONTACT, "v2")
    assert set(entry.payloads or {}) == {BOB_DEV, BOB_DEV2}
    stored = alice.store.device_lists.get(BOB)
    assert stored is not None
    assert stored.version == 2

    # the service serves version 1 again (dropping the companion)
    server.lists[BOB] = old
    del server.devices[BOB][BOB_DEV2]
    server.unlisted.add((BOB, BOB_DEV2))
    server.device_list = lambda uid: old if uid == BOB else None  # type: ignore[method-assign]
    alice.store.sessions.delete(BOB, BOB_DEV)
    alice.store.sessions.delete(BOB, BOB_DEV2)
    with (
        caplog.at_level(logging.WARNING, logger="parley.devices"),
        pytest.raises(DeviceListError, match="rollback"),
    ):
        await alice.prepare(BOB_CONTACT, "v1?")
    assert "refused the device list" in caplog.text
    kept = alice.store.device_lists.get(BOB)
    assert kept is not None
    assert kept.version == 2


async def test_a_listed_device_the_service_says_is_gone_makes_the_older_list_a_rollback(
    tmp_path: Path, server: KeyServer
) -> None:
    alice = await alice_and_bob_with_a_companion(tmp_path, server)
    _, entry, _ = await alice.prepare(BOB_CONTACT, "to both")
    assert set(entry.payloads or {}) == {BOB_DEV, BOB_DEV2}
    older = server.lists[BOB]
    companion = server.devices[BOB].pop(BOB_DEV2)  # Bob unlinks it: a newer list

    payloads, events = await alice.repair(entry, missing=(), extra=(BOB_DEV2,))
    assert set(payloads or {}) == {BOB_DEV}
    assert [(type(e), getattr(e, "removed", None)) for e in events] == [
        (DevicesChanged, (BOB_DEV2,))
    ]
    newer = alice.store.device_lists.get(BOB)
    assert newer is not None
    assert newer.version == older.version + 1

    # the service serves the older list again, with the companion's keys back
    server.devices[BOB][BOB_DEV2] = companion
    server.device_list = lambda uid: older if uid == BOB else None  # type: ignore[method-assign]
    with pytest.raises(DeviceListError, match="rollback"):
        await alice.sealer.start_sessions(BOB_CONTACT, {BOB_DEV2})


async def test_a_list_with_a_bad_signature_means_no_send(tmp_path: Path, server: KeyServer) -> None:
    alice = await alice_and_bob(tmp_path, server)
    fetch = server.fetch

    async def tampered(uid: str) -> KeyBundles:
        answer = await fetch(uid)
        assert answer.device_list is not None
        wire = dict(answer.device_list)
        wire["signature"] = wire["signature"][::-1]
        return KeyBundles(answer.devices, wire)

    alice.sealer._fetch = tampered
    with pytest.raises(DeviceListError, match="signature"):
        await alice.prepare(BOB_CONTACT, "hi")
    assert alice.store.device_lists.get(BOB) is None
    assert alice.store.outbox.items() == []


async def test_no_list_means_no_device_to_send_to(tmp_path: Path, server: KeyServer) -> None:
    alice = await make_engine(tmp_path, server, ALICE, ALICE_DEV)
    await make_engine(tmp_path, server, BOB, BOB_DEV)
    fetch = server.fetch

    async def unlisted(uid: str) -> KeyBundles:
        return KeyBundles((await fetch(uid)).devices, None)

    alice.sealer._fetch = unlisted
    with pytest.raises(ContactNotFound, match="no signed device list"):
        await alice.prepare(BOB_CONTACT, "hi")


async def test_a_linked_companion_is_a_device_change_not_an_identity_change(
    tmp_path: Path, server: KeyServer
) -> None:
    alice = await alice_and_bob(tmp_path, server)
    _, entry, _ = await alice.prepare(BOB_CONTACT, "first")
    await make_engine(tmp_path, server, BOB, BOB_DEV2)
    _, events = await alice.repair(entry, missing=(BOB_DEV2,), extra=())
    assert [type(e) for e in events] == [DevicesChanged]
    assert isinstance(events[0], DevicesChanged)
    assert (events[0].added, events[0].removed) == ((BOB_DEV2,), ())
    bob = alice.store.contacts.get(BOB)
    assert bob is not None
    assert not bob.identity_changed


async def test_a_new_account_identity_is_pinned_again_with_a_warning(
    tmp_path: Path, server: KeyServer
) -> None:
    alice = await alice_and_bob(tmp_path, server)
    _, entry, _ = await alice.prepare(BOB_CONTACT, "first")
    # Bob's number is registered on a new phone: a new primary, lists from version 1
    del server.devices[BOB][BOB_DEV]
    del server.lists[BOB]
    await make_engine(tmp_path, server, BOB, BOB_DEV2, primary=True)
    _, events = await alice.repair(entry, missing=(BOB_DEV2,), extra=(BOB_DEV,))
    assert [type(e) for e in events] == [IdentityChanged]
    assert isinstance(events[0], IdentityChanged)
    assert events[0].device_id is None
    flagged = alice.store.contacts.get(BOB)
    assert flagged is not None
    assert flagged.identity_changed
    stored = alice.store.device_lists.get(BOB)
    assert stored is not None
    assert stored.version == 1
    assert stored.account_identity == server.signers[BOB].public_key


async def test_a_contact_device_off_their_verified_list_is_dropped_on_receipt(
    tmp_path: Path, server: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await make_engine(tmp_path, server, ALICE, ALICE_DEV)
    bob = await make_engine(tmp_path, server, BOB, BOB_DEV, primary=True)
    rogue = await make_engine(tmp_path, server, BOB, BOB_DEV2)
    server.unlisted.add((BOB, BOB_DEV2))
    await alice.prepare(BOB_CONTACT, "hi")  # Alice has verified Bob's list
    _, hello, _ = await bob.prepare(ALICE_CONTACT, "from the listed phone")
    _, forged, _ = await rogue.prepare(ALICE_CONTACT, "from an unlisted device")

    got = alice.receive(envelope(hello, BOB, BOB_DEV, ALICE_DEV))
    assert [type(e) for e in got.events] == [MessageReceived]
    with caplog.at_level(logging.WARNING, logger="parley.devices"):
        dropped = alice.receive(envelope(forged, BOB, BOB_DEV2, ALICE_DEV))
    assert not dropped.stored
    assert f"device {BOB_DEV2} is not on the signed device list of {BOB}" in caplog.text
    assert [m.text for m in alice.store.messages.history(BOB)] == ["hi", "from the listed phone"]
    assert alice.store.sessions.get(BOB, BOB_DEV2) is None  # nothing of it was kept


async def test_own_copies_come_only_from_devices_on_our_own_list(
    tmp_path: Path, server: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    phone = await make_engine(tmp_path, server, ALICE, ALICE_DEV, primary=True)
    laptop = await make_engine(tmp_path, server, ALICE, ALICE_DEV2)
    await make_engine(tmp_path, server, BOB, BOB_DEV, primary=True)
    phone.set_own_devices([ALICE_DEV2])
    message, _, _ = await phone.prepare(BOB_CONTACT, "hello Bob")
    copy, _ = await phone.own_copy(message)
    assert copy is not None

    # the laptop has not verified its account's list: a copy is not accepted yet
    with caplog.at_level(logging.WARNING, logger="parley.devices"):
        early = laptop.receive(envelope(copy, ALICE, ALICE_DEV, ALICE_DEV2))
    assert not early.stored
    assert "device list is not known yet" in caplog.text
    # as Inbound does: learn the list first, then the copy is the phone's
    events = await laptop.sealer.learn_device(ALICE, ALICE_DEV)
    assert events == []
    shown = laptop.receive(envelope(copy, ALICE, ALICE_DEV, ALICE_DEV2))
    assert [type(e) for e in shown.events] == [MessageSent]


async def test_a_sender_key_from_an_unlisted_own_device_is_dropped(
    tmp_path: Path, server: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    laptop = await make_engine(tmp_path, server, ALICE, ALICE_DEV2)
    await make_engine(tmp_path, server, ALICE, ALICE_DEV, primary=True)
    await laptop.sealer.refresh_list(laptop.sealer.me())
    key = payload.SenderKeyPayload("d" * 32, 1, b"not even a key")
    with caplog.at_level(logging.WARNING, logger="parley.groups"):
        outcome = laptop.sender_keys.accept_sender_key(ALICE, "a9" * 8, key)
    assert outcome.events == []
    assert "not on this account's device list" in caplog.text
    assert laptop.store.sender_keys.record("d" * 32, ALICE, "a9" * 8) is None


async def test_a_primary_refuses_its_own_account_list_signed_by_another_identity(
    tmp_path: Path, server: KeyServer
) -> None:
    phone = await make_engine(tmp_path, server, ALICE, ALICE_DEV, primary=True)
    impostor = IdentityKeyPair.generate()
    forged = sign_list(impostor, ALICE, 9, [ListedDevice(ALICE_DEV2, 0, impostor.public_key)], 5)
    with pytest.raises(DeviceListError, match="another account identity"):
        phone.sealer.check_list(phone.sealer.me(), dict(forged.wire()))
    assert phone.store.device_lists.get(ALICE) is None
