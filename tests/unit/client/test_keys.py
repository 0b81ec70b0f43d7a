"""Prekey upkeep: replenishing one-time prekeys, rotating the signed prekey."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.crypto import IdentityKeyPair
from parley.keys import GRACE_S, REPLENISH_BELOW, ROTATE_AFTER_S, TARGET, maintain
from parley.keys import publish_initial_keys as publish
from parley.models import Account
from parley.store import Store
from tests.unit.client.fakes import KeyServer, KeyUploader

DAY = 24 * 3600.0


def key_server() -> KeyUploader:
    return KeyServer().uploader("a" * 32, "1" * 16)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "p", keyring=None, allow_plaintext=True)
    store.accounts.save(Account("a" * 32, "1" * 16, "+15550000001"), IdentityKeyPair.generate())
    return store


async def test_signup_publishes_a_signed_prekey_and_a_full_batch(store: Store) -> None:
    server = key_server()
    await publish(server, store, now=0.0)
    ((identity_key, signed, batch),) = server.uploads
    assert identity_key == store.accounts.identity().public_key
    assert len(batch) == TARGET
    assert len({k.key_id for k in batch}) == TARGET
    assert store.prekeys.one_time_count() == TARGET
    assert store.prekeys.signed_prekey(signed.key_id) is not None


async def test_nothing_is_uploaded_while_enough_prekeys_remain(store: Store) -> None:
    server = key_server()
    await publish(server, store, now=0.0)
    server.count = REPLENISH_BELOW
    result = await maintain(server, store, now=DAY)
    assert (result.uploaded, result.rotated) == (0, False)
    assert len(server.uploads) == 1


async def test_a_low_count_is_topped_up_with_fresh_ids(store: Store) -> None:
    server = key_server()
    await publish(server, store, now=0.0)
    first_ids = {k.key_id for k in server.uploads[0][2]}
    server.count = 3
    result = await maintain(server, store, now=DAY)
    assert result.uploaded == TARGET - 3
    fresh = server.uploads[-1][2]
    assert len(fresh) == TARGET - 3
    assert not first_ids & {k.key_id for k in fresh}
    # the private halves are kept for the keys the server may still hand out
    assert store.prekeys.one_time_count() == TARGET + TARGET - 3


async def test_the_signed_prekey_rotates_weekly_and_old_ones_expire_after_grace(
    store: Store,
) -> None:
    server = key_server()
    await publish(server, store, now=0.0)
    server.count = TARGET
    old = store.prekeys.current_signed()
    assert old is not None

    rotated = await maintain(server, store, now=ROTATE_AFTER_S + 1)
    assert rotated.rotated
    new = store.prekeys.current_signed()
    assert new is not None
    assert new.key_id != old.key_id
    assert server.uploads[-1][1] == new
    assert server.uploads[-1][2] == []
    # a first message written against the old bundle can still be opened
    assert store.prekeys.signed_prekey(old.key_id) is not None

    later = await maintain(server, store, now=ROTATE_AFTER_S + 1 + GRACE_S + 1)
    assert later.dropped == 1
    assert store.prekeys.signed_prekey(old.key_id) is None
