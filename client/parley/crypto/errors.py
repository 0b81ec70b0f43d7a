"""Errors raised by parley.crypto. Callers catch CryptoError; the subclasses say why.

    CryptoError
    ├── DecryptionError        the message cannot be decrypted (nothing changed)
    │   ├── ReplayError        ... because its key was already used or discarded
    │   └── SkipLimitExceeded  ... because it is too far ahead in its chain
    ├── UnsupportedVersion     the message's version byte is unknown
    └── BadSignature           a prekey bundle does not verify

ReplayError and SkipLimitExceeded are decryption failures too: a forged or
tampered header can cause either, before any authentication is possible.
"""

from __future__ import annotations

__all__ = [
    "BadSignature",
    "CryptoError",
    "DecryptionError",
    "ReplayError",
    "SkipLimitExceeded",
    "UnsupportedVersion",
]


class CryptoError(Exception):
    """Base of every error this package raises (malformed keys and state included)."""


class DecryptionError(CryptoError):
    """The message is malformed, forged, tampered with, or not for this session."""


class ReplayError(DecryptionError):
    """The message's key was already used (or discarded): a replay, never decrypted twice."""


class BadSignature(CryptoError):
    """A prekey bundle is malformed or its signed prekey signature does not verify."""


class UnsupportedVersion(CryptoError):
    """The message's version byte is not one this client speaks."""


class SkipLimitExceeded(DecryptionError):
    """The message is further ahead in its chain than the skipped-key bound allows."""
