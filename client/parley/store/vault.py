"""Encryption at rest for a profile's secrets.

A profile's private keys, sessions, tokens and message texts are sealed with a
32-byte data key (XChaCha20-Poly1305). Each sealed value is bound to its place,
a `Cell` (table, column, row key) given as associated data: a value copied to
another row, column or table does not open there (`MisplacedValue`). Where the
key comes from is the profile's *protection*, chosen when the profile is created:

- ``keyring``: a random key kept in the OS keyring (when the `keyring` package
  is installed and has a real backend);
- ``passphrase``: derived from a passphrase with Argon2id (salt and cost kept
  with the profile);
- ``plaintext-dev``: nothing is encrypted. For development only, labelled as
  such everywhere it shows, and never chosen silently.

Profiles written before the binding sealed values with the key alone
(XSalsa20-Poly1305, PyNaCl's SecretBox); `open_unbound` reads those, for the
one re-sealing pass the store makes when it opens such a profile (see
`parley.store.db`). Nothing else ever accepts an unbound value.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

import nacl.bindings
import nacl.exceptions
import nacl.pwhash
import nacl.secret

from parley.errors import StoreLocked, WrongPassphrase

__all__ = [
    "CHECK_CELL",
    "KDF_MEMLIMIT",
    "KDF_OPSLIMIT",
    "Cell",
    "KeyringLike",
    "MisplacedValue",
    "Protection",
    "Vault",
    "derive_key",
    "system_keyring",
]

log = logging.getLogger("parley.store.vault")

KEYRING_SERVICE = "parley"
# Argon2id at libsodium's "moderate" cost (about 0.5 s and 256 MiB here): a
# profile is unlocked once per process, and a stolen file must be slow to attack.
KDF_OPSLIMIT: int = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
KDF_MEMLIMIT: int = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
_CHECK = b"parley vault check v1"
_AAD_LABEL = b"parley sealed value v2\x00"
_NONCE_LEN = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_encrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
_decrypt = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt


class Cell(NamedTuple):
    """Where a sealed value lives: its table, its column, and its row's key (the
    values of the columns that name the row, in a fixed order)."""

    table: str
    column: str
    row: tuple[str | int, ...]

    def aad(self) -> bytes:
        return (
            _AAD_LABEL
            + json.dumps([self.table, self.column, list(self.row)], separators=(",", ":")).encode()
        )

    def __str__(self) -> str:
        return f"{self.table}.{self.column} of row {', '.join(map(str, self.row))}"


# the check value kept with the profile (meta 'check'), to tell a wrong key at once
CHECK_CELL = Cell("meta", "value", ("check",))


class MisplacedValue(StoreLocked):
    """A sealed value does not open where it is: damaged, or moved there from
    another row, column or table."""


class Protection(StrEnum):
    KEYRING = "keyring"
    PASSPHRASE = "passphrase"  # noqa: S105 (a mode's name)
    PLAINTEXT_DEV = "plaintext-dev"


class KeyringLike(Protocol):
    """The part of the `keyring` package the vault uses."""

    def get_password(self, service_name: str, username: str) -> str | None: ...

    def set_password(self, service_name: str, username: str, password: str) -> None: ...


def system_keyring() -> KeyringLike | None:
    """The `keyring` module if it is installed and has a usable backend, else None."""
    try:
        import keyring  # type: ignore[import-not-found, unused-ignore]
        import keyring.backends.fail  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    try:
        backend: Any = keyring.get_keyring()
        if isinstance(backend, keyring.backends.fail.Keyring) or backend.priority <= 0:
            return None
    except Exception:  # any backend failure means "not usable"
        log.debug("keyring present but not usable", exc_info=True)
        return None
    module: KeyringLike = keyring
    return module


def derive_key(
    passphrase: str, salt: bytes, opslimit: int = KDF_OPSLIMIT, memlimit: int = KDF_MEMLIMIT
) -> bytes:
    """Argon2id: passphrase -> 32-byte key."""
    key: bytes = nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        passphrase.encode(),
        salt,
        opslimit=opslimit,
        memlimit=memlimit,
    )
    return key


class Vault:
    """Seals and opens blobs with the profile's data key (or not at all in dev mode)."""

    def __init__(self, protection: Protection, key: bytes | None) -> None:
        if (key is None) != (protection is Protection.PLAINTEXT_DEV):
            raise ValueError("a key is needed exactly when the protection is not plaintext")
        self.protection = protection
        self._key = key or b""
        # XSalsa20-Poly1305 without a place: only to read profiles sealed before binding
        self._box = nacl.secret.SecretBox(key) if key is not None else None

    @property
    def encrypted(self) -> bool:
        return self._box is not None

    def seal(self, data: bytes, cell: Cell) -> bytes:
        """`data` sealed for `cell`: it opens there and nowhere else."""
        if self._box is None:
            return data
        nonce = secrets.token_bytes(_NONCE_LEN)
        return nonce + bytes(_encrypt(data, cell.aad(), nonce, self._key))

    def open(self, blob: bytes, cell: Cell) -> bytes:
        """The value sealed for `cell`; MisplacedValue if `blob` was not."""
        if self._box is None:
            return blob
        blob = bytes(blob)
        try:
            if len(blob) < _NONCE_LEN:
                raise nacl.exceptions.CryptoError("too short")
            return bytes(_decrypt(blob[_NONCE_LEN:], cell.aad(), blob[:_NONCE_LEN], self._key))
        except nacl.exceptions.CryptoError as exc:
            raise MisplacedValue(
                f"the sealed {cell} does not open: it is damaged, or it was moved"
                " there from another row, column or table"
            ) from exc

    def open_unbound(self, blob: bytes, cell: Cell) -> bytes:
        """A value sealed before values were bound to their place (key alone); only
        for re-sealing a profile written then. `cell` names it in the error."""
        if self._box is None:
            return blob
        try:
            return bytes(self._box.decrypt(bytes(blob)))
        except nacl.exceptions.CryptoError as exc:
            raise StoreLocked(
                f"the sealed {cell} (sealed before binding) cannot be opened"
            ) from exc

    def check_value(self) -> bytes:
        """A sealed known value kept with the profile, to tell a wrong key at once."""
        return self.seal(_CHECK, CHECK_CELL)

    def verify(self, check: bytes, *, bound: bool = True) -> None:
        """Raise WrongPassphrase / StoreLocked unless `check` opens to the known value
        (`bound`: sealed for CHECK_CELL; else as profiles before the binding sealed it)."""
        if self._box is None:
            return
        try:
            if bound:
                ok = self.open(check, CHECK_CELL) == _CHECK
            else:
                ok = self._box.decrypt(check) == _CHECK
        except (nacl.exceptions.CryptoError, StoreLocked):
            ok = False
        if not ok:
            if self.protection is Protection.PASSPHRASE:
                raise WrongPassphrase("wrong passphrase for this profile")
            raise StoreLocked("the key in the OS keyring does not open this profile")

    # --- construction ----------------------------------------------------------

    @classmethod
    def from_keyring(cls, keyring: KeyringLike, name: str, *, create: bool) -> Vault:
        stored = keyring.get_password(KEYRING_SERVICE, name)
        if stored is None:
            if not create:
                raise StoreLocked(f"the OS keyring has no key for profile {name!r}")
            key = secrets.token_bytes(nacl.secret.SecretBox.KEY_SIZE)
            keyring.set_password(KEYRING_SERVICE, name, base64.b64encode(key).decode())
            return cls(Protection.KEYRING, key)
        try:
            key = base64.b64decode(stored, validate=True)
        except ValueError as exc:
            raise StoreLocked("the key in the OS keyring is damaged") from exc
        if len(key) != nacl.secret.SecretBox.KEY_SIZE:
            raise StoreLocked("the key in the OS keyring is damaged")
        return cls(Protection.KEYRING, key)

    @classmethod
    def from_passphrase(cls, passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> Vault:
        if not passphrase:
            raise WrongPassphrase("an empty passphrase protects nothing")
        return cls(Protection.PASSPHRASE, derive_key(passphrase, salt, opslimit, memlimit))

    @classmethod
    def plaintext_dev(cls) -> Vault:
        return cls(Protection.PLAINTEXT_DEV, None)

    @staticmethod
    def new_salt() -> bytes:
        return secrets.token_bytes(nacl.pwhash.argon2id.SALTBYTES)
