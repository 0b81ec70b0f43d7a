"""What the store keeps for the sessions' limits: the base keys of accepted session
starts (so a first message is never accepted twice, across restarts), and the
skipped message keys of every session (expired, and capped in total)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from parley.crypto import IdentityKeyPair, ReplayError, Session, SignedPreKey
from parley.models import Account
from parley.store import Store
from parley.store import sessions as sessions_module
from parley.store.prekeys import SESSION_START_RETENTION_S
from parley.store.sessions import MAX_TOTAL_SKIPPED_KEYS
from tests.unit.client.fakes import PreKeyStore

ME, BOB, CAROL = "a" * 32, "b" * 32, "c" * 32
DEV, DEV2 = "1" * 16, "2" * 16
DAY = 24 * 3600.0
T0 = 1_700_000_000.0
BASE = bytes(range(32))


def open_store(directory: Path) -> Store:
    return Store.open(directory, keyring=None, allow_plaintext=True)


def with_account(store: Store) -> IdentityKeyPair:
    identity = IdentityKeyPair.generate()
    store.accounts.save(Account(ME, DEV, "+15550000001"), identity)
    return identity


# -- session starts ------------------------------------------------------------------


def test_a_session_start_is_remembered_across_a_restart(tmp_path: Path) -> None:
    now = time.time()  # opening prunes by the real clock
    store = open_store(tmp_path)
    assert store.prekeys.note_session_start(BASE, 1, now)
    assert not store.prekeys.note_session_start(BASE, 1, now + 1)
    store.close()
    store = open_store(tmp_path)
    assert not store.prekeys.note_session_start(BASE, 1, now + DAY)


def test_a_replayed_first_message_is_refused_by_the_store_after_a_restart(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path)
    identity = with_account(store)
    store.prekeys.add_signed(SignedPreKey.generate(identity, 1, T0))
    spk = store.prekeys.current_signed()
    assert spk is not None
    bundle = PreKeyStore(identity)
    bundle.signed = spk
    first = Session.initiate(IdentityKeyPair.generate(), bundle.bundle(False)).encrypt(b"hi")
    with store.transaction():
        _, text = Session.accept(identity, store.prekeys, first, now=T0)
    assert text == b"hi"
    store.close()
    store = open_store(tmp_path)
    with pytest.raises(ReplayError), store.transaction():
        Session.accept(identity, store.prekeys, first, now=T0 + 20 * DAY)


def test_a_refused_first_message_leaves_its_base_key_unspent(tmp_path: Path) -> None:
    store = open_store(tmp_path)

    def note_then_fail() -> None:
        with store.transaction():
            assert store.prekeys.note_session_start(BASE, 1, T0)
            raise RuntimeError("the rest of the message failed")

    with pytest.raises(RuntimeError):
        note_then_fail()
    assert store.prekeys.note_session_start(BASE, 1, T0)


def test_session_starts_are_kept_35_days_and_while_their_signed_prekey_is(
    tmp_path: Path,
) -> None:
    assert SESSION_START_RETENTION_S == 35 * DAY
    store = open_store(tmp_path)
    identity = with_account(store)
    store.prekeys.add_signed(SignedPreKey.generate(identity, 1, T0))
    store.prekeys.note_session_start(BASE, 1, T0)
    other = bytes(32)
    store.prekeys.note_session_start(other, 9, T0)  # a signed prekey already gone
    late = T0 + SESSION_START_RETENTION_S + 1
    store.prekeys.prune_session_starts(T0 + SESSION_START_RETENTION_S - 1)
    assert not store.prekeys.note_session_start(other, 9, T0)  # not yet
    store.prekeys.prune_session_starts(late)
    # its signed prekey still opens first messages: the base key stays
    assert not store.prekeys.note_session_start(BASE, 1, late)
    assert store.prekeys.note_session_start(other, 9, late)  # forgotten, noted anew
    # the signed prekey is replaced and its grace ends: now the base key may go
    store.prekeys.add_signed(SignedPreKey.generate(identity, 2, T0 + DAY))
    store.prekeys.drop_retired_before(late)
    store.prekeys.prune_session_starts(late)
    assert store.prekeys.note_session_start(BASE, 1, late)


def test_opening_the_store_prunes_expired_session_starts(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    long_ago = time.time() - SESSION_START_RETENTION_S - DAY
    store.prekeys.note_session_start(BASE, 7, long_ago)
    store.prekeys.note_session_start(bytes(32), 7, time.time())
    store.close()
    store = open_store(tmp_path)
    assert store.prekeys.note_session_start(BASE, 7, time.time())
    assert not store.prekeys.note_session_start(bytes(32), 7, time.time())


# -- skipped message keys ----------------------------------------------------------------


def with_skipped(count: int, now: float) -> Session:
    """Bob's side of a session holding `count` skipped keys stored at `now`."""
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    alice = Session.initiate(IdentityKeyPair.generate(), prekeys.bundle(False))
    bob, _ = Session.accept(prekeys.identity, prekeys, alice.encrypt(b"hi"), now=now)
    alice.decrypt(bob.encrypt(b"reply"), now=now)
    for _ in range(count):
        alice.encrypt(b"lost")
    bob.decrypt(alice.encrypt(b"arrived"), now=now)
    assert bob.skipped_keys == count
    return bob


def skipped(store: Store, user: str, device: str) -> int:
    session = store.sessions.get(user, device)
    assert session is not None
    return session.skipped_keys


def test_skipped_keys_are_capped_across_sessions_the_oldest_dropped_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MAX_TOTAL_SKIPPED_KEYS == 20_000
    monkeypatch.setattr(sessions_module, "MAX_TOTAL_SKIPPED_KEYS", 12)
    store = open_store(tmp_path)
    store.sessions.save(BOB, DEV, with_skipped(5, T0), T0)
    store.sessions.archive(BOB, DEV)  # archived sessions count too
    store.sessions.save(BOB, DEV2, with_skipped(5, T0 + 1), T0 + 1)
    assert store.sessions.skipped_total() == 10
    newest = with_skipped(4, T0 + 2)
    store.sessions.save(CAROL, DEV, newest, T0 + 2)
    # 14 > 12: the two oldest keys go, from the archived session
    assert store.sessions.skipped_total() == 12
    ((_, archived),) = store.sessions.old(BOB, DEV)
    assert archived.skipped_keys == 3
    assert skipped(store, BOB, DEV2) == 5
    assert skipped(store, CAROL, DEV) == 4
    assert newest.skipped_keys == 4  # the caller's copy is the one stored

    store.sessions.save(CAROL, DEV2, with_skipped(6, T0 + 3), T0 + 3)
    assert store.sessions.skipped_total() == 12
    assert store.sessions.old(BOB, DEV)[0][1].skipped_keys == 0
    assert skipped(store, BOB, DEV2) == 2
    assert skipped(store, CAROL, DEV2) == 6


def test_the_session_being_saved_loses_its_own_oldest_keys_in_memory_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions_module, "MAX_TOTAL_SKIPPED_KEYS", 3)
    store = open_store(tmp_path)
    session = with_skipped(5, T0)
    store.sessions.save(BOB, DEV, session, T0)
    assert session.skipped_keys == 3
    assert skipped(store, BOB, DEV) == 3


def test_expired_skipped_keys_are_pruned_from_stored_sessions(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.sessions.save(BOB, DEV, with_skipped(3, T0), T0)
    store.sessions.archive(BOB, DEV)
    store.sessions.save(BOB, DEV, with_skipped(2, T0 + 20 * DAY), T0 + 20 * DAY)
    store.sessions.save(BOB, DEV2, with_skipped(0, T0), T0)
    assert store.sessions.skipped_total() == 5
    store.sessions.prune_skipped(T0 + 30 * DAY)
    assert store.sessions.skipped_total() == 2
    assert store.sessions.old(BOB, DEV)[0][1].skipped_keys == 0
    assert skipped(store, BOB, DEV) == 2
    store.sessions.prune_skipped(T0 + 50 * DAY)
    assert store.sessions.skipped_total() == 0
