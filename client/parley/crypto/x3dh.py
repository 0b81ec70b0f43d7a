"""X3DH key agreement (Signal's specification), both sides.

DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B) and, when a
one-time prekey was used, DH4 = DH(EK_A, OPK_B); the root key is HKDF over
0xFF * 32 || DH1 || DH2 || DH3 [|| DH4]. Identity keys are Ed25519, used here in
their X25519 form.
"""

from __future__ import annotations

from parley.crypto.kdf import x3dh_root_key
from parley.crypto.keys import IdentityKeyPair, dh, ed25519_to_x25519_public

__all__ = ["initiator_root_key", "responder_root_key"]


def initiator_root_key(
    identity: IdentityKeyPair,
    ephemeral_private: bytes,
    remote_identity_key: bytes,
    remote_signed_prekey: bytes,
    remote_one_time_prekey: bytes | None,
) -> bytes:
    """Alice's side. Raises CryptoError if a remote key is not a usable point."""
    remote_identity = ed25519_to_x25519_public(remote_identity_key)
    secrets = [
        dh(identity.dh_private_key, remote_signed_prekey),
        dh(ephemeral_private, remote_identity),
        dh(ephemeral_private, remote_signed_prekey),
    ]
    if remote_one_time_prekey is not None:
        secrets.append(dh(ephemeral_private, remote_one_time_prekey))
    return x3dh_root_key(b"".join(secrets))


def responder_root_key(
    identity: IdentityKeyPair,
    signed_prekey_private: bytes,
    one_time_prekey_private: bytes | None,
    remote_identity_key: bytes,
    remote_base_key: bytes,
) -> bytes:
    """Bob's side: the same secret from his private keys. Raises CryptoError on bad points."""
    remote_identity = ed25519_to_x25519_public(remote_identity_key)
    secrets = [
        dh(signed_prekey_private, remote_identity),
        dh(identity.dh_private_key, remote_base_key),
        dh(signed_prekey_private, remote_base_key),
    ]
    if one_time_prekey_private is not None:
        secrets.append(dh(one_time_prekey_private, remote_base_key))
    return x3dh_root_key(b"".join(secrets))
