"""Message format: version byte, prekey marker, padding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.crypto import (
    MAX_PLAINTEXT_LEN,
    DecryptionError,
    UnsupportedVersion,
    is_prekey_message,
)
from parley.crypto.wire import MAX_MESSAGE_LEN, PAD_BLOCK, VERSION, pad, parse, unpad


@given(st.binary(max_size=2000))
def test_padding_round_trips_and_hides_length_to_the_block(plaintext: bytes) -> None:
    padded = pad(plaintext)
    assert unpad(padded) == plaintext
    assert len(padded) % PAD_BLOCK == 0
    assert len(padded) > len(plaintext)


def test_lengths_within_a_block_pad_to_the_same_size() -> None:
    assert {len(pad(bytes(n))) for n in range(PAD_BLOCK)} == {PAD_BLOCK}
    assert len(pad(bytes(PAD_BLOCK))) == 2 * PAD_BLOCK


def test_plaintext_ending_in_padding_like_bytes_survives() -> None:
    for plaintext in [b"\x80", b"\x00", b"a\x80\x00", bytes(PAD_BLOCK - 1)]:
        assert unpad(pad(plaintext)) == plaintext


@pytest.mark.parametrize("padded", [b"", bytes(PAD_BLOCK), b"abc" + bytes(PAD_BLOCK - 3)])
def test_malformed_padding_is_a_decryption_error(padded: bytes) -> None:
    with pytest.raises(DecryptionError):
        unpad(padded)


def test_largest_plaintext_fits_the_server_limit() -> None:
    # prekey header (2 + 73 + 40 bytes) + padded body + 16-byte tag
    assert 2 + 73 + 40 + len(pad(bytes(MAX_PLAINTEXT_LEN))) + 16 <= MAX_MESSAGE_LEN
    assert 2 + 73 + 40 + len(pad(bytes(MAX_PLAINTEXT_LEN + 1))) + 16 > MAX_MESSAGE_LEN


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_unknown_version_is_refused(version: int) -> None:
    message = bytes((version, 0x01)) + bytes(200)
    with pytest.raises(UnsupportedVersion):
        parse(message)
    assert not is_prekey_message(bytes((version, 0x02)) + bytes(200))


@pytest.mark.parametrize("message", [b"", bytes((VERSION,)), bytes((VERSION, 0x01)) + bytes(55)])
def test_truncated_message_is_a_decryption_error(message: bytes) -> None:
    with pytest.raises(DecryptionError):
        parse(message)


def test_unknown_kind_is_a_decryption_error() -> None:
    with pytest.raises(DecryptionError):
        parse(bytes((VERSION, 0x03)) + bytes(200))


def test_prekey_header_with_bad_presence_flag_is_refused() -> None:
    header = bytes((VERSION, 0x02)) + bytes(64) + bytes(4) + b"\x02" + bytes(4)
    with pytest.raises(DecryptionError):
        parse(header + bytes(40 + 16))


@pytest.mark.parametrize("message", [b"", b"\x01", b"\x01\x01", b"\x02\x02", b"\x01\x03"])
def test_is_prekey_message_is_false_for_anything_else(message: bytes) -> None:
    assert not is_prekey_message(message)
