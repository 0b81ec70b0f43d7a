"""The profile store: secrets sealed at rest, transactions, ticks, outbox, dedupe."""

from __future__ import annotations

import logging
from pathlib import Path

import nacl.pwhash
import pytest

from parley.crypto import IdentityKeyPair, OneTimePreKey, SignedPreKey
from parley.errors import PassphraseRequired, StoreLocked, WrongPassphrase
from parley.models import Account, Direction, MessageState
from parley.protocol import OutboxEntry
from parley.store import DB_FILE, Store, Tokens
from parley.store.vault import Protection

CHEAP_KDF = (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)
ME = "a" * 32
BOB = "b" * 32
DEV = "1" * 16
DEV2 = "2" * 16


class FakeKeyring:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service_name: str, username: str) -> str | None:
        return self.secrets.get((service_name, username))

    def set_password(self, service_name: str, username: str, password: str) -> None:
        self.secrets[(service_name, username)] = password


def plain(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "p", keyring=None, allow_plaintext=True)


def with_account(store: Store) -> IdentityKeyPair:
    identity = IdentityKeyPair.generate()
    store.accounts.save(Account(ME, DEV, "+15550000001"), identity)
    return identity


def test_a_new_profile_without_keyring_or_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PassphraseRequired):
        Store.open(tmp_path / "p", keyring=None)


def test_a_passphrase_profile_keeps_no_secret_in_the_clear(tmp_path: Path) -> None:
    store = Store.open(
        tmp_path / "p", passphrase="correct horse", keyring=None, kdf_limits=CHEAP_KDF
    )
    assert store.protection is Protection.PASSPHRASE
    identity = with_account(store)
    store.accounts.save_tokens(Tokens("access-token-xyz", "refresh-token-xyz", 1.0))
    spk = SignedPreKey.generate(identity, 1, 0.0)
    store.prekeys.add_signed(spk)
    (otk,) = OneTimePreKey.generate_batch(1, 1)
    store.prekeys.add_one_time([otk], 0.0)
    store.messages.add(
        peer=BOB,
        direction=Direction.OUT,
        sender=ME,
        client_id="c1",
        text="a very secret sentence",
        ts=1,
        state=MessageState.PENDING,
    )
    store.close()

    raw = b"".join(p.read_bytes() for p in (tmp_path / "p").iterdir())
    for secret in (
        identity.to_bytes(),
        spk.private_key,
        otk.private_key,
        b"refresh-token-xyz",
        b"a very secret sentence",
    ):
        assert secret not in raw

    reopened = Store.open(tmp_path / "p", passphrase="correct horse", keyring=None)
    assert reopened.accounts.identity().public_key == identity.public_key
    assert reopened.accounts.tokens() == Tokens("access-token-xyz", "refresh-token-xyz", 1.0)
    assert reopened.messages.history(BOB)[0].text == "a very secret sentence"


def test_a_wrong_or_missing_passphrase_does_not_open_the_profile(tmp_path: Path) -> None:
    Store.open(tmp_path / "p", passphrase="right", keyring=None, kdf_limits=CHEAP_KDF).close()
    with pytest.raises(WrongPassphrase):
        Store.open(tmp_path / "p", passphrase="wrong", keyring=None)
    with pytest.raises(PassphraseRequired):
        Store.open(tmp_path / "p", keyring=None)


def test_the_keyring_holds_the_key_when_one_is_usable(tmp_path: Path) -> None:
    ring = FakeKeyring()
    store = Store.open(tmp_path / "p", keyring=ring)
    assert store.protection is Protection.KEYRING
    identity = with_account(store)
    store.close()
    assert len(ring.secrets) == 1

    assert (
        Store.open(tmp_path / "p", keyring=ring).accounts.identity().to_bytes()
        == identity.to_bytes()
    )
    with pytest.raises(StoreLocked):
        Store.open(tmp_path / "p", keyring=None)
    with pytest.raises(StoreLocked):
        Store.open(tmp_path / "p", keyring=FakeKeyring())


def test_plaintext_dev_mode_is_explicit_and_labelled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="parley.store"):
        store = plain(tmp_path)
    assert store.protection is Protection.PLAINTEXT_DEV
    assert "WITHOUT encryption" in caplog.text
    store.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="parley.store"):
        Store.open(tmp_path / "p", keyring=None)  # reopening needs no flag: the mode is recorded
    assert "NOT encrypted" in caplog.text


def test_the_database_file_is_private_to_its_owner(tmp_path: Path) -> None:
    plain(tmp_path).close()
    assert (tmp_path / "p" / DB_FILE).stat().st_mode & 0o077 == 0


def test_a_failed_transaction_leaves_the_one_time_prekey_in_place(tmp_path: Path) -> None:
    store = plain(tmp_path)
    with_account(store)
    store.prekeys.add_one_time(OneTimePreKey.generate_batch(7, 2), 0.0)

    def consume_then_fail() -> None:
        with store.transaction():
            assert store.prekeys.take_one_time_prekey(7) is not None
            raise RuntimeError("decryption failed")

    with pytest.raises(RuntimeError):
        consume_then_fail()
    assert store.prekeys.one_time_count() == 2

    with store.transaction():
        taken = store.prekeys.take_one_time_prekey(7)
    assert taken is not None
    assert taken.key_id == 7
    assert store.prekeys.take_one_time_prekey(7) is None
    assert store.prekeys.one_time_count() == 1


def test_a_new_signed_prekey_retires_the_old_one_which_stays_for_grace(tmp_path: Path) -> None:
    store = plain(tmp_path)
    identity = with_account(store)
    store.prekeys.add_signed(SignedPreKey.generate(identity, 1, 100.0))
    store.prekeys.add_signed(SignedPreKey.generate(identity, 2, 200.0))
    current = store.prekeys.current_signed()
    assert current is not None
    assert current.key_id == 2
    assert store.prekeys.signed_prekey(1) is not None

    assert store.prekeys.drop_retired_before(150.0) == 0
    assert store.prekeys.drop_retired_before(250.0) == 1
    assert store.prekeys.signed_prekey(1) is None
    assert store.prekeys.signed_prekey(2) is not None


def test_prekey_ids_are_allocated_without_overlap(tmp_path: Path) -> None:
    store = plain(tmp_path)
    with_account(store)
    assert store.prekeys.allocate_ids(100) == 1
    assert store.prekeys.allocate_ids(10) == 101
    assert store.prekeys.allocate_signed_id() == 1
    assert store.prekeys.allocate_signed_id() == 2


def test_identity_changes_are_flagged_on_the_contact(tmp_path: Path) -> None:
    store = plain(tmp_path)
    store.contacts.add(BOB, "Bob", "+15550000002")
    key1, key2 = b"\x01" * 32, b"\x02" * 32

    assert store.contacts.record_identity(BOB, DEV, key1) is False  # first key: trust on first use
    assert store.contacts.record_identity(BOB, DEV, key1) is False
    store.contacts.set_verified(BOB, True)
    assert store.contacts.record_identity(BOB, DEV, key2) is True
    bob = store.contacts.get(BOB)
    assert bob is not None
    assert bob.identity_changed
    assert not bob.verified

    store.contacts.set_verified(BOB, True)
    # a reinstall shows up as a new device with a new key: also a change
    assert store.contacts.record_identity(BOB, DEV2, b"\x03" * 32) is True
    # a second device that shares a known key is not
    store.contacts.set_verified(BOB, True)
    assert store.contacts.record_identity(BOB, "3" * 16, key2) is False


def test_contacts_are_found_by_name_phone_or_id(tmp_path: Path) -> None:
    store = plain(tmp_path)
    store.contacts.add(BOB, "Bob", "+15550000002")
    for key in ("bob", "Bob", "+15550000002", BOB):
        found = store.contacts.find(key)
        assert found is not None
        assert found.user_id == BOB
    assert store.contacts.find("carol") is None
    # re-adding keeps what is not given
    assert store.contacts.add(BOB, None, None).name == "Bob"


def test_a_message_is_stored_once_per_sender_and_client_id(tmp_path: Path) -> None:
    store = plain(tmp_path)
    args = {
        "peer": BOB,
        "direction": Direction.IN,
        "sender": BOB,
        "client_id": "c1",
        "text": "hi",
        "ts": 5,
        "state": MessageState.RECEIVED,
    }
    assert store.messages.add(**args) is not None  # type: ignore[arg-type]
    assert store.messages.add(**args) is None  # type: ignore[arg-type]
    assert [m.text for m in store.messages.history(BOB)] == ["hi"]


def test_ticks_only_move_forward(tmp_path: Path) -> None:
    store = plain(tmp_path)
    for cid in ("c1", "c2"):
        store.messages.add(
            peer=BOB,
            direction=Direction.OUT,
            sender=ME,
            client_id=cid,
            text=cid,
            ts=1,
            state=MessageState.SENT,
        )
    moved = store.messages.advance(ME, BOB, ["c1", "c2"], MessageState.READ)
    assert [m.client_id for m in moved] == ["c1", "c2"]
    assert store.messages.advance(ME, BOB, ["c1"], MessageState.DELIVERED) == []  # late delivered
    assert [m.state for m in store.messages.history(BOB)] == [MessageState.READ, MessageState.READ]
    # a receipt naming someone else's conversation changes nothing
    assert store.messages.advance(ME, "c" * 32, ["c1"], MessageState.DELIVERED) == []


def test_the_outbox_survives_a_restart_in_fifo_order(tmp_path: Path) -> None:
    store = plain(tmp_path)
    for i in range(3):
        store.outbox.add(OutboxEntry(f"c{i}", BOB, {DEV: f"p{i}"}), f"text {i}".encode(), i)
    store.outbox.update("c1", {DEV2: "new"})
    store.outbox.remove("c0")
    store.close()

    items = Store.open(tmp_path / "p", keyring=None).outbox.items()
    assert [i.entry for i in items] == [
        OutboxEntry("c1", BOB, {DEV2: "new"}),
        OutboxEntry("c2", BOB, {DEV: "p2"}),
    ]
    assert items[0].plaintext == b"text 1"


def test_seen_pairs_are_remembered_and_pruned_after_retention(tmp_path: Path) -> None:
    store = plain(tmp_path)
    store.seen.add(BOB, "c1", now=0.0)
    store.seen.add(BOB, "c2", now=10**10)
    assert store.seen.contains(BOB, "c1")
    assert not store.seen.contains(ME, "c1")
    store.close()
    reopened = Store.open(tmp_path / "p", keyring=None)
    assert not reopened.seen.contains(BOB, "c1")  # older than the mailbox could hold it
    assert reopened.seen.contains(BOB, "c2")
