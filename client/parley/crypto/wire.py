"""The ciphertext format, and plaintext padding.

Every message starts with a version byte and a kind byte:

    message:  version | 0x01 | ratchet key (32) | pn (u32) | n (u32) | AEAD ciphertext
    prekey:   version | 0x02 | identity key (32) | base key (32) | signed prekey id (u32)
              | has one-time prekey (u8) | one-time prekey id (u32)
              | ratchet key (32) | pn (u32) | n (u32) | AEAD ciphertext

Integers are big-endian. Everything before the AEAD ciphertext is the header;
it is authenticated as associated data, after the two identity keys.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from parley.crypto.errors import DecryptionError, UnsupportedVersion

__all__ = [
    "KIND_MESSAGE",
    "KIND_PREKEY",
    "MAX_MESSAGE_LEN",
    "MAX_PLAINTEXT_LEN",
    "PAD_BLOCK",
    "TAG_LEN",
    "VERSION",
    "Envelope",
    "PreKeyHeader",
    "encode_header",
    "encode_prekey_header",
    "is_prekey_message",
    "pad",
    "parse",
    "unpad",
]

VERSION = 1
KIND_MESSAGE = 0x01
KIND_PREKEY = 0x02
TAG_LEN = 16  # Poly1305
PAD_BLOCK = 160  # as Signal: lengths are only visible to the nearest 160 bytes
MAX_MESSAGE_LEN = 64 * 1024  # one ciphertext per device, as the server accepts it

_RATCHET = struct.Struct(">32sII")
_PREKEY = struct.Struct(">32s32sIBI")
_MESSAGE_HEADER_LEN = 2 + _RATCHET.size
_PREKEY_HEADER_LEN = 2 + _PREKEY.size + _RATCHET.size
# The largest plaintext whose padded prekey message still fits in MAX_MESSAGE_LEN.
MAX_PLAINTEXT_LEN = (MAX_MESSAGE_LEN - _PREKEY_HEADER_LEN - TAG_LEN) // PAD_BLOCK * PAD_BLOCK - 1


class PreKeyHeader(NamedTuple):
    """What the initiator sends until the first reply, so the responder can run X3DH."""

    identity_key: bytes  # initiator's Ed25519 identity key
    base_key: bytes  # initiator's X3DH ephemeral key
    signed_prekey_id: int
    one_time_prekey_id: int | None


class Envelope(NamedTuple):
    """A parsed message."""

    prekey: PreKeyHeader | None
    ratchet_key: bytes
    previous_chain_length: int  # pn
    number: int  # n
    header: bytes  # every byte before the ciphertext (associated data)
    ciphertext: bytes


def encode_prekey_header(header: PreKeyHeader) -> bytes:
    """The prekey fields of a prekey message (without version, kind and ratchet header)."""
    otk = header.one_time_prekey_id
    return _PREKEY.pack(
        header.identity_key,
        header.base_key,
        header.signed_prekey_id,
        otk is not None,
        0 if otk is None else otk,
    )


def encode_header(prekey: bytes | None, ratchet_key: bytes, pn: int, n: int) -> bytes:
    """The header of a message; `prekey` is encode_prekey_header()'s output or None."""
    if prekey is None:
        return bytes((VERSION, KIND_MESSAGE)) + _RATCHET.pack(ratchet_key, pn, n)
    return bytes((VERSION, KIND_PREKEY)) + prekey + _RATCHET.pack(ratchet_key, pn, n)


def is_prekey_message(message: bytes) -> bool:
    """True if `message` is a prekey message of a version this client speaks."""
    return len(message) >= 2 and message[0] == VERSION and message[1] == KIND_PREKEY


def parse(message: bytes) -> Envelope:
    """Split a message into its fields. Raises UnsupportedVersion or DecryptionError."""
    if len(message) < 2:
        raise DecryptionError("message too short")
    if message[0] != VERSION:
        raise UnsupportedVersion(f"message version {message[0]} is not supported")
    kind = message[1]
    if kind == KIND_MESSAGE:
        header_len = _MESSAGE_HEADER_LEN
        prekey = None
    elif kind == KIND_PREKEY:
        header_len = _PREKEY_HEADER_LEN
        prekey = None
    else:
        raise DecryptionError(f"unknown message kind {kind}")
    if len(message) < header_len + TAG_LEN:
        raise DecryptionError("message too short")
    offset = 2
    if kind == KIND_PREKEY:
        identity, base, spk_id, has_otk, otk_id = _PREKEY.unpack_from(message, offset)
        if has_otk not in (0, 1) or (not has_otk and otk_id):
            raise DecryptionError("malformed prekey header")
        prekey = PreKeyHeader(identity, base, spk_id, otk_id if has_otk else None)
        offset += _PREKEY.size
    ratchet_key, pn, n = _RATCHET.unpack_from(message, offset)
    return Envelope(prekey, ratchet_key, pn, n, message[:header_len], message[header_len:])


def pad(plaintext: bytes) -> bytes:
    """ISO/IEC 7816-4 padding (0x80 then zeros) up to the next multiple of PAD_BLOCK."""
    size = (len(plaintext) // PAD_BLOCK + 1) * PAD_BLOCK
    return plaintext + b"\x80" + bytes(size - len(plaintext) - 1)


def unpad(padded: bytes) -> bytes:
    """Undo pad(). Raises DecryptionError if the padding is malformed."""
    body = padded.rstrip(b"\x00")
    if not body or body[-1] != 0x80:
        raise DecryptionError("malformed padding")
    return body[:-1]
