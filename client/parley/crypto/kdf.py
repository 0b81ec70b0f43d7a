"""Key derivation, as libsignal does it.

HKDF-SHA256 (RFC 5869) built on hmac/hashlib, the root-key step of the Double
Ratchet, the symmetric chain step and the per-message keys. The info labels are
libsignal's, so chain and message keys match its published test vectors.
"""

from __future__ import annotations

import hmac
from typing import NamedTuple

__all__ = [
    "HASH_LEN",
    "MessageKeys",
    "chain_step",
    "hkdf",
    "hkdf_expand",
    "hkdf_extract",
    "message_keys",
    "root_step",
    "x3dh_keys",
]

HASH_LEN = 32
_ZERO_SALT = bytes(HASH_LEN)
# X3DH: 32 0xFF bytes before the DH outputs, so the input can never be confused
# with that of a protocol whose input starts with a valid curve point.
_X3DH_DISCONTINUITY = b"\xff" * 32

_INFO_X3DH = b"WhisperText"
_INFO_RATCHET = b"WhisperRatchet"
_INFO_MESSAGE_KEYS = b"WhisperMessageKeys"
_MESSAGE_KEY_SEED = b"\x01"
_CHAIN_KEY_SEED = b"\x02"


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 extract; an empty salt means HashLen zero bytes (HMAC pads keys with zeros)."""
    return hmac.digest(salt, ikm, "sha256")


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 expand: T(1) | T(2) | ... truncated to `length` bytes."""
    if not 0 <= length <= 255 * HASH_LEN:
        raise ValueError(f"HKDF-SHA256 can produce 0..{255 * HASH_LEN} bytes, not {length}")
    blocks: list[bytes] = []
    block = b""
    for counter in range(1, -(-length // HASH_LEN) + 1):
        block = hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        blocks.append(block)
    return b"".join(blocks)[:length]


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract then expand."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


class MessageKeys(NamedTuple):
    """The 80 bytes libsignal derives for one message."""

    cipher_key: bytes  # 32
    mac_key: bytes  # 32
    iv: bytes  # 16


def message_keys(seed: bytes) -> MessageKeys:
    """Message keys from a chain's message key seed (HKDF, zero salt, "WhisperMessageKeys")."""
    # HKDF written out (extract, then three expand blocks): this runs for every message.
    prk = hmac.digest(_ZERO_SALT, seed, "sha256")
    t1 = hmac.digest(prk, _INFO_MESSAGE_KEYS + b"\x01", "sha256")
    t2 = hmac.digest(prk, t1 + _INFO_MESSAGE_KEYS + b"\x02", "sha256")
    t3 = hmac.digest(prk, t2 + _INFO_MESSAGE_KEYS + b"\x03", "sha256")
    return MessageKeys(t1, t2, t3[:16])


def chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """One symmetric-ratchet step: (next chain key, message key seed) via HMAC 0x02 / 0x01."""
    return (
        hmac.digest(chain_key, _CHAIN_KEY_SEED, "sha256"),
        hmac.digest(chain_key, _MESSAGE_KEY_SEED, "sha256"),
    )


def root_step(root_key: bytes, dh_output: bytes) -> tuple[bytes, bytes]:
    """Root KDF: HKDF(salt=root key, ikm=DH output, "WhisperRatchet") -> (root key, chain key)."""
    okm = hkdf(dh_output, root_key, _INFO_RATCHET, 2 * HASH_LEN)
    return okm[:HASH_LEN], okm[HASH_LEN:]


def x3dh_keys(dh_outputs: bytes) -> tuple[bytes, bytes]:
    """(root key, chain key) from X3DH's concatenated DH outputs (HKDF, zero salt, "WhisperText").

    libsignal gives the chain key to the responder's first sending chain (on its
    signed prekey); here the responder always receives before it sends, so only
    the root key is used. Both are returned so the derivation can be checked
    against libsignal's vectors.
    """
    okm = hkdf(_X3DH_DISCONTINUITY + dh_outputs, _ZERO_SALT, _INFO_X3DH, 2 * HASH_LEN)
    return okm[:HASH_LEN], okm[HASH_LEN:]
