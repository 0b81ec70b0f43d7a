"""What a session refuses beyond the ratchet itself: a first message replayed once
its session is gone (its base key is remembered), and skipped message keys kept
too long or in too great a number. A session state saved before skipped keys
carried a time still loads."""

from __future__ import annotations

import math

import pytest

from parley.crypto import DecryptionError, IdentityKeyPair, ReplayError, Session
from parley.crypto.session import MAX_SKIP, MAX_SKIPPED_KEYS, SKIPPED_KEY_TTL_S
from tests.unit.client.fakes import PreKeyStore

T0 = 1_700_000_000.0
DAY = 24 * 3600.0


def _pair(with_one_time: bool = False) -> tuple[Session, Session, PreKeyStore]:
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    alice = Session.initiate(IdentityKeyPair.generate(), prekeys.bundle(with_one_time))
    bob, _ = Session.accept(prekeys.identity, prekeys, alice.encrypt(b"hello"), now=T0)
    alice.decrypt(bob.encrypt(b"reply"), now=T0)
    return alice, bob, prekeys


# -- a first message without a one-time prekey, replayed --------------------------


def test_a_first_message_without_one_time_prekey_is_refused_when_replayed() -> None:
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    first = Session.initiate(IdentityKeyPair.generate(), prekeys.bundle(False)).encrypt(b"hi")
    _, text = Session.accept(prekeys.identity, prekeys, first, now=T0)
    assert text == b"hi"
    # the session it started is gone (replaced, archived away): accept sees it again
    with pytest.raises(ReplayError):
        Session.accept(prekeys.identity, prekeys, first, now=T0 + DAY)


def test_a_forged_first_message_does_not_spend_the_base_key_it_copies() -> None:
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    first = Session.initiate(IdentityKeyPair.generate(), prekeys.bundle(False)).encrypt(b"hi")
    forged = first[:-1] + bytes([first[-1] ^ 1])  # same header and base key, bad tag
    with pytest.raises(DecryptionError):
        Session.accept(prekeys.identity, prekeys, forged, now=T0)
    assert prekeys.session_starts == {}
    assert Session.accept(prekeys.identity, prekeys, first, now=T0)[1] == b"hi"


def test_later_prekey_messages_of_an_accepted_session_still_decrypt() -> None:
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    alice = Session.initiate(IdentityKeyPair.generate(), prekeys.bundle(False))
    first, second = alice.encrypt(b"one"), alice.encrypt(b"two")
    bob, _ = Session.accept(prekeys.identity, prekeys, first, now=T0)
    assert bob.started_by(second)
    assert bob.decrypt(second, now=T0) == b"two"


# -- skipped message keys: age ------------------------------------------------------


def test_skipped_keys_expire_thirty_days_after_they_were_stored() -> None:
    alice, bob, _ = _pair()
    early = [alice.encrypt(b"early %d" % i) for i in range(3)]
    assert bob.decrypt(alice.encrypt(b"later"), now=T0) == b"later"
    assert bob.skipped_keys == 3
    assert SKIPPED_KEY_TTL_S == 30 * DAY
    assert bob.decrypt(early[0], now=T0 + SKIPPED_KEY_TTL_S - 1) == b"early 0"
    before = bob.to_bytes()
    with pytest.raises(ReplayError):
        bob.decrypt(early[1], now=T0 + SKIPPED_KEY_TTL_S)
    assert bob.to_bytes() == before  # refused: nothing changed
    # the next message that decrypts drops the expired keys from the state
    assert bob.decrypt(alice.encrypt(b"new"), now=T0 + SKIPPED_KEY_TTL_S) == b"new"
    assert bob.skipped_keys == 0
    with pytest.raises(ReplayError):
        bob.decrypt(early[2], now=T0)


def test_expire_skipped_drops_only_the_old_ones() -> None:
    alice, bob, _ = _pair()
    first_gap = [alice.encrypt(b"a%d" % i) for i in range(2)]
    bob.decrypt(alice.encrypt(b"x"), now=T0)
    second_gap = [alice.encrypt(b"b%d" % i) for i in range(2)]
    bob.decrypt(alice.encrypt(b"y"), now=T0 + 10 * DAY)
    assert bob.skipped_keys == 4
    assert bob.oldest_skipped_at == T0
    assert bob.expire_skipped(T0 + SKIPPED_KEY_TTL_S)
    assert bob.skipped_keys == 2
    assert bob.oldest_skipped_at == T0 + 10 * DAY
    assert not bob.expire_skipped(T0 + SKIPPED_KEY_TTL_S)  # nothing more to drop
    for message in first_gap:
        with pytest.raises(ReplayError):
            bob.decrypt(message, now=T0 + SKIPPED_KEY_TTL_S)
    assert bob.decrypt(second_gap[1], now=T0 + SKIPPED_KEY_TTL_S) == b"b1"


# -- skipped message keys: number ---------------------------------------------------


def test_skipped_keys_are_capped_per_session_the_oldest_dropped_first() -> None:
    assert MAX_SKIPPED_KEYS == 2000
    alice, bob, _ = _pair()
    messages = [alice.encrypt(b"%d" % i) for i in range(MAX_SKIPPED_KEYS + 4)]
    # skip forward in steps (one message may skip at most MAX_SKIP keys)
    for step, index in enumerate(range(MAX_SKIP, len(messages), MAX_SKIP)):
        bob.decrypt(messages[index], now=T0 + step)
    bob.decrypt(messages[-1], now=T0 + 10)
    assert bob.skipped_keys == MAX_SKIPPED_KEYS
    with pytest.raises(ReplayError):
        bob.decrypt(messages[0], now=T0 + 11)  # among the oldest: dropped
    assert bob.decrypt(messages[-2], now=T0 + 11) == b"%d" % (MAX_SKIPPED_KEYS + 2)


def test_drop_oldest_skipped() -> None:
    alice, bob, _ = _pair()
    messages = [alice.encrypt(b"%d" % i) for i in range(5)]
    bob.decrypt(messages[-1], now=T0)
    assert bob.skipped_times() == [T0] * 4
    bob.drop_oldest_skipped(3)
    assert bob.skipped_keys == 1
    assert bob.decrypt(messages[3], now=T0) == b"3"
    with pytest.raises(ReplayError):
        bob.decrypt(messages[2], now=T0)


# -- saved states ----------------------------------------------------------------------


def test_skipped_key_times_survive_saving_and_restoring() -> None:
    alice, bob, _ = _pair()
    pending = [alice.encrypt(b"%d" % i) for i in range(3)]
    bob.decrypt(alice.encrypt(b"later"), now=T0 + 5)
    restored = Session.from_bytes(bob.to_bytes())
    assert restored.to_bytes() == bob.to_bytes()
    assert restored.skipped_times() == [T0 + 5] * 3
    with pytest.raises(ReplayError):
        restored.decrypt(pending[0], now=T0 + 5 + SKIPPED_KEY_TTL_S)


# A responder's state as the previous version (1) saved it: four messages from the
# initiator's second chain were sent, the last decrypted, so three keys wait, with
# no time of their own. PENDING_* are those three messages.
STATE_V1 = (
    "010e25ad522ff3277ffddf7a435dcbdb338ff961b46e6347099d5152733a746c512c66b81e482072d2552369"
    "9c420c2442fcc1c7bb190a0b9f915d1e6893151a0a79629dac5d027d3057e86dc053880d248f0e94a2066e29"
    "65671c5de7f060f6094beec4251a80013759fe91e681ae52dea2b64e4f28cbdbf0cad33c80c6874df2fe4125"
    "4b48cc1dffed4e402ba9f989e613e0fbb5f40acd46ec856d0fcd2e0ede87b965752ea4d5e058992003544055"
    "abeffbb1166488eb8aebfc62c67304c7f579000000000000000400000001dd23ef71d17e9f6e10ddc6651f3f"
    "374dcb9972180416f62990290e558cd957360ee68cee459de845f61ba1e16ad0a8d6a68933cc4293735c50b0"
    "3ea8463437324429ff3e364989535b46a6b03a6cc34d1309cfe89e3b536e2d546b716baf5f7900000001c231"
    "d26eaf6f466661be470a37153fed6e7819b007bbbd08e8ae0320d2462d1700000003dd23ef71d17e9f6e10dd"
    "c6651f3f374dcb9972180416f62990290e558cd9573600000000f864658b315054e82bc17f1613ebe32a7112"
    "d7bddc1748255d3cc49ff804741fdd23ef71d17e9f6e10ddc6651f3f374dcb9972180416f62990290e558cd9"
    "573600000001b9d70b406e5f3b16724e92220a5ec9b46580791e33aea7f3d83abdffec076ba3dd23ef71d17e"
    "9f6e10ddc6651f3f374dcb9972180416f62990290e558cd957360000000224e79e5593cd1b1a19159c7523fc"
    "465384214500c33e00c9c001c50173d7992f"
)
PENDING_0 = (
    "0101dd23ef71d17e9f6e10ddc6651f3f374dcb9972180416f62990290e558cd9573600000001000000005fc3"
    "47f8dcac226cfcac54a48b38f1afe227defbd7e09c5c2d07e8f4eec1d2a3052dcedc39466fd41be7b9a8b384"
    "72fc2698c3f3479764bb0fcac63073db0140e1c4ecd8f51bd8b3ee2930c7e495afe77b3a0180aec9e6d6ee8c"
    "ab0260c232119f13db08dea2ef8c9e43c6fb5904d4d6668d5956f0e3fdbab045a335492aff91106bfea75c56"
    "0f71cb238c9d5b8ac9940d74a855d7cf7fa291a7e058800a71257efadd2c1a52f68e80baf07cdac1f4e5"
)
PENDING_1 = (
    "0101dd23ef71d17e9f6e10ddc6651f3f374dcb9972180416f62990290e558cd9573600000001000000012c7e"
    "b659c157c47da6ac697fa9af746033a00da82471a658e72e9ccab3ed71da305e25661317251c0a64c7ffce77"
    "edbe5d4527b9da1b52f3c507e22bc94384e9baec1b6e99aea58832bef7b2f014b021a13b67f5a19b4e886ef8"
    "2c7700d5d6c5bc4535fabcdf7aaa0b0ddfd0122aa560286b213623c60d81264c94d02bb9868662d4d0ae89aa"
    "99e3c0ec274d296b1018e4d96cd0fa64b62e487eed7bae34880c9267dce7db5e225ed741d555245b299d"
)
PENDING_2 = (
    "0101dd23ef71d17e9f6e10ddc6651f3f374dcb9972180416f62990290e558cd957360000000100000002fd04"
    "fccca8125b322df741b452d530aecafa3e4fc68cb9b09eed104592ad318ed849c2b58a0d98933cb60f9605ff"
    "e0fddd69126d499528b6e348a834923910b508c806ed877da56ba55e801a7551fdafb68d0e09704f5c3110c2"
    "bd17c6f9143d9bab0852a8e163a4d7130dba8c57d28e68fb2f259bce5ebc8a0af99385abbc6ddb9130bd3b0c"
    "4d1b711cac31a730a45075371a168ba23d74bc46b7e26a01982cf64fa35fde1a7f5366c81a37819f44bd"
)


def test_a_state_saved_before_skipped_keys_had_times_still_loads() -> None:
    state = bytes.fromhex("".join(STATE_V1))
    assert state[0] == 1
    bob = Session.from_bytes(state)
    assert bob.skipped_keys == 3
    assert all(math.isnan(t) for t in bob.skipped_times())  # unknown until first used
    assert bob.oldest_skipped_at is None
    # saved again (in the current version), still without a time
    again = Session.from_bytes(bob.to_bytes())
    assert again.to_bytes()[0] == 2
    assert again.skipped_keys == 3
    # the first use after loading starts their 30 days
    assert again.decrypt(bytes.fromhex("".join(PENDING_0)), now=T0) == b"pending 0"
    assert again.skipped_times() == [T0, T0]
    assert again.decrypt(bytes.fromhex("".join(PENDING_1)), now=T0 + 29 * DAY) == b"pending 1"
    with pytest.raises(ReplayError):
        again.decrypt(bytes.fromhex("".join(PENDING_2)), now=T0 + SKIPPED_KEY_TTL_S)


def test_a_state_with_unknown_times_gets_them_from_expire_skipped() -> None:
    bob = Session.from_bytes(bytes.fromhex("".join(STATE_V1)))
    assert not bob.expire_skipped(T0)  # nothing dropped, but the times are now known
    assert bob.skipped_times() == [T0] * 3
    assert bob.oldest_skipped_at == T0
