"""Double Ratchet sessions: X3DH start, round trips, long runs, out-of-order and lost
messages, tampering, replay, the skip bounds, saving and restoring."""

from __future__ import annotations

import dataclasses
import random

import pytest

from parley.crypto import (
    MAX_PLAINTEXT_LEN,
    BadSignature,
    CryptoError,
    DecryptionError,
    IdentityKeyPair,
    ReplayError,
    Session,
    SignedPreKey,
    SkipLimitExceeded,
    UnsupportedVersion,
    is_prekey_message,
)
from parley.crypto.session import MAX_SKIP, MAX_SKIPPED_KEYS
from tests.unit.client.fakes import PreKeyStore


@dataclasses.dataclass
class Pair:
    alice_identity: IdentityKeyPair
    bob_identity: IdentityKeyPair
    bob_prekeys: PreKeyStore
    alice: Session
    bob: Session


def start(with_one_time: bool = True) -> Pair:
    """Alice starts a session from Bob's bundle; Bob accepts her first message."""
    alice_identity, bob_identity = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    prekeys = PreKeyStore(bob_identity)
    alice = Session.initiate(alice_identity, prekeys.bundle(with_one_time))
    bob, first = Session.accept(bob_identity, prekeys, alice.encrypt(b"hello bob"))
    assert first == b"hello bob"
    return Pair(alice_identity, bob_identity, prekeys, alice, bob)


def talk(sender: Session, receiver: Session, text: bytes) -> None:
    assert receiver.decrypt(sender.encrypt(text)) == text


# -- starting a session ------------------------------------------------------


@pytest.mark.parametrize("with_one_time", [True, False])
def test_first_message_starts_a_session_both_sides_can_use(with_one_time: bool) -> None:
    pair = start(with_one_time)
    talk(pair.bob, pair.alice, b"hi alice")
    talk(pair.alice, pair.bob, b"how are you?")
    talk(pair.bob, pair.alice, b"fine")
    assert pair.alice.remote_identity_key == pair.bob_identity.public_key
    assert pair.bob.remote_identity_key == pair.alice_identity.public_key


def test_session_without_one_time_prekey_never_asks_for_one() -> None:
    pair = start(with_one_time=False)
    assert pair.bob_prekeys.taken == []
    assert len(pair.bob_prekeys.one_time) == 5


def test_one_time_prekey_is_used_once_and_a_replayed_first_message_refused() -> None:
    identity = IdentityKeyPair.generate()
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    bundle = prekeys.bundle()
    first = Session.initiate(identity, bundle).encrypt(b"hi")
    Session.accept(prekeys.identity, prekeys, first)
    assert bundle.one_time_prekey_id not in prekeys.one_time
    with pytest.raises(ReplayError):
        Session.accept(prekeys.identity, prekeys, first)


def test_initiator_sends_prekey_messages_until_the_first_reply() -> None:
    alice_identity = IdentityKeyPair.generate()
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    alice = Session.initiate(alice_identity, prekeys.bundle())
    early = [alice.encrypt(b"one"), alice.encrypt(b"two"), alice.encrypt(b"three")]
    assert all(is_prekey_message(m) for m in early)
    bob, _ = Session.accept(prekeys.identity, prekeys, early[0])
    # Later prekey messages of the same session go to decrypt(), in any order.
    assert bob.started_by(early[1])
    assert bob.started_by(early[2])
    assert bob.decrypt(early[2]) == b"three"
    assert bob.decrypt(early[1]) == b"two"
    reply = bob.encrypt(b"got them")
    assert not is_prekey_message(reply)
    assert is_prekey_message(alice.encrypt(b"still no reply"))
    alice.decrypt(reply)
    assert not is_prekey_message(alice.encrypt(b"now a plain message"))


def test_prekey_message_of_a_new_session_is_refused_by_the_old_one() -> None:
    pair = start()
    # Alice reinstalls: a new session from a fresh bundle.
    fresh = Session.initiate(pair.alice_identity, pair.bob_prekeys.bundle())
    message = fresh.encrypt(b"new phone")
    assert not pair.bob.started_by(message)
    before = pair.bob.to_bytes()
    with pytest.raises(DecryptionError):
        pair.bob.decrypt(message)
    assert pair.bob.to_bytes() == before
    bob2, text = Session.accept(pair.bob_identity, pair.bob_prekeys, message)
    assert text == b"new phone"
    talk(bob2, fresh, b"welcome back")


def test_started_by_is_false_for_anything_but_this_sessions_prekey_messages() -> None:
    pair = start()
    own_prekey_message = pair.alice.encrypt(b"still a prekey message")
    assert pair.bob.started_by(own_prekey_message)
    assert not pair.alice.started_by(own_prekey_message)  # the initiator is never started by one
    assert not pair.alice.started_by(pair.bob.encrypt(b"plain"))
    for junk in (b"", b"\x01\x02", b"\x02" + own_prekey_message[1:]):
        assert not pair.bob.started_by(junk)


def test_initiate_refuses_a_bundle_with_a_bad_signature() -> None:
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    bundle = prekeys.bundle()
    forged = dataclasses.replace(
        bundle, signed_prekey=SignedPreKey.generate(prekeys.identity, 2, 0.0).public_key
    )
    with pytest.raises(BadSignature):
        Session.initiate(IdentityKeyPair.generate(), forged)


def test_accept_refuses_a_plain_message() -> None:
    pair = start()
    with pytest.raises(DecryptionError):
        Session.accept(pair.bob_identity, pair.bob_prekeys, pair.bob.encrypt(b"x"))


def test_accept_refuses_an_unknown_signed_prekey() -> None:
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    message = Session.initiate(IdentityKeyPair.generate(), prekeys.bundle(False)).encrypt(b"x")
    prekeys.signed = SignedPreKey.generate(prekeys.identity, key_id=2, now=0.0)  # rotated out
    with pytest.raises(DecryptionError):
        Session.accept(prekeys.identity, prekeys, message)


def test_message_for_another_recipient_is_refused() -> None:
    pair = start()
    carol_prekeys = PreKeyStore(IdentityKeyPair.generate())
    # Alice's first message to Carol, delivered to Bob instead.
    to_carol = Session.initiate(pair.alice_identity, carol_prekeys.bundle(False)).encrypt(b"x")
    with pytest.raises(DecryptionError):
        Session.accept(pair.bob_identity, pair.bob_prekeys, to_carol)


def test_own_message_reflected_back_is_refused() -> None:
    pair = start()
    talk(pair.bob, pair.alice, b"reply")
    mine = pair.alice.encrypt(b"to bob")
    before = pair.alice.to_bytes()
    with pytest.raises(DecryptionError):
        pair.alice.decrypt(mine)
    assert pair.alice.to_bytes() == before
    assert pair.bob.decrypt(mine) == b"to bob"


# -- round trips and long runs -------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 159, 160, 1000, MAX_PLAINTEXT_LEN])
def test_plaintexts_of_any_allowed_size_round_trip(size: int) -> None:
    pair = start()
    text = bytes(random.Random(size).randbytes(size))
    talk(pair.alice, pair.bob, text)
    talk(pair.bob, pair.alice, text)


def test_plaintext_over_the_limit_is_refused_before_anything_changes() -> None:
    pair = start()
    before = pair.alice.to_bytes()
    with pytest.raises(ValueError, match="longer"):
        pair.alice.encrypt(bytes(MAX_PLAINTEXT_LEN + 1))
    assert pair.alice.to_bytes() == before


def test_ciphertext_length_hides_the_exact_plaintext_length() -> None:
    pair = start()
    talk(pair.bob, pair.alice, b"reply")
    assert len(pair.alice.encrypt(b"y")) == len(pair.alice.encrypt(b"yes, see you at 8 then"))


def test_same_plaintext_never_gives_the_same_ciphertext() -> None:
    pair = start()
    assert pair.alice.encrypt(b"same") != pair.alice.encrypt(b"same")


def test_long_interleaved_conversation_in_both_directions() -> None:
    pair = start()
    rng = random.Random(6)
    sent = 0
    while sent < 4000:
        sender, receiver = (pair.alice, pair.bob) if rng.random() < 0.5 else (pair.bob, pair.alice)
        batch = [rng.randbytes(rng.randrange(0, 300)) for _ in range(rng.randrange(1, 8))]
        messages = [sender.encrypt(text) for text in batch]
        for text, message in zip(batch, messages, strict=True):
            assert receiver.decrypt(message) == text
        sent += len(batch)


def test_long_one_way_run_then_reply() -> None:
    pair = start()
    for i in range(3000):
        talk(pair.alice, pair.bob, b"%d" % i)
    talk(pair.bob, pair.alice, b"that was a lot")


# -- out of order and lost --------------------------------------------------------


def test_messages_delivered_out_of_order_across_ratchet_steps() -> None:
    pair = start()
    rng = random.Random(1)
    in_flight: list[tuple[Session, bytes, bytes]] = []
    for turn in range(6):  # each turn switches direction: a DH ratchet step each time
        sender, receiver = (pair.alice, pair.bob) if turn % 2 == 0 else (pair.bob, pair.alice)
        for i in range(5):
            text = b"turn %d message %d" % (turn, i)
            in_flight.append((receiver, sender.encrypt(text), text))
        # Deliver one message per turn so that each side learns the other's new key.
        receiver_, message, text = in_flight.pop()
        assert receiver_.decrypt(message) == text
    rng.shuffle(in_flight)
    for receiver, message, text in in_flight:
        assert receiver.decrypt(message) == text


def test_lost_messages_do_not_stop_later_ones() -> None:
    pair = start()
    messages = [pair.alice.encrypt(b"%d" % i) for i in range(20)]
    for i in (3, 9, 10, 19):
        assert pair.bob.decrypt(messages[i]) == b"%d" % i
    talk(pair.bob, pair.alice, b"reply")  # the lost ones never arrive
    talk(pair.alice, pair.bob, b"after")


def test_late_message_from_a_previous_chain_still_decrypts() -> None:
    pair = start()
    late = pair.alice.encrypt(b"late")
    talk(pair.alice, pair.bob, b"on time")
    for _ in range(3):
        talk(pair.bob, pair.alice, b"ping")
        talk(pair.alice, pair.bob, b"pong")
    assert pair.bob.decrypt(late) == b"late"


# -- tampering -----------------------------------------------------------------


def _flip(message: bytes, index: int) -> bytes:
    out = bytearray(message)
    out[index] ^= 0x01
    return bytes(out)


def _counter_positions(message: bytes) -> range:
    """Where pn and n sit: the last 8 header bytes, just before the ciphertext."""
    header_len = 2 + (73 if is_prekey_message(message) else 0) + 40
    return range(header_len - 8, header_len)


def _expected_refusal(message: bytes, index: int) -> tuple[type[CryptoError], ...]:
    if index == 0:
        return (UnsupportedVersion,)
    if index in _counter_positions(message):
        # A changed counter can claim a position already used or out of reach:
        # refused as such, before anything can be authenticated.
        return (DecryptionError, ReplayError, SkipLimitExceeded)
    return (DecryptionError,)


def test_every_flipped_byte_of_a_message_is_refused_and_changes_nothing() -> None:
    pair = start()
    talk(pair.bob, pair.alice, b"reply")
    message = pair.alice.encrypt(b"attack at dawn")
    before = pair.bob.to_bytes()
    for index in range(len(message)):
        with pytest.raises(_expected_refusal(message, index)):
            pair.bob.decrypt(_flip(message, index))
        assert pair.bob.to_bytes() == before, f"state changed by byte {index}"
    assert pair.bob.decrypt(message) == b"attack at dawn"


def test_every_flipped_byte_of_a_later_prekey_message_is_refused() -> None:
    alice_identity = IdentityKeyPair.generate()
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    alice = Session.initiate(alice_identity, prekeys.bundle())
    first, second = alice.encrypt(b"one"), alice.encrypt(b"two")
    bob, _ = Session.accept(prekeys.identity, prekeys, first)
    before = bob.to_bytes()
    for index in range(len(second)):
        with pytest.raises(_expected_refusal(second, index)):
            bob.decrypt(_flip(second, index))
        assert bob.to_bytes() == before, f"state changed by byte {index}"
    assert bob.decrypt(second) == b"two"


def test_every_flipped_byte_of_a_first_message_is_refused_by_accept() -> None:
    prekeys = PreKeyStore(IdentityKeyPair.generate(), consume=False)
    first = Session.initiate(IdentityKeyPair.generate(), prekeys.bundle()).encrypt(b"one")
    # Layout: version, kind, identity 32, base 32, signed prekey id 4, flag 1, one-time id 4.
    one_time_id = range(2 + 32 + 32 + 4 + 1, 2 + 32 + 32 + 4 + 1 + 4)
    for index in range(len(first)):
        expected = _expected_refusal(first, index)
        if index in one_time_id:
            # Names a one-time prekey Bob does not have, or another one of his.
            expected = (ReplayError, DecryptionError)
        with pytest.raises(expected):
            Session.accept(prekeys.identity, prekeys, _flip(first, index))
    assert Session.accept(prekeys.identity, prekeys, first)[1] == b"one"


def test_header_claiming_a_far_or_used_position_is_refused_unauthenticated() -> None:
    pair = start()
    talk(pair.bob, pair.alice, b"reply")
    talk(pair.alice, pair.bob, b"first of this chain")
    message = pair.alice.encrypt(b"x")
    n_offset = 2 + 32 + 4  # version, kind, ratchet key, pn
    far = message[:n_offset] + (MAX_SKIP + 5).to_bytes(4, "big") + message[n_offset + 4 :]
    with pytest.raises(SkipLimitExceeded):
        pair.bob.decrypt(far)
    used = message[:n_offset] + (0).to_bytes(4, "big") + message[n_offset + 4 :]
    with pytest.raises(ReplayError):  # n = 0 of this chain was read already
        pair.bob.decrypt(used)
    assert pair.bob.decrypt(message) == b"x"


def test_truncated_messages_are_refused() -> None:
    pair = start()
    message = pair.alice.encrypt(b"whole")
    for length in (0, 1, 2, 41, 42, 57, len(message) - 1):
        with pytest.raises(DecryptionError):
            pair.bob.decrypt(message[:length])
    assert pair.bob.decrypt(message) == b"whole"


def test_wrong_version_byte_is_refused_and_changes_nothing() -> None:
    pair = start()
    message = pair.alice.encrypt(b"v1")
    before = pair.bob.to_bytes()
    with pytest.raises(UnsupportedVersion):
        pair.bob.decrypt(b"\x02" + message[1:])
    assert pair.bob.to_bytes() == before
    assert pair.bob.decrypt(message) == b"v1"


# -- replay ----------------------------------------------------------------------


def test_replay_is_not_a_decryption_error() -> None:
    # Callers treat DecryptionError on a prekey message as "maybe a new session";
    # a replay must never be taken for one.
    assert not issubclass(ReplayError, DecryptionError)
    assert not issubclass(SkipLimitExceeded, DecryptionError)
    assert issubclass(ReplayError, CryptoError)
    assert issubclass(SkipLimitExceeded, CryptoError)


def test_replayed_prekey_message_without_one_time_prekey_is_a_replay_error() -> None:
    alice_identity = IdentityKeyPair.generate()
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    alice = Session.initiate(alice_identity, prekeys.bundle(with_one_time=False))
    first, second = alice.encrypt(b"first"), alice.encrypt(b"second")
    bob, _ = Session.accept(prekeys.identity, prekeys, first)
    bob.decrypt(second)
    for message in (first, second):
        assert bob.started_by(message)
        with pytest.raises(ReplayError):
            bob.decrypt(message)


def test_replayed_message_is_refused_and_changes_nothing() -> None:
    pair = start()
    message = pair.alice.encrypt(b"once")
    assert pair.bob.decrypt(message) == b"once"
    before = pair.bob.to_bytes()
    with pytest.raises(ReplayError):
        pair.bob.decrypt(message)
    assert pair.bob.to_bytes() == before


def test_replay_of_a_message_first_received_out_of_order_is_refused() -> None:
    pair = start()
    early, later = pair.alice.encrypt(b"early"), pair.alice.encrypt(b"later")
    pair.bob.decrypt(later)
    assert pair.bob.decrypt(early) == b"early"  # from the skipped keys, which it consumes
    with pytest.raises(ReplayError):
        pair.bob.decrypt(early)


def test_replay_from_an_earlier_chain_is_refused() -> None:
    pair = start()
    old = pair.alice.encrypt(b"old")
    pair.bob.decrypt(old)
    for _ in range(4):
        talk(pair.bob, pair.alice, b"ping")
        talk(pair.alice, pair.bob, b"pong")
    before = pair.bob.to_bytes()
    with pytest.raises(ReplayError):
        pair.bob.decrypt(old)
    assert pair.bob.to_bytes() == before


def test_replayed_first_message_is_refused_by_the_session_it_started() -> None:
    alice_identity = IdentityKeyPair.generate()
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    first = Session.initiate(alice_identity, prekeys.bundle(False)).encrypt(b"first")
    bob, _ = Session.accept(prekeys.identity, prekeys, first)
    with pytest.raises(ReplayError):
        bob.decrypt(first)


# -- skip bounds -------------------------------------------------------------------


def test_a_gap_of_exactly_max_skip_is_accepted() -> None:
    pair = start()
    messages = [pair.alice.encrypt(b"%d" % i) for i in range(MAX_SKIP + 1)]
    assert pair.bob.decrypt(messages[-1]) == b"%d" % MAX_SKIP
    assert pair.bob.decrypt(messages[0]) == b"0"


def test_a_gap_beyond_max_skip_is_refused_and_changes_nothing() -> None:
    pair = start()
    messages = [pair.alice.encrypt(b"%d" % i) for i in range(MAX_SKIP + 2)]
    before = pair.bob.to_bytes()
    with pytest.raises(SkipLimitExceeded):
        pair.bob.decrypt(messages[-1])
    assert pair.bob.to_bytes() == before
    assert pair.bob.decrypt(messages[0]) == b"0"


def test_a_new_chain_too_far_ahead_is_refused_and_changes_nothing() -> None:
    pair = start()
    talk(pair.alice, pair.bob, b"x")
    messages = [pair.bob.encrypt(b"%d" % i) for i in range(MAX_SKIP + 2)]
    before = pair.alice.to_bytes()
    with pytest.raises(SkipLimitExceeded):
        pair.alice.decrypt(messages[-1])
    assert pair.alice.to_bytes() == before
    assert pair.alice.decrypt(messages[5]) == b"5"


def test_previous_chain_too_long_to_skip_is_refused() -> None:
    pair = start()
    talk(pair.bob, pair.alice, b"reply")
    lost = [pair.alice.encrypt(b"lost") for _ in range(MAX_SKIP + 1)]
    talk(pair.bob, pair.alice, b"another")  # Alice ratchets: her next chain has pn = MAX_SKIP + 1
    message = pair.alice.encrypt(b"after the gap")
    with pytest.raises(SkipLimitExceeded):
        pair.bob.decrypt(message)
    assert pair.bob.decrypt(lost[0]) == b"lost"


def test_skipped_keys_are_bounded_and_the_oldest_evicted_first() -> None:
    pair = start()
    talk(pair.bob, pair.alice, b"reply")  # a fresh chain from Alice, numbered from 0
    messages = [pair.alice.encrypt(b"%d" % i) for i in range(MAX_SKIPPED_KEYS + 4)]
    # one message may skip at most MAX_SKIP keys: get there in steps
    steps = list(range(MAX_SKIP, len(messages) - 1, MAX_SKIP))
    assert len(steps) == 2
    for index in steps:
        pair.bob.decrypt(messages[index])
    pair.bob.decrypt(messages[-1])  # skips the rest: one more than the bound in all
    with pytest.raises(ReplayError):
        pair.bob.decrypt(messages[0])  # evicted first
    assert pair.bob.decrypt(messages[1]) == b"1"
    assert pair.bob.decrypt(messages[-2]) == b"%d" % (MAX_SKIPPED_KEYS + 2)


# -- saving and restoring ---------------------------------------------------------


def test_sessions_saved_and_restored_mid_conversation_carry_on() -> None:
    pair = start()
    talk(pair.bob, pair.alice, b"reply")
    pending = [pair.alice.encrypt(b"%d" % i) for i in range(10)]
    pair.bob.decrypt(pending[9])  # leaves nine skipped keys in Bob's state
    alice = Session.from_bytes(pair.alice.to_bytes())
    bob = Session.from_bytes(pair.bob.to_bytes())
    assert bob.to_bytes() == pair.bob.to_bytes()
    for i in range(9):
        assert bob.decrypt(pending[i]) == b"%d" % i
    talk(alice, bob, b"restored")
    talk(bob, alice, b"and back")
    assert alice.remote_identity_key == pair.bob_identity.public_key


def test_initiator_restored_before_the_first_reply_still_sends_prekey_messages() -> None:
    alice_identity = IdentityKeyPair.generate()
    prekeys = PreKeyStore(IdentityKeyPair.generate())
    alice = Session.from_bytes(Session.initiate(alice_identity, prekeys.bundle()).to_bytes())
    message = alice.encrypt(b"first")
    assert is_prekey_message(message)
    bob, text = Session.accept(prekeys.identity, prekeys, message)
    bob = Session.from_bytes(bob.to_bytes())
    assert text == b"first"
    talk(bob, alice, b"reply")


def test_restored_session_refuses_replays_too() -> None:
    pair = start()
    message = pair.alice.encrypt(b"once")
    pair.bob.decrypt(message)
    with pytest.raises(ReplayError):
        Session.from_bytes(pair.bob.to_bytes()).decrypt(message)


def test_corrupt_state_is_refused() -> None:
    pair = start()
    state = pair.bob.to_bytes()
    for corrupt in (b"", state[:-1], state + b"\x00", b"\x09" + state[1:], state[:1] + b"\xff"):
        with pytest.raises(CryptoError):
            Session.from_bytes(corrupt)


def test_repr_shows_no_secret_key_material() -> None:
    pair = start()
    text = repr(pair.bob)
    state = pair.bob.to_bytes()
    # State layout: version, flags, local and remote identity, base key, root key,
    # sending private key (32 bytes each).
    root_key, sending_private = state[98:130], state[130:162]
    assert root_key.hex() not in text
    assert sending_private.hex() not in text
    assert pair.alice_identity.public_key.hex() in text
