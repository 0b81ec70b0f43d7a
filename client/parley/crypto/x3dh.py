"""X3DH key agreement (Signal's specification), both sides.

DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B) and, when a
one-time prekey was used, DH4 = DH(EK_A, OPK_B); HKDF over
0xFF * 32 || DH1 || DH2 || DH3 [|| DH4] gives (root key, chain key). Identity
keys are taken here in X25519 form (Parley's Ed25519 identity keys converted).
"""

from __future__ import annotations

from parley.crypto.kdf import x3dh_keys
from parley.crypto.keys import dh

__all__ = ["initiator_keys", "responder_keys"]


def initiator_keys(
    identity_private: bytes,
    ephemeral_private: bytes,
    remote_identity: bytes,
    remote_signed_prekey: bytes,
    remote_one_time_prekey: bytes | None,
) -> tuple[bytes, bytes]:
    """Alice's side. Raises CryptoError if a remote key is not a usable point."""
    secrets = [
        dh(identity_private, remote_signed_prekey),
        dh(ephemeral_private, remote_identity),
        dh(ephemeral_private, remote_signed_prekey),
    ]
    if remote_one_time_prekey is not None:
        secrets.append(dh(ephemeral_private, remote_one_time_prekey))
    return x3dh_keys(b"".join(secrets))


def responder_keys(
    identity_private: bytes,
    signed_prekey_private: bytes,
    one_time_prekey_private: bytes | None,
    remote_identity: bytes,
    remote_base_key: bytes,
) -> tuple[bytes, bytes]:
    """Bob's side: the same keys from his private keys. Raises CryptoError on bad points."""
    secrets = [
        dh(signed_prekey_private, remote_identity),
        dh(identity_private, remote_base_key),
        dh(signed_prekey_private, remote_base_key),
    ]
    if one_time_prekey_private is not None:
        secrets.append(dh(one_time_prekey_private, remote_base_key))
    return x3dh_keys(b"".join(secrets))
