"""End-to-end encryption for Parley: X3DH and the Double Ratchet on PyNaCl.

    alice = Session.initiate(alice_identity, bob_bundle)
    bob, first = Session.accept(bob_identity, bob_prekeys, alice.encrypt(b"hi"))
    alice.decrypt(bob.encrypt(b"hello"))

Receiving a message from a device:

    if is_prekey_message(m) and not (session and session.started_by(m)):
        session, plaintext = Session.accept(identity, prekeys, m)   # a new session
    else:
        plaintext = session.decrypt(m)

Every failure is a CryptoError (see parley.crypto.errors); a refused message
never changes the session.
"""

from __future__ import annotations

from parley.crypto.errors import (
    BadSignature,
    CryptoError,
    DecryptionError,
    ReplayError,
    SkipLimitExceeded,
    UnsupportedVersion,
)
from parley.crypto.fingerprint import safety_number
from parley.crypto.keys import IdentityKeyPair, OneTimePreKey, PreKeyBundle, SignedPreKey
from parley.crypto.session import PreKeySource, Session
from parley.crypto.wire import MAX_PLAINTEXT_LEN, is_prekey_message

__all__ = [
    "MAX_PLAINTEXT_LEN",
    "BadSignature",
    "CryptoError",
    "DecryptionError",
    "IdentityKeyPair",
    "OneTimePreKey",
    "PreKeyBundle",
    "PreKeySource",
    "ReplayError",
    "Session",
    "SignedPreKey",
    "SkipLimitExceeded",
    "UnsupportedVersion",
    "is_prekey_message",
    "safety_number",
]
