"""Identity keys, prekeys and bundle verification."""

from __future__ import annotations

import dataclasses

import nacl.signing
import pytest

from parley.crypto import (
    BadSignature,
    CryptoError,
    IdentityKeyPair,
    OneTimePreKey,
    PreKeyBundle,
    SignedPreKey,
)


def _bundle(identity: IdentityKeyPair, with_one_time: bool = True) -> PreKeyBundle:
    signed = SignedPreKey.generate(identity, key_id=7, now=1000.0)
    one_time = OneTimePreKey.generate_batch(start_id=40, count=1)[0]
    return PreKeyBundle(
        identity_key=identity.public_key,
        signed_prekey_id=signed.key_id,
        signed_prekey=signed.public_key,
        signed_prekey_signature=signed.signature,
        one_time_prekey_id=one_time.key_id if with_one_time else None,
        one_time_prekey=one_time.public_key if with_one_time else None,
    )


def test_identity_signature_verifies_as_standard_ed25519() -> None:
    identity = IdentityKeyPair.generate()
    signature = identity.sign(b"hello")
    assert len(identity.public_key) == 32
    assert len(signature) == 64
    assert nacl.signing.VerifyKey(identity.public_key).verify(b"hello", signature) == b"hello"


def test_identity_survives_to_bytes_and_back() -> None:
    identity = IdentityKeyPair.generate()
    restored = IdentityKeyPair.from_bytes(identity.to_bytes())
    assert restored.public_key == identity.public_key
    assert restored.dh_private_key == identity.dh_private_key
    assert restored.sign(b"x") == identity.sign(b"x")  # Ed25519 is deterministic


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_identity_from_bytes_refuses_wrong_length(size: int) -> None:
    with pytest.raises(CryptoError):
        IdentityKeyPair.from_bytes(bytes(size))


def test_repr_never_shows_private_keys() -> None:
    identity = IdentityKeyPair.generate()
    signed = SignedPreKey.generate(identity, key_id=1, now=0.0)
    one_time = OneTimePreKey.generate_batch(1, 1)[0]
    assert identity.to_bytes().hex() not in repr(identity)
    assert repr(signed.private_key) not in repr(signed)
    assert repr(one_time.private_key) not in repr(one_time)


def test_signed_prekey_is_signed_over_its_raw_public_key() -> None:
    identity = IdentityKeyPair.generate()
    signed = SignedPreKey.generate(identity, key_id=3, now=1234.5)
    assert (signed.key_id, signed.created_at) == (3, 1234.5)
    assert len(signed.public_key) == len(signed.private_key) == 32
    verify_key = nacl.signing.VerifyKey(identity.public_key)
    assert verify_key.verify(signed.public_key, signed.signature) == signed.public_key


def test_one_time_prekeys_come_with_consecutive_ids_and_distinct_keys() -> None:
    batch = OneTimePreKey.generate_batch(start_id=100, count=100)
    assert [k.key_id for k in batch] == list(range(100, 200))
    assert len({k.public_key for k in batch}) == 100
    assert OneTimePreKey.generate_batch(start_id=5, count=0) == []


@pytest.mark.parametrize(("start", "count"), [(-1, 1), (0xFFFF_FFFF, 2), (0, -1)])
def test_one_time_prekey_ids_must_fit_in_32_bits(start: int, count: int) -> None:
    with pytest.raises(ValueError, match="must"):
        OneTimePreKey.generate_batch(start, count)


def test_signed_prekey_id_must_fit_in_32_bits() -> None:
    with pytest.raises(ValueError, match="key id"):
        SignedPreKey.generate(IdentityKeyPair.generate(), key_id=2**32, now=0.0)


@pytest.mark.parametrize("with_one_time", [True, False])
def test_well_formed_bundle_verifies(with_one_time: bool) -> None:
    _bundle(IdentityKeyPair.generate(), with_one_time).verify()


def test_bundle_signed_by_another_identity_is_refused() -> None:
    bundle = _bundle(IdentityKeyPair.generate())
    forged = dataclasses.replace(bundle, identity_key=IdentityKeyPair.generate().public_key)
    with pytest.raises(BadSignature):
        forged.verify()


def test_bundle_with_swapped_signed_prekey_is_refused() -> None:
    identity = IdentityKeyPair.generate()
    bundle = _bundle(identity)
    other = SignedPreKey.generate(IdentityKeyPair.generate(), key_id=7, now=0.0)
    with pytest.raises(BadSignature):
        dataclasses.replace(bundle, signed_prekey=other.public_key).verify()


@pytest.mark.parametrize("index", [0, 31, 32, 63])
def test_bundle_with_any_signature_byte_flipped_is_refused(index: int) -> None:
    bundle = _bundle(IdentityKeyPair.generate())
    signature = bytearray(bundle.signed_prekey_signature)
    signature[index] ^= 0x01
    with pytest.raises(BadSignature):
        dataclasses.replace(bundle, signed_prekey_signature=bytes(signature)).verify()


@pytest.mark.parametrize(
    "change",
    [
        {"identity_key": bytes(31)},
        {"signed_prekey": bytes(33)},
        {"signed_prekey_signature": bytes(63)},
        {"signed_prekey_id": -1},
        {"signed_prekey_id": 2**32},
        {"one_time_prekey": None},
        {"one_time_prekey_id": None},
        {"one_time_prekey": bytes(16)},
        {"one_time_prekey_id": 2**32},
    ],
)
def test_malformed_bundle_is_refused(change: dict[str, object]) -> None:
    bundle = dataclasses.replace(_bundle(IdentityKeyPair.generate()), **change)  # type: ignore[arg-type]
    with pytest.raises(BadSignature):
        bundle.verify()
