"""Streaming encryption of attachment files.

A file is encrypted with a fresh key using libsodium's secretstream
(XChaCha20-Poly1305) in chunks of CHUNK_BYTES, file to file, so memory stays
flat whatever the file size. The object in storage is the concatenation of
the chunk ciphertexts (the stream header travels in the message, not in the
object); the last chunk carries TAG_FINAL, so a truncated, reordered, spliced
or altered object never decrypts. The receiver also checks the SHA-256 of the
whole ciphertext before decrypting anything.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import nacl.bindings as sodium
import nacl.exceptions

from parley.content import MediaError
from parley.content.attachment import ABYTES, CHUNK_BYTES, HEADER_BYTES, KEY_BYTES

__all__ = [
    "EncryptedFile",
    "IntegrityError",
    "decrypt_file",
    "encrypt_file",
    "sha256_file",
]

_TAG_MESSAGE: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: Final[int] = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


class IntegrityError(MediaError):
    """An encrypted object is not what its descriptor promised (tampered,
    truncated, reordered or of the wrong size); nothing was kept."""


@dataclass(frozen=True)
class EncryptedFile:
    """The secrets and facts of one encrypted file."""

    key: bytes = field(repr=False)
    header: bytes = field(repr=False)
    sha256: str
    size: int  # plaintext bytes
    encrypted_size: int


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def encrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    key: bytes | None = None,
) -> EncryptedFile:
    """Encrypt `src` into `dst` chunk by chunk with a fresh key (or `key`).

    Memory is a few chunks whatever the size. On failure `dst` is removed.
    """
    key = key if key is not None else sodium.crypto_secretstream_xchacha20poly1305_keygen()
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    digest = hashlib.sha256()
    plain = written = 0
    out_path = Path(dst)
    try:
        with open(src, "rb") as source, open(out_path, "wb") as sink:
            chunk = source.read(CHUNK_BYTES)
            while True:
                # read one ahead: the last chunk (even an empty one) carries FINAL
                following = source.read(CHUNK_BYTES) if len(chunk) == CHUNK_BYTES else b""
                tag = _TAG_FINAL if not following else _TAG_MESSAGE
                sealed = sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, tag=tag)
                sink.write(sealed)
                digest.update(sealed)
                plain += len(chunk)
                written += len(sealed)
                if tag == _TAG_FINAL:
                    break
                chunk = following
    except BaseException:
        _remove(out_path)
        raise
    return EncryptedFile(
        key=key, header=header, sha256=digest.hexdigest(), size=plain, encrypted_size=written
    )


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(CHUNK_BYTES * 4):
            digest.update(block)
    return digest.hexdigest()


def decrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    key: bytes,
    header: bytes,
    sha256: str | None,
    size: int | None = None,
) -> int:
    """Decrypt `src` into `dst`, streaming; returns the plaintext size.

    The ciphertext's SHA-256 is checked first (pass `sha256=None` only when the
    caller has just checked it while downloading). Plaintext goes to a
    temporary file beside `dst` that replaces `dst` only once the whole stream
    has verified, so a tampered, truncated or reordered object leaves nothing
    behind. Raises IntegrityError.
    """
    if sha256 is not None and sha256_file(src) != sha256:
        raise IntegrityError("the encrypted file does not match its SHA-256")
    if len(key) != KEY_BYTES or len(header) != HEADER_BYTES:
        raise IntegrityError("wrong key or header length")
    target = Path(dst)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name[:40]}.", suffix=".part", dir=target.parent
    )
    tmp = Path(tmp_name)
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        with os.fdopen(fd, "wb") as sink, open(src, "rb") as source:
            try:
                sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
            except nacl.exceptions.CryptoError as exc:
                raise IntegrityError("the stream header is invalid") from exc
            total = 0
            finished = False
            while sealed := source.read(CHUNK_BYTES + ABYTES):
                if finished:
                    raise IntegrityError("data follows the final chunk")
                try:
                    chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed)
                except nacl.exceptions.CryptoError as exc:
                    raise IntegrityError("the encrypted file was altered or reordered") from exc
                finished = tag == _TAG_FINAL
                sink.write(chunk)
                total += len(chunk)
            if not finished:
                raise IntegrityError("the encrypted file is truncated")
        if size is not None and total != size:
            raise IntegrityError(f"decrypted {total} bytes, expected {size}")
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    return total
