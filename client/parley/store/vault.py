"""Encryption at rest for a profile's secrets.

A profile's private keys, sessions, tokens and message texts are sealed with a
32-byte data key (XSalsa20-Poly1305, PyNaCl's SecretBox). Where that key comes
from is the profile's *protection*, chosen when the profile is created:

- ``keyring``: a random key kept in the OS keyring (when the `keyring` package
  is installed and has a real backend);
- ``passphrase``: derived from a passphrase with Argon2id (salt and cost kept
  with the profile);
- ``plaintext-dev``: nothing is encrypted. For development only, labelled as
  such everywhere it shows, and never chosen silently.
"""

from __future__ import annotations

import base64
import logging
import secrets
from enum import StrEnum
from typing import Any, Protocol

import nacl.exceptions
import nacl.pwhash
import nacl.secret

from parley.errors import StoreLocked, WrongPassphrase

__all__ = [
    "KDF_MEMLIMIT",
    "KDF_OPSLIMIT",
    "KeyringLike",
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
        self._box = nacl.secret.SecretBox(key) if key is not None else None

    @property
    def encrypted(self) -> bool:
        return self._box is not None

    def seal(self, data: bytes) -> bytes:
        if self._box is None:
            return data
        return bytes(self._box.encrypt(data))

    def open(self, blob: bytes) -> bytes:
        if self._box is None:
            return blob
        try:
            return bytes(self._box.decrypt(blob))
        except nacl.exceptions.CryptoError as exc:
            raise StoreLocked("a sealed value in the profile cannot be opened") from exc

    def check_value(self) -> bytes:
        """A sealed known value kept with the profile, to tell a wrong key at once."""
        return self.seal(_CHECK)

    def verify(self, check: bytes) -> None:
        if self._box is None:
            return
        try:
            ok = self._box.decrypt(check) == _CHECK
        except nacl.exceptions.CryptoError:
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
