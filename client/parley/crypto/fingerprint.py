"""Safety numbers: libsignal's displayable fingerprint (version 0), 60 digits.

Each side: SHA-512 over version (0x0000) || key || identifier || key, then 5200
rounds in all of SHA-512(previous || key); the first 30 bytes make six 5-digit
groups (each 5-byte big-endian chunk mod 100000). The two 30-digit halves are
concatenated in sorted order, so both people see the same number.

Keys are fed in libsignal's serialized form: 0x05 followed by the 32-byte
X25519 public key. Parley's identity keys are Ed25519, so a 32-byte key given
here is converted to its X25519 form first (the same conversion X3DH uses), and
the result is what libsignal would show for that X25519 identity. A 33-byte key
that already starts with 0x05 is used as is (that is how libsignal's own test
vectors are checked).
"""

from __future__ import annotations

import hashlib

from parley.crypto.errors import CryptoError
from parley.crypto.keys import KEY_LEN, ed25519_to_x25519_public

__all__ = ["FINGERPRINT_ITERATIONS", "safety_number"]

FINGERPRINT_ITERATIONS = 5200
_VERSION = b"\x00\x00"
_DJB_TYPE = b"\x05"


def _serialized(identity_key: bytes) -> bytes:
    if len(identity_key) == KEY_LEN:
        return _DJB_TYPE + ed25519_to_x25519_public(identity_key)
    if len(identity_key) == KEY_LEN + 1 and identity_key[:1] == _DJB_TYPE:
        return bytes(identity_key)
    raise CryptoError("identity key must be 32 bytes (Ed25519) or 33 bytes (0x05 || X25519)")


def _half(identifier: bytes, identity_key: bytes) -> str:
    key = _serialized(identity_key)
    digest = hashlib.sha512(_VERSION + key + identifier + key).digest()
    for _ in range(FINGERPRINT_ITERATIONS - 1):
        digest = hashlib.sha512(digest + key).digest()
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5)
    )


def safety_number(
    local_id: bytes, local_identity_key: bytes, remote_id: bytes, remote_identity_key: bytes
) -> str:
    """The 60-digit safety number two people compare; the same on both sides.

    `local_id` / `remote_id` are stable identifiers of each person, encoded the
    same way by every client (e.g. the user id's bytes); the keys are identity
    keys as described above.
    """
    local = _half(local_id, local_identity_key)
    remote = _half(remote_id, remote_identity_key)
    return local + remote if local < remote else remote + local
