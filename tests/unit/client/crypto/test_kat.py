"""Known-answer tests: RFC 5869 for HKDF, libsignal's vectors for X3DH, the chain
and message keys, and the displayable fingerprint (safety number)."""

from __future__ import annotations

import pytest

from parley.crypto import CryptoError, IdentityKeyPair, safety_number
from parley.crypto.kdf import chain_step, hkdf, hkdf_expand, hkdf_extract, message_keys
from parley.crypto.x3dh import initiator_keys, responder_keys

h = bytes.fromhex

# RFC 5869 appendix A, test cases 1-3 (SHA-256): ikm, salt, info, length, prk, okm.
RFC5869 = [
    (
        h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
        h("000102030405060708090a0b0c"),
        h("f0f1f2f3f4f5f6f7f8f9"),
        42,
        h("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"),
        h("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    ),
    (
        bytes(range(0x00, 0x50)),
        bytes(range(0x60, 0xB0)),
        bytes(range(0xB0, 0x100)),
        82,
        h("06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244"),
        h(
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
            "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
            "cc30c58179ec3e87c14c01d5c1f3434f1d87"
        ),
    ),
    (
        h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
        b"",
        b"",
        42,
        h("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"),
        h("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
    ),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "prk", "okm"), RFC5869)
def test_hkdf_matches_rfc5869_vectors(
    ikm: bytes, salt: bytes, info: bytes, length: int, prk: bytes, okm: bytes
) -> None:
    assert hkdf_extract(salt, ikm) == prk
    assert hkdf_expand(prk, info, length) == okm
    assert hkdf(ikm, salt, info, length) == okm


def test_hkdf_refuses_more_than_255_blocks() -> None:
    with pytest.raises(ValueError, match="HKDF"):
        hkdf_expand(bytes(32), b"", 255 * 32 + 1)


def test_chain_and_message_keys_match_libsignal_vector() -> None:
    # libsignal rust/protocol/src/ratchet/keys.rs, test_chain_key_derivation.
    seed = h("8ab72d6f4cc5ac0d387eaf463378ddb28edd07385b1cb01250c715982e7ad48f")
    next_chain_key, message_key_seed = chain_step(seed)
    keys = message_keys(message_key_seed)
    assert keys.cipher_key == h("bf51e9d75e0e31031051f82a2491ffc084fa298b7793bd9db620056febf45217")
    assert keys.mac_key == h("c6c77d6a73a354337a56435e34607dfe48e3ace14e77314dc6abc172e7a7030b")
    assert next_chain_key == h("28e8f8fee54b801eef7c5cfb2f17f32c7b334485bbb70fac6ec10342a246d15d")
    assert len(keys.iv) == 16


def test_message_keys_are_libsignals_80_byte_hkdf_output() -> None:
    seed = bytes(range(32))
    okm = hkdf(seed, b"", b"WhisperMessageKeys", 80)
    assert message_keys(seed) == (okm[:32], okm[32:64], okm[64:80])


# libsignal rust/protocol/tests/ratchet.rs before post-quantum keys became required
# (test_ratcheting_session_as_bob / _as_alice): X3DH without a one-time prekey.
# Public keys drop libsignal's 0x05 type prefix.
BOB_IDENTITY_PRIVATE = h("4875cc69ddf8ea0719ec947d61081135868d5fd801f02c0225e516df2156605e")
BOB_IDENTITY_PUBLIC = h("f1f43874f6966956c2dd473f8fa15adeb71d1cb991b2341692324cefb1c5e626")
BOB_SIGNED_PREKEY_PRIVATE = h("583900131fb727998b7803fe6ac22cc591f342e4e42a8c8d5d78194209b8d253")
BOB_SIGNED_PREKEY_PUBLIC = h("ac248a8f263be6863576eb0362e28c828f0107a3379d34bab1586bf8c770cd67")
ALICE_IDENTITY_PRIVATE = h("9040f0d4e09cf38f6dc7c13779c908c015a1da4fa78737a080eb0a6f4f5f8f58")
ALICE_IDENTITY_PUBLIC = h("b4a8455660ada65b401007f615e654041746432e3339c6875149bceefcb42b4a")
ALICE_BASE_PRIVATE = h("10ae7c64d1e61cd596b76a0db5012673391cae66edbfcf073b4da80516a47449")
ALICE_BASE_PUBLIC = h("e2c05860f2ac6b2b57ba564b421ffe71e4b128c591e46e0491cc9b33dbf22a27")
# Bob's first sending chain key = the second half of X3DH's "WhisperText" HKDF output.
EXPECTED_CHAIN_KEY = h("ab9be50e5cb22a925446ab90ee5670545f4fd32902459ec274b6ad0ae5d6031a")


def test_x3dh_matches_libsignal_vector_on_both_sides() -> None:
    alice_root, alice_chain = initiator_keys(
        ALICE_IDENTITY_PRIVATE,
        ALICE_BASE_PRIVATE,
        BOB_IDENTITY_PUBLIC,
        BOB_SIGNED_PREKEY_PUBLIC,
        None,
    )
    bob_root, bob_chain = responder_keys(
        BOB_IDENTITY_PRIVATE,
        BOB_SIGNED_PREKEY_PRIVATE,
        None,
        ALICE_IDENTITY_PUBLIC,
        ALICE_BASE_PUBLIC,
    )
    assert alice_chain == bob_chain == EXPECTED_CHAIN_KEY
    assert alice_root == bob_root


# libsignal rust/protocol/src/fingerprint.rs, fingerprint_test_v1/_v2 (5200 iterations).
FP_ALICE_IDENTITY = h("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
FP_BOB_IDENTITY = h("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
FP_ALICE_ID = b"+14152222222"
FP_BOB_ID = b"+14153333333"
FP_DISPLAYABLE = "300354477692869396892869876765458257569162576843440918079131"


def test_safety_number_matches_libsignal_displayable_fingerprint() -> None:
    alice_view = safety_number(FP_ALICE_ID, FP_ALICE_IDENTITY, FP_BOB_ID, FP_BOB_IDENTITY)
    bob_view = safety_number(FP_BOB_ID, FP_BOB_IDENTITY, FP_ALICE_ID, FP_ALICE_IDENTITY)
    assert alice_view == bob_view == FP_DISPLAYABLE


_P = 2**255 - 19


def _edwards_form(montgomery_u: bytes) -> bytes:
    """The Ed25519 public key (sign bit 0) whose X25519 form is `montgomery_u`."""
    u = int.from_bytes(montgomery_u, "little")
    y = (u - 1) * pow(u + 1, -1, _P) % _P
    return y.to_bytes(32, "little")


def test_safety_number_of_ed25519_keys_is_libsignals_for_their_x25519_form() -> None:
    # Our identity keys are Ed25519: the 32-byte path converts them to X25519 and
    # prefixes 0x05, so the Edwards form of libsignal's keys gives its number.
    alice_ed = _edwards_form(FP_ALICE_IDENTITY[1:])
    bob_ed = _edwards_form(FP_BOB_IDENTITY[1:])
    assert safety_number(FP_ALICE_ID, alice_ed, FP_BOB_ID, bob_ed) == FP_DISPLAYABLE


def test_safety_number_changes_when_a_key_changes() -> None:
    changed = safety_number(
        FP_ALICE_ID, FP_ALICE_IDENTITY, FP_BOB_ID, IdentityKeyPair.generate().public_key
    )
    assert changed != FP_DISPLAYABLE
    assert len(changed) == 60
    assert changed.isdigit()


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        bytes(31),
        b"\x06" + bytes(32),  # not libsignal's X25519 type byte
        bytes(34),
        bytes(32),  # an Ed25519 point of small order
        (2).to_bytes(32, "little"),  # not a point at all
    ],
)
def test_safety_number_refuses_keys_that_are_not_identity_keys(bad: bytes) -> None:
    with pytest.raises(CryptoError):
        safety_number(FP_ALICE_ID, FP_ALICE_IDENTITY, FP_BOB_ID, bad)
