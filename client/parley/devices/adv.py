"""The signatures that link a companion device to an account, and the link code.

- details: canonical JSON `{"user_id", "device_id", "key_index", "identity", "ts"}`
  (the companion's device id, key index and identity);
- account signature (the primary approves):
  `Ed25519(primary, b"parley/adv-account/v1\\x00" + details)`;
- pairing HMAC (the approval came from whoever scanned the code):
  `HMAC-SHA256(secret, b"parley/adv-hmac/v1\\x00" + details + account_signature)`;
- device signature (the companion consents):
  `Ed25519(companion, b"parley/adv-device/v1\\x00" + details + account_signature
  + account_identity)`;
- link code: `parley-link:1:<ref>:<device_id>:<identity b64url>:<secret b64url>`
  (unpadded URL-safe base64), the QR code's content and its text form alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from parley.crypto import IdentityKeyPair
from parley.crypto.keys import verify_signature
from parley.devices.lists import canonical
from parley.errors import LinkSignatureError, MalformedLinkCode
from parley.ids import is_device_id, is_user_id

__all__ = [
    "ACCOUNT_PREFIX",
    "DEVICE_PREFIX",
    "HMAC_PREFIX",
    "LINK_CODE_PREFIX",
    "SECRET_LEN",
    "Details",
    "LinkCode",
    "account_signature",
    "device_signature",
    "pairing_hmac",
    "verify_account_signature",
    "verify_device_signature",
    "verify_hmac",
]

ACCOUNT_PREFIX = b"parley/adv-account/v1\x00"
HMAC_PREFIX = b"parley/adv-hmac/v1\x00"
DEVICE_PREFIX = b"parley/adv-device/v1\x00"
LINK_CODE_PREFIX = "parley-link"
LINK_CODE_VERSION = "1"
SECRET_LEN = 16
_KEY_LEN = 32
_SIG_LEN = 64
_MAX_DETAILS = 1024
_REF = re.compile(r"[0-9a-f]{32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Details:
    """What the primary approves: this companion, at this key index, of this account."""

    user_id: str
    device_id: str
    key_index: int
    identity: bytes
    ts: int

    def to_bytes(self) -> bytes:
        obj: dict[str, Any] = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "key_index": self.key_index,
            "identity": _b64(self.identity),
            "ts": self.ts,
        }
        return canonical(obj)

    @classmethod
    def parse(cls, raw: bytes) -> Details:
        """The details in `raw` (LinkSignatureError if they are not well formed)."""
        if len(raw) > _MAX_DETAILS:
            raise LinkSignatureError("the approval's details are too large")
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise LinkSignatureError("the approval's details are not JSON") from exc
        if not isinstance(obj, dict):
            raise LinkSignatureError("the approval's details are not an object")
        user_id, device_id = obj.get("user_id"), obj.get("device_id")
        key_index, ts, identity = obj.get("key_index"), obj.get("ts"), obj.get("identity")
        if not is_user_id(user_id) or not is_device_id(device_id):
            raise LinkSignatureError("the approval's details have bad ids")
        if not _is_int(key_index) or key_index < 1:
            raise LinkSignatureError("the approval's details have a bad key index")
        if not _is_int(ts) or ts < 0:
            raise LinkSignatureError("the approval's details have a bad timestamp")
        try:
            key = (
                base64.b64decode(str(identity), validate=True) if isinstance(identity, str) else b""
            )
        except ValueError as exc:
            raise LinkSignatureError("the approval's details have a bad identity") from exc
        if len(key) != _KEY_LEN:
            raise LinkSignatureError("the approval's details have a bad identity")
        return cls(user_id, device_id, int(key_index), key, int(ts))


def account_signature(primary: IdentityKeyPair, details: bytes) -> bytes:
    return primary.sign(ACCOUNT_PREFIX + details)


def verify_account_signature(account_identity: bytes, details: bytes, signature: bytes) -> None:
    if not verify_signature(account_identity, ACCOUNT_PREFIX + details, signature):
        raise LinkSignatureError("the account signature does not verify")


def pairing_hmac(secret: bytes, details: bytes, account_sig: bytes) -> bytes:
    return hmac.new(secret, HMAC_PREFIX + details + account_sig, hashlib.sha256).digest()


def verify_hmac(secret: bytes, details: bytes, account_sig: bytes, mac: bytes) -> None:
    if not hmac.compare_digest(pairing_hmac(secret, details, account_sig), mac):
        raise LinkSignatureError(
            "the approval does not carry this link code's secret (HMAC mismatch)"
        )


def device_signature(
    companion: IdentityKeyPair, details: bytes, account_sig: bytes, account_identity: bytes
) -> bytes:
    return companion.sign(DEVICE_PREFIX + details + account_sig + account_identity)


def verify_device_signature(
    identity: bytes,
    details: bytes,
    account_sig: bytes,
    account_identity: bytes,
    signature: bytes,
) -> None:
    data = DEVICE_PREFIX + details + account_sig + account_identity
    if not verify_signature(identity, data, signature):
        raise LinkSignatureError("the device signature does not verify")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str, length: int, what: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) != len(_b64url(bytes(length))):
        raise MalformedLinkCode(f"the link code's {what} is not {length} bytes of base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64url(data) != text:
        raise MalformedLinkCode(f"the link code's {what} is not canonical base64url")
    return data


@dataclass(frozen=True)
class LinkCode:
    """What a new device shows as a QR code (and as text) for the primary to scan."""

    ref: str  # the pairing, minted by the service (32 hex)
    device_id: str  # the new device's id, minted by the service (16 hex)
    identity: bytes  # the new device's Ed25519 identity public key
    secret: bytes  # 16 random bytes the new device made; never sent to the service

    def __post_init__(self) -> None:
        if not _REF.fullmatch(self.ref):
            raise MalformedLinkCode("the link code's pairing ref is not 32 hex characters")
        if not is_device_id(self.device_id):
            raise MalformedLinkCode("the link code's device id is not 16 hex characters")
        if len(self.identity) != _KEY_LEN:
            raise MalformedLinkCode("the link code's identity is not 32 bytes")
        if len(self.secret) != SECRET_LEN:
            raise MalformedLinkCode(f"the link code's secret is not {SECRET_LEN} bytes")

    def __str__(self) -> str:
        return ":".join(
            (
                LINK_CODE_PREFIX,
                LINK_CODE_VERSION,
                self.ref,
                self.device_id,
                _b64url(self.identity),
                _b64url(self.secret),
            )
        )

    def __repr__(self) -> str:  # the secret stays out of logs
        return f"LinkCode(ref={self.ref!r}, device_id={self.device_id!r})"

    @classmethod
    def parse(cls, text: object) -> LinkCode:
        """A link code as shown by the new device (MalformedLinkCode says what is wrong)."""
        if not isinstance(text, str):
            raise MalformedLinkCode("a link code is text")
        parts = text.strip().split(":")
        if len(parts) != 6 or parts[0] != LINK_CODE_PREFIX:
            raise MalformedLinkCode(
                "not a Parley link code (expected parley-link:1:<ref>:<device>:<identity>:<secret>)"
            )
        _, version, ref, device_id, identity, secret = parts
        if version != LINK_CODE_VERSION:
            raise MalformedLinkCode(f"link code version {version[:8]!r} is not supported")
        if not _REF.fullmatch(ref):
            raise MalformedLinkCode("the link code's pairing ref is not 32 hex characters")
        if not is_device_id(device_id):
            raise MalformedLinkCode("the link code's device id is not 16 hex characters")
        return cls(
            ref,
            device_id,
            _unb64url(identity, _KEY_LEN, "identity"),
            _unb64url(secret, SECRET_LEN, "secret"),
        )
