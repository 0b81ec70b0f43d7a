"""Errors raised by parley.crypto. Callers catch CryptoError; the subclasses say why.

Every subclass derives from CryptoError directly, so a caller can tell a replay
(drop it quietly) from a message that does not decrypt (warn, or try it as a new
session). A tampered header can give any of DecryptionError, ReplayError or
SkipLimitExceeded: the message position it claims is checked before anything
can be authenticated. Whatever is raised, the session is unchanged.
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


class ReplayError(CryptoError):
    """The message's key was already used (or discarded), or it is a first message
    whose session start was already accepted: a replay, never decrypted twice."""


class BadSignature(CryptoError):
    """A prekey bundle is malformed or its signed prekey signature does not verify."""


class UnsupportedVersion(CryptoError):
    """The message's version byte is not one this client speaks."""


class SkipLimitExceeded(CryptoError):
    """The message is further ahead in its chain than the skipped-key bound allows."""
