"""Access tokens an attacker could present, each made against a known signing secret.

Every forgery is one way around a single check of the verifier; a token that
passes all checks (`genuine`) is the control, so a test that refuses everything
cannot pass by accident.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["FORGERIES", "Forgery", "claims_for", "genuine"]


def claims_for(user_id: str, device_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "parley",
        "aud": "parley",
        "sub": user_id,
        "did": device_id,
        "iat": now,
        "exp": now + 900,
        "typ": "access",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def genuine(secret: bytes, user_id: str, device_id: str) -> str:
    """What the service itself would issue."""
    return jwt.encode(claims_for(user_id, device_id), secret, algorithm="HS256")


def _segment(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _alg_none(secret: bytes, uid: str, did: str) -> str:
    # unsigned: header {"alg": "none"} and an empty signature
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims_for(uid, did))}."


def _alg_none_with_signature(secret: bytes, uid: str, did: str) -> str:
    # "none" but with the genuine signature still attached
    real = genuine(secret, uid, did).rsplit(".", 1)[1]
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims_for(uid, did))}.{real}"


def _hs512_same_secret(secret: bytes, uid: str, did: str) -> str:
    # the right key under an algorithm the service never issues
    return jwt.encode(claims_for(uid, did), secret, algorithm="HS512")


def _rs256_attacker_key(secret: bytes, uid: str, did: str) -> str:
    # alg confusion: an asymmetric token the attacker signed, hoping the
    # verifier takes the algorithm from the header
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims_for(uid, did), key, algorithm="RS256")


def _es256_with_public_key_header(secret: bytes, uid: str, did: str) -> str:
    # an embedded public key ("jwk" header) that would verify the signature
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return jwt.encode(
        claims_for(uid, did), key, algorithm="ES256", headers={"jwk": public.decode()}
    )


def _hs256_keyed_with_public_material(secret: bytes, uid: str, did: str) -> str:
    # classic confusion: HMAC keyed with something public (here, the issuer name)
    return jwt.encode(claims_for(uid, did), b"parley" * 6, algorithm="HS256")


def _other_secret(secret: bytes, uid: str, did: str) -> str:
    return jwt.encode(claims_for(uid, did), b"x" * 64, algorithm="HS256")


def _tampered_subject(secret: bytes, uid: str, did: str) -> str:
    # a genuine token of someone else, with the payload swapped for ours
    header, _, signature = genuine(secret, "0" * 32, did).split(".")
    return f"{header}.{_segment(claims_for(uid, did))}.{signature}"


def _expired(secret: bytes, uid: str, did: str) -> str:
    now = int(time.time())
    claims = claims_for(uid, did, iat=now - 1000, exp=now - 100)
    return jwt.encode(claims, secret, algorithm="HS256")


def _without_expiry(secret: bytes, uid: str, did: str) -> str:
    return jwt.encode(claims_for(uid, did, exp=None), secret, algorithm="HS256")


def _refresh_type(secret: bytes, uid: str, did: str) -> str:
    return jwt.encode(claims_for(uid, did, typ="refresh"), secret, algorithm="HS256")


def _other_audience(secret: bytes, uid: str, did: str) -> str:
    return jwt.encode(claims_for(uid, did, aud="someone-else"), secret, algorithm="HS256")


def _other_issuer(secret: bytes, uid: str, did: str) -> str:
    return jwt.encode(claims_for(uid, did, iss="someone-else"), secret, algorithm="HS256")


def _garbage(secret: bytes, uid: str, did: str) -> str:
    return "not.a.token"


def _oversized(secret: bytes, uid: str, did: str) -> str:
    padded = claims_for(uid, did, pad="x" * 20_000)
    return jwt.encode(padded, secret, algorithm="HS256")


@dataclass(frozen=True)
class Forgery:
    name: str
    make: Callable[[bytes, str, str], str]

    def __str__(self) -> str:
        return self.name


FORGERIES = tuple(
    Forgery(name, make)
    for name, make in (
        ("alg-none", _alg_none),
        ("alg-none-with-signature", _alg_none_with_signature),
        ("alg-hs512-right-secret", _hs512_same_secret),
        ("alg-rs256-attacker-key", _rs256_attacker_key),
        ("alg-es256-embedded-key", _es256_with_public_key_header),
        ("hmac-keyed-with-public-material", _hs256_keyed_with_public_material),
        ("signed-with-another-key", _other_secret),
        ("payload-swapped-under-a-real-signature", _tampered_subject),
        ("expired", _expired),
        ("no-expiry", _without_expiry),
        ("typ-refresh", _refresh_type),
        ("other-audience", _other_audience),
        ("other-issuer", _other_issuer),
        ("garbage", _garbage),
        ("oversized", _oversized),
    )
)
