"""Sender keys: one ciphertext per group message, readable by every member holding
the sender's key; membership changes (removed members, new members), replay,
forgery, tampering, out-of-order delivery, bounds, and saving and restoring."""

from __future__ import annotations

import random

import pytest

from parley.crypto import (
    CryptoError,
    DecryptionError,
    ReplayError,
    SkipLimitExceeded,
    UnsupportedVersion,
)
from parley.crypto.sender_keys import (
    MAX_GROUP_PLAINTEXT_LEN,
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    MAX_STATES,
    SIGNATURE_LEN,
    NoSenderKey,
    SenderKey,
    SenderKeyDistribution,
    SenderKeyRecord,
)
from parley.crypto.wire import MAX_MESSAGE_LEN


def _receiver(key: SenderKey) -> SenderKeyRecord:
    """A member device that got `key`'s distribution (over a pairwise session)."""
    record = SenderKeyRecord()
    record.add(SenderKeyDistribution.from_bytes(key.distribution().to_bytes()))
    return record


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_every_member_reads_the_one_ciphertext() -> None:
    alice = SenderKey.generate()
    bob, carol = _receiver(alice), _receiver(alice)

    body = alice.encrypt(b"climbing on saturday?")

    assert bob.decrypt(body) == b"climbing on saturday?"
    assert carol.decrypt(body) == b"climbing on saturday?"
    assert b"climbing" not in body


def test_a_long_conversation_decrypts_in_order() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)

    for i in range(200):
        assert bob.decrypt(alice.encrypt(f"message {i}".encode())) == f"message {i}".encode()
    assert alice.iteration == 200


def test_a_removed_member_cannot_read_what_follows_the_rotation() -> None:
    alice = SenderKey.generate()
    bob, mallory = _receiver(alice), _receiver(alice)
    assert mallory.decrypt(alice.encrypt(b"before")) == b"before"
    bob.decrypt(alice.encrypt(b"before, again"))

    # mallory is removed: alice makes a fresh key and gives it to bob only
    alice = SenderKey.generate()
    bob.add(alice.distribution())
    after = alice.encrypt(b"after mallory left")

    assert bob.decrypt(after) == b"after mallory left"
    with pytest.raises(NoSenderKey):
        mallory.decrypt(after)


def test_a_new_member_cannot_read_what_came_before_they_joined() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)
    earlier = [alice.encrypt(f"before dave {i}".encode()) for i in range(3)]
    for body in earlier:
        bob.decrypt(body)

    # dave joins: alice rotates and distributes the new key to everyone
    alice = SenderKey.generate()
    dave = _receiver(alice)
    bob.add(alice.distribution())
    welcome = alice.encrypt(b"welcome dave")

    assert dave.decrypt(welcome) == b"welcome dave"
    assert bob.decrypt(welcome) == b"welcome dave"
    for body in earlier:
        with pytest.raises(NoSenderKey):
            dave.decrypt(body)


def test_a_distribution_mid_chain_never_opens_earlier_messages() -> None:
    """Even given the same key later on, the chain cannot be run backwards."""
    alice = SenderKey.generate()
    earlier = alice.encrypt(b"before the distribution")
    late = _receiver(alice)

    with pytest.raises(ReplayError):
        late.decrypt(earlier)
    assert late.decrypt(alice.encrypt(b"after")) == b"after"


def test_a_replayed_message_is_refused() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)
    body = alice.encrypt(b"once")
    bob.decrypt(body)

    with pytest.raises(ReplayError):
        bob.decrypt(body)


def test_out_of_order_messages_decrypt_once_each() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)
    bodies = [alice.encrypt(f"m{i}".encode()) for i in range(30)]
    order = list(range(30))
    random.Random(8).shuffle(order)

    for i in order:
        assert bob.decrypt(bodies[i]) == f"m{i}".encode()
    for i in order[:5]:
        with pytest.raises(ReplayError):
            bob.decrypt(bodies[i])


def test_a_message_too_far_ahead_is_refused_and_changes_nothing() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)
    first = alice.encrypt(b"first")
    for _ in range(MAX_SKIP):
        alice.encrypt(b"lost")
    too_far = alice.encrypt(b"too far")  # MAX_SKIP + 1 ahead of bob
    saved = bob.to_bytes()

    with pytest.raises(SkipLimitExceeded):
        bob.decrypt(too_far)

    assert bob.to_bytes() == saved
    assert bob.decrypt(first) == b"first"


def test_skipped_keys_are_bounded_and_the_oldest_go_first() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)
    bodies = [alice.encrypt(b"x") for _ in range(MAX_SKIP + 1)]
    bob.decrypt(bodies[MAX_SKIP])  # skips MAX_SKIP keys: all kept
    extra = [alice.encrypt(b"y") for _ in range(11)]
    bob.decrypt(extra[-1])  # 10 more skipped: the 10 oldest are dropped

    record = SenderKeyRecord.from_bytes(bob.to_bytes())
    with pytest.raises(ReplayError):
        record.decrypt(bodies[9])
    assert record.decrypt(bodies[10]) == b"x"
    assert bob.decrypt(extra[0]) == b"y"
    assert MAX_SKIPPED_KEYS == MAX_SKIP


def test_another_member_cannot_forge_a_message_in_the_senders_name() -> None:
    """Members know the chain key; only the sender has the signing key."""
    alice = SenderKey.generate()
    bob = _receiver(alice)
    stolen = alice.distribution()
    forger = SenderKey(stolen.key_id, stolen.iteration, stolen.chain_key, b"\x07" * 32)

    forged = forger.encrypt(b"send me your password")

    with pytest.raises(DecryptionError):
        bob.decrypt(forged)
    assert bob.decrypt(alice.encrypt(b"the real one")) == b"the real one"


@pytest.mark.parametrize("where", ["header", "ciphertext", "signature"])
def test_a_tampered_message_is_refused_and_changes_nothing(where: str) -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)
    body = alice.encrypt(b"pay 10")
    index = {"header": 9, "ciphertext": 20, "signature": len(body) - 1}[where]
    saved = bob.to_bytes()

    with pytest.raises(CryptoError):
        bob.decrypt(_flip(body, index))

    assert bob.to_bytes() == saved
    assert bob.decrypt(body) == b"pay 10"


def test_an_unknown_version_byte_is_refused() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)
    body = alice.encrypt(b"hi")

    with pytest.raises(UnsupportedVersion):
        bob.decrypt(b"\x02" + body[1:])
    with pytest.raises(UnsupportedVersion):
        SenderKeyDistribution.from_bytes(b"\x02" + alice.distribution().to_bytes()[1:])


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x03" + bytes(40), b"\x01\x04" + bytes(200)])
def test_garbage_is_a_decryption_error(data: bytes) -> None:
    bob = _receiver(SenderKey.generate())

    with pytest.raises(DecryptionError):
        bob.decrypt(data)
    with pytest.raises(DecryptionError):
        SenderKeyDistribution.from_bytes(data)


def test_a_repeated_distribution_cannot_rewind_the_chain() -> None:
    alice = SenderKey.generate()
    old = alice.distribution()
    bob = _receiver(alice)
    body = alice.encrypt(b"once")
    bob.decrypt(body)

    bob.add(old)  # replayed distribution of the same key

    with pytest.raises(ReplayError):
        bob.decrypt(body)


def test_messages_sent_just_before_a_rotation_still_decrypt() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)
    in_flight = alice.encrypt(b"sent before the rotation")
    alice = SenderKey.generate()
    bob.add(alice.distribution())

    assert bob.decrypt(alice.encrypt(b"after")) == b"after"
    assert bob.decrypt(in_flight) == b"sent before the rotation"


def test_only_the_most_recent_sender_keys_are_kept() -> None:
    bob = SenderKeyRecord()
    keys = [SenderKey.generate() for _ in range(MAX_STATES + 1)]
    for key in keys:
        bob.add(key.distribution())
    bodies = [key.encrypt(b"hello") for key in keys]

    assert bob.key_ids == [key.key_id for key in keys[1:]]
    with pytest.raises(NoSenderKey):
        bob.decrypt(bodies[0])
    assert bob.decrypt(bodies[-1]) == b"hello"


def test_both_sides_survive_saving_and_restoring() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)
    skipped = alice.encrypt(b"skipped")
    bob.decrypt(alice.encrypt(b"second"))

    alice = SenderKey.from_bytes(alice.to_bytes())
    bob = SenderKeyRecord.from_bytes(bob.to_bytes())

    assert bob.decrypt(alice.encrypt(b"third")) == b"third"
    assert bob.decrypt(skipped) == b"skipped"
    with pytest.raises(CryptoError):
        SenderKeyRecord.from_bytes(bob.to_bytes() + b"\x00")
    with pytest.raises(CryptoError):
        SenderKey.from_bytes(alice.to_bytes()[:-1])


def test_the_largest_plaintext_fits_the_servers_body_limit() -> None:
    alice = SenderKey.generate()
    bob = _receiver(alice)

    body = alice.encrypt(bytes(MAX_GROUP_PLAINTEXT_LEN))

    assert len(body) <= MAX_MESSAGE_LEN
    assert bob.decrypt(body) == bytes(MAX_GROUP_PLAINTEXT_LEN)
    with pytest.raises(ValueError, match="longer"):
        alice.encrypt(bytes(MAX_GROUP_PLAINTEXT_LEN + 1))


def test_lengths_are_padded_and_the_signature_is_the_tail() -> None:
    alice = SenderKey.generate()

    short, longer = alice.encrypt(b"a"), alice.encrypt(b"a" * 150)

    assert len(short) == len(longer)
    assert len(short) == 10 + 160 + 16 + SIGNATURE_LEN
