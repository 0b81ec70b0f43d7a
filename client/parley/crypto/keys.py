"""Long-term and prekey material: the identity key, signed and one-time prekeys, bundles.

The identity key is Ed25519 (it signs the signed prekey and is what goes on the
wire); for X3DH it is converted to X25519 with libsodium's birational map.
Prekeys are X25519. Every key is a raw 32-byte value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.bindings as sodium
import nacl.exceptions

from parley.crypto.errors import BadSignature, CryptoError

__all__ = [
    "KEY_LEN",
    "MAX_KEY_ID",
    "SIGNATURE_LEN",
    "IdentityKeyPair",
    "OneTimePreKey",
    "PreKeyBundle",
    "SignedPreKey",
    "dh",
    "ed25519_to_x25519_public",
    "generate_x25519",
    "verify_signature",
]

KEY_LEN = 32
SIGNATURE_LEN = 64
MAX_KEY_ID = 0xFFFF_FFFF  # key ids travel as unsigned 32-bit integers


def generate_x25519() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as (private, public)."""
    public, private = sodium.crypto_box_keypair()
    return private, public


def dh(private_key: bytes, public_key: bytes) -> bytes:
    """X25519. Raises CryptoError for a low-order public key (all-zero shared secret)."""
    try:
        return sodium.crypto_scalarmult(private_key, public_key)
    except nacl.exceptions.CryptoError as exc:
        raise CryptoError("Diffie-Hellman with an invalid public key") from exc


def ed25519_to_x25519_public(identity_key: bytes) -> bytes:
    """The X25519 form of an Ed25519 public key. Raises CryptoError if it is not a valid point."""
    if len(identity_key) != KEY_LEN:
        raise CryptoError(f"identity key must be {KEY_LEN} bytes, got {len(identity_key)}")
    try:
        return sodium.crypto_sign_ed25519_pk_to_curve25519(identity_key)
    except nacl.exceptions.CryptoError as exc:
        raise CryptoError("identity key is not a valid Ed25519 public key") from exc


def _check_key_id(key_id: int) -> None:
    if not 0 <= key_id <= MAX_KEY_ID:
        raise ValueError(f"key id must be in 0..{MAX_KEY_ID}, got {key_id}")


class IdentityKeyPair:
    """A device's long-term Ed25519 key pair, with its X25519 form for Diffie-Hellman."""

    __slots__ = ("_secret", "_seed", "dh_private_key", "dh_public_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != KEY_LEN:
            raise CryptoError(f"identity private key must be {KEY_LEN} bytes, got {len(seed)}")
        public, secret = sodium.crypto_sign_seed_keypair(seed)
        self._seed = seed
        self._secret: bytes = secret
        self.public_key: bytes = public
        self.dh_private_key: bytes = sodium.crypto_sign_ed25519_sk_to_curve25519(secret)
        self.dh_public_key: bytes = sodium.crypto_sign_ed25519_pk_to_curve25519(public)

    @classmethod
    def generate(cls) -> IdentityKeyPair:
        return cls(sodium.randombytes(KEY_LEN))

    def sign(self, data: bytes) -> bytes:
        """A 64-byte Ed25519 signature of `data`."""
        return sodium.crypto_sign(data, self._secret)[:SIGNATURE_LEN]

    def to_bytes(self) -> bytes:
        """The 32-byte Ed25519 seed (RFC 8032 private key). Secret: store it encrypted."""
        return self._seed

    @classmethod
    def from_bytes(cls, b: bytes) -> IdentityKeyPair:
        return cls(bytes(b))

    def __repr__(self) -> str:
        return f"IdentityKeyPair(public_key={self.public_key.hex()})"


def verify_signature(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """True if `signature` is a valid Ed25519 signature of `data` by `public_key`."""
    if len(public_key) != KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        sodium.crypto_sign_open(signature + data, public_key)
    except nacl.exceptions.CryptoError:
        return False
    return True


@dataclass(frozen=True)
class SignedPreKey:
    """A medium-term X25519 prekey signed by the identity key (rotated by the caller)."""

    key_id: int
    private_key: bytes = field(repr=False)
    public_key: bytes
    signature: bytes
    created_at: float

    @classmethod
    def generate(cls, identity: IdentityKeyPair, key_id: int, now: float) -> SignedPreKey:
        """A new signed prekey; the signature is Ed25519 over the raw 32-byte public key."""
        _check_key_id(key_id)
        private, public = generate_x25519()
        return cls(key_id, private, public, identity.sign(public), now)


@dataclass(frozen=True)
class OneTimePreKey:
    """A single-use X25519 prekey."""

    key_id: int
    private_key: bytes = field(repr=False)
    public_key: bytes

    @classmethod
    def generate_batch(cls, start_id: int, count: int) -> list[OneTimePreKey]:
        """`count` new keys with ids start_id, start_id + 1, ..."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        if count:
            _check_key_id(start_id)
            _check_key_id(start_id + count - 1)
        keys = []
        for key_id in range(start_id, start_id + count):
            private, public = generate_x25519()
            keys.append(cls(key_id, private, public))
        return keys


@dataclass(frozen=True)
class PreKeyBundle:
    """One remote device's published keys, as GET /v1/keys/{user_id} returns them."""

    identity_key: bytes
    signed_prekey_id: int
    signed_prekey: bytes
    signed_prekey_signature: bytes
    one_time_prekey_id: int | None = None
    one_time_prekey: bytes | None = None

    def verify(self) -> None:
        """Raise BadSignature unless the bundle is well formed and its signature verifies."""
        if len(self.identity_key) != KEY_LEN:
            raise BadSignature("bundle identity key must be 32 bytes")
        if len(self.signed_prekey) != KEY_LEN:
            raise BadSignature("bundle signed prekey must be 32 bytes")
        if len(self.signed_prekey_signature) != SIGNATURE_LEN:
            raise BadSignature("bundle signed prekey signature must be 64 bytes")
        if not 0 <= self.signed_prekey_id <= MAX_KEY_ID:
            raise BadSignature("bundle signed prekey id out of range")
        if (self.one_time_prekey_id is None) != (self.one_time_prekey is None):
            raise BadSignature("bundle one-time prekey needs both an id and a key")
        if self.one_time_prekey is not None and len(self.one_time_prekey) != KEY_LEN:
            raise BadSignature("bundle one-time prekey must be 32 bytes")
        if self.one_time_prekey_id is not None and not 0 <= self.one_time_prekey_id <= MAX_KEY_ID:
            raise BadSignature("bundle one-time prekey id out of range")
        if not verify_signature(
            self.identity_key, self.signed_prekey, self.signed_prekey_signature
        ):
            raise BadSignature("signed prekey signature does not verify with the identity key")
