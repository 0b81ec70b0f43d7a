"""Sender keys for group messages, as in Signal's and WhatsApp's group design.

Each member device has its own sender key per group: a chain key, an Ed25519
signing key pair and an iteration. It hands the chain key, the public signing
key and the current iteration to every other member device in a distribution
message, sent over the pairwise Double Ratchet sessions. Then one ciphertext
serves the whole group, and the server fans it out:

    mine = SenderKey.generate()
    for each member device: pairwise_session.encrypt(payload(mine.distribution().to_bytes()))
    body = mine.encrypt(b"hello group")           # one ciphertext for everyone

    theirs = SenderKeyRecord()                    # one per (group, sender device)
    theirs.add(SenderKeyDistribution.from_bytes(received))
    plaintext = theirs.decrypt(body)

Per message the chain steps once (HMAC-SHA256 with 0x01 for the message seed,
0x02 for the next chain key, like the pairwise chains), the message is padded
and encrypted with XChaCha20-Poly1305 under keys derived from the seed, and the
whole ciphertext is signed with the sender's signing key, so a member who knows
the chain key still cannot forge another member's messages.

A fresh sender key after every membership change keeps removed members out
(they never get it) and a member added later starts at the current iteration,
so the chain cannot be run backwards to read what came before.

Message:       version | 0x03 | key id (u32) | iteration (u32) | AEAD ciphertext | signature (64)
Distribution:  version | 0x04 | key id (u32) | iteration (u32) | chain key (32) | signing key (32)

The header (the first 10 bytes) is the AEAD's associated data; the signature
covers every byte before it. Decryption changes the record only if it succeeds.
"""

from __future__ import annotations

import secrets
import struct
from collections import OrderedDict
from typing import NamedTuple

import nacl.bindings as sodium
import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey

from parley.crypto.errors import (
    CryptoError,
    DecryptionError,
    ReplayError,
    SkipLimitExceeded,
    UnsupportedVersion,
)
from parley.crypto.kdf import chain_step, hkdf
from parley.crypto.wire import MAX_MESSAGE_LEN, PAD_BLOCK, TAG_LEN, pad, unpad

__all__ = [
    "KIND_DISTRIBUTION",
    "KIND_GROUP_MESSAGE",
    "MAX_GROUP_PLAINTEXT_LEN",
    "MAX_SKIP",
    "MAX_SKIPPED_KEYS",
    "MAX_STATES",
    "SIGNATURE_LEN",
    "VERSION",
    "NoSenderKey",
    "SenderKey",
    "SenderKeyDistribution",
    "SenderKeyRecord",
]

VERSION = 1
KIND_GROUP_MESSAGE = 0x03
KIND_DISTRIBUTION = 0x04
SIGNATURE_LEN = 64
MAX_SKIP = 2000  # most message keys one message may make a receiver skip (as Signal)
MAX_SKIPPED_KEYS = 2000  # skipped keys kept per sender key; the oldest go first
MAX_STATES = 5  # sender keys kept per sender device: messages sent just before a rotation
_MAX_ITERATION = 0xFFFF_FFFF
_KEY_LEN = 32

_HEADER = struct.Struct(">BBII")
_DISTRIBUTION = struct.Struct(">BBII32s32s")
_INFO = b"ParleyGroupMessage"
_ZERO_SALT = bytes(32)
# Largest plaintext whose padded message still fits the server's 64 KiB body.
MAX_GROUP_PLAINTEXT_LEN = (
    MAX_MESSAGE_LEN - _HEADER.size - TAG_LEN - SIGNATURE_LEN
) // PAD_BLOCK * PAD_BLOCK - 1

_encrypt = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt
_decrypt = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt


class NoSenderKey(CryptoError):
    """No sender key with this id from this sender: ask them for it, or you were left out."""


def _message_keys(seed: bytes) -> tuple[bytes, bytes]:
    """(cipher key, 24-byte nonce) for one message; each key encrypts exactly one message."""
    okm = hkdf(seed, _ZERO_SALT, _INFO, 32 + 24)
    return okm[:32], okm[32:]


def _new_key_id() -> int:
    return secrets.randbelow(_MAX_ITERATION) + 1


class SenderKeyDistribution(NamedTuple):
    """What a sender gives each member device (over the pairwise session)."""

    key_id: int
    iteration: int
    chain_key: bytes
    signing_key: bytes  # Ed25519 public key

    def to_bytes(self) -> bytes:
        return _DISTRIBUTION.pack(
            VERSION,
            KIND_DISTRIBUTION,
            self.key_id,
            self.iteration,
            self.chain_key,
            self.signing_key,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKeyDistribution:
        """Parse a distribution message. Raises UnsupportedVersion or DecryptionError."""
        if len(data) >= 1 and data[0] != VERSION:
            raise UnsupportedVersion(f"sender key version {data[0]} is not supported")
        if len(data) != _DISTRIBUTION.size:
            raise DecryptionError("malformed sender key distribution")
        _, kind, key_id, iteration, chain_key, signing_key = _DISTRIBUTION.unpack(data)
        if kind != KIND_DISTRIBUTION:
            raise DecryptionError("not a sender key distribution")
        try:
            VerifyKey(signing_key)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise DecryptionError("malformed signing key") from exc
        return cls(key_id, iteration, chain_key, signing_key)


class SenderKey:
    """This device's sender key for one group: it encrypts and signs."""

    __slots__ = ("_chain_key", "_iteration", "_key_id", "_signing")

    def __init__(self, key_id: int, iteration: int, chain_key: bytes, signing_seed: bytes) -> None:
        """Use generate() or from_bytes(); this only assembles a state."""
        if len(chain_key) != _KEY_LEN or len(signing_seed) != _KEY_LEN:
            raise CryptoError("sender key material must be 32 bytes")
        self._key_id = key_id
        self._iteration = iteration
        self._chain_key = chain_key
        self._signing = SigningKey(signing_seed)

    @classmethod
    def generate(cls) -> SenderKey:
        """A fresh sender key: a random id, chain key and signing key, at iteration 0."""
        return cls(_new_key_id(), 0, secrets.token_bytes(_KEY_LEN), secrets.token_bytes(_KEY_LEN))

    @property
    def key_id(self) -> int:
        return self._key_id

    @property
    def iteration(self) -> int:
        """The iteration the next message will use."""
        return self._iteration

    def distribution(self) -> SenderKeyDistribution:
        """What other member devices need to read this device's messages from now on."""
        return SenderKeyDistribution(
            self._key_id, self._iteration, self._chain_key, bytes(self._signing.verify_key)
        )

    def encrypt(self, plaintext: bytes) -> bytes:
        """Pad, encrypt and sign one group message; the chain steps once."""
        if len(plaintext) > MAX_GROUP_PLAINTEXT_LEN:
            raise ValueError(f"plaintext longer than {MAX_GROUP_PLAINTEXT_LEN} bytes")
        if self._iteration >= _MAX_ITERATION:
            raise CryptoError("sender key exhausted: generate a new one")
        header = _HEADER.pack(VERSION, KIND_GROUP_MESSAGE, self._key_id, self._iteration)
        next_chain, seed = chain_step(self._chain_key)
        key, nonce = _message_keys(seed)
        body = header + _encrypt(pad(plaintext), header, nonce, key)
        signed = body + self._signing.sign(body).signature
        self._chain_key = next_chain
        self._iteration += 1
        return signed

    def to_bytes(self) -> bytes:
        """The whole state, private signing key included: store it encrypted."""
        return _OWN.pack(
            _STATE_VERSION, self._key_id, self._iteration, self._chain_key, bytes(self._signing)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKey:
        if len(data) != _OWN.size:
            raise CryptoError("corrupt sender key state")
        version, key_id, iteration, chain_key, seed = _OWN.unpack(data)
        if version != _STATE_VERSION:
            raise CryptoError(f"sender key state version {version} is not supported")
        return cls(key_id, iteration, chain_key, seed)

    def __repr__(self) -> str:
        return f"SenderKey(key_id={self._key_id}, iteration={self._iteration})"


class _State:
    """A receiver's view of one sender key: where its chain is, and skipped keys."""

    __slots__ = ("chain_key", "iteration", "key_id", "signing_key", "skipped")

    def __init__(
        self,
        key_id: int,
        iteration: int,
        chain_key: bytes,
        signing_key: bytes,
        skipped: OrderedDict[int, bytes] | None = None,
    ) -> None:
        self.key_id = key_id
        self.iteration = iteration  # the next iteration the chain key is at
        self.chain_key = chain_key
        self.signing_key = signing_key
        self.skipped: OrderedDict[int, bytes] = skipped or OrderedDict()


class _Parsed(NamedTuple):
    key_id: int
    iteration: int
    header: bytes
    ciphertext: bytes
    signed: bytes
    signature: bytes


def _parse(message: bytes) -> _Parsed:
    if len(message) >= 1 and message[0] != VERSION:
        raise UnsupportedVersion(f"group message version {message[0]} is not supported")
    if len(message) < _HEADER.size + TAG_LEN + SIGNATURE_LEN:
        raise DecryptionError("group message too short")
    _, kind, key_id, iteration = _HEADER.unpack_from(message)
    if kind != KIND_GROUP_MESSAGE:
        raise DecryptionError("not a group message")
    signed = message[:-SIGNATURE_LEN]
    return _Parsed(
        key_id,
        iteration,
        message[: _HEADER.size],
        signed[_HEADER.size :],
        signed,
        message[-SIGNATURE_LEN:],
    )


class SenderKeyRecord:
    """What a receiver keeps for one sender device in one group: its recent sender keys."""

    __slots__ = ("_states",)

    def __init__(self) -> None:
        self._states: OrderedDict[int, _State] = OrderedDict()  # oldest first

    def add(self, distribution: SenderKeyDistribution) -> None:
        """Accept a sender key. One already known keeps its state: a repeated (or
        replayed) distribution must never rewind a chain and reopen used keys."""
        if distribution.key_id in self._states:
            return
        self._states[distribution.key_id] = _State(
            distribution.key_id,
            distribution.iteration,
            distribution.chain_key,
            distribution.signing_key,
        )
        while len(self._states) > MAX_STATES:
            self._states.popitem(last=False)

    @property
    def key_ids(self) -> list[int]:
        return list(self._states)

    def has_key(self, key_id: int) -> bool:
        return key_id in self._states

    def decrypt(self, message: bytes) -> bytes:
        """Verify and decrypt a group message; the record changes only if it succeeds.

        Raises UnsupportedVersion, NoSenderKey, DecryptionError (malformed,
        forged, tampered), ReplayError or SkipLimitExceeded.
        """
        parsed = _parse(message)
        state = self._states.get(parsed.key_id)
        if state is None:
            raise NoSenderKey(f"no sender key {parsed.key_id} from this sender")
        try:
            VerifyKey(state.signing_key).verify(parsed.signed, parsed.signature)
        except nacl.exceptions.BadSignatureError as exc:
            raise DecryptionError("group message signature does not verify") from exc

        n = parsed.iteration
        new_skipped: list[tuple[int, bytes]] = []
        next_chain: bytes | None = None
        if n < state.iteration:
            seed = state.skipped.get(n)
            if seed is None:
                raise ReplayError("message key already used, discarded or before this key")
        else:
            if n - state.iteration > MAX_SKIP:
                raise SkipLimitExceeded(f"message is {n - state.iteration} ahead in its chain")
            chain = state.chain_key
            for skipped in range(state.iteration, n):
                chain, passed = chain_step(chain)
                new_skipped.append((skipped, passed))
            next_chain, seed = chain_step(chain)

        key, nonce = _message_keys(seed)
        try:
            padded = _decrypt(parsed.ciphertext, parsed.header, nonce, key)
        except nacl.exceptions.CryptoError as exc:
            raise DecryptionError("group message failed authentication") from exc
        plaintext = unpad(padded)

        # Authenticated: commit.
        if next_chain is None:
            del state.skipped[n]
        else:
            state.chain_key = next_chain
            state.iteration = n + 1
            for slot, passed in new_skipped:
                state.skipped[slot] = passed
            while len(state.skipped) > MAX_SKIPPED_KEYS:
                state.skipped.popitem(last=False)
        return plaintext

    # -- persistence ----------------------------------------------------------

    def to_bytes(self) -> bytes:
        parts = [_RECORD_HEAD.pack(_STATE_VERSION, len(self._states))]
        for state in self._states.values():
            parts.append(
                _STATE_HEAD.pack(
                    state.key_id,
                    state.iteration,
                    state.chain_key,
                    state.signing_key,
                    len(state.skipped),
                )
            )
            parts.extend(_SKIPPED.pack(n, seed) for n, seed in state.skipped.items())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKeyRecord:
        """Restore a record saved by to_bytes(). Raises CryptoError if it is corrupt."""
        try:
            version, count = _RECORD_HEAD.unpack_from(data, 0)
            if version != _STATE_VERSION:
                raise CryptoError(f"sender key record version {version} is not supported")
            offset = _RECORD_HEAD.size
            record = cls()
            for _ in range(count):
                key_id, iteration, chain_key, signing_key, skipped_count = _STATE_HEAD.unpack_from(
                    data, offset
                )
                offset += _STATE_HEAD.size
                skipped: OrderedDict[int, bytes] = OrderedDict()
                for _ in range(skipped_count):
                    n, seed = _SKIPPED.unpack_from(data, offset)
                    offset += _SKIPPED.size
                    skipped[n] = seed
                record._states[key_id] = _State(key_id, iteration, chain_key, signing_key, skipped)
            if offset != len(data):
                raise CryptoError("corrupt sender key record: trailing bytes")
            return record
        except struct.error as exc:
            raise CryptoError("corrupt sender key record") from exc

    def __repr__(self) -> str:
        return f"SenderKeyRecord(key_ids={self.key_ids})"


_STATE_VERSION = 1
_OWN = struct.Struct(">BII32s32s")
_RECORD_HEAD = struct.Struct(">BB")
_STATE_HEAD = struct.Struct(">II32s32sI")
_SKIPPED = struct.Struct(">I32s")
