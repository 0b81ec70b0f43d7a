"""Errors the SDK raises. Catch `ParleyClientError` for all of them.

Server answers keep the service's `code` (the contract); never match on text.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccountGone",
    "ApiError",
    "AuthenticationError",
    "ConfigurationError",
    "ContactNotFound",
    "DeviceListError",
    "IdentityKeyChanged",
    "LinkError",
    "LinkExpired",
    "LinkRefused",
    "LinkSignatureError",
    "MalformedLinkCode",
    "MessageTooLarge",
    "NotFound",
    "NotRegistered",
    "ParleyClientError",
    "PassphraseRequired",
    "PinBackoff",
    "RateLimited",
    "RegistrationLocked",
    "ServiceMismatch",
    "ServiceUnavailable",
    "StoreLocked",
    "UnlistedDevice",
    "WrongPassphrase",
]


class ParleyClientError(Exception):
    """Base of every error the SDK raises."""


class ConfigurationError(ParleyClientError):
    """Endpoints or the profile directory are missing or unusable."""


class ServiceMismatch(ConfigurationError):
    """The profile belongs to another service than the endpoints name (see parley.service)."""


class StoreLocked(ParleyClientError):
    """The profile's secrets cannot be opened (no keyring key, no passphrase, damage)."""


class PassphraseRequired(StoreLocked):
    """The profile is (or must be) protected by a passphrase and none was given."""


class WrongPassphrase(StoreLocked):
    """The passphrase does not open this profile."""


class NotRegistered(ParleyClientError):
    """The profile has no account yet: sign up first."""


class ContactNotFound(ParleyClientError):
    """No contact by that name, phone or user id."""


class MessageTooLarge(ParleyClientError):
    """The message would exceed the service's size limits."""


class IdentityKeyChanged(ParleyClientError):
    """A contact's identity key changed and the caller asked to be strict about it."""


class DeviceListError(ContactNotFound):
    """A signed device list is malformed, forged, rolled back or signed by another
    account identity than the one pinned: nothing is encrypted for that account
    (a ContactNotFound: the account has no device this client can trust)."""


class UnlistedDevice(DeviceListError):
    """The service insists on a device that is not on the account's signed device
    list: the send fails (`SendFailed` code "unlisted_device")."""

    def __init__(self, user_id: str, device_ids: tuple[str, ...]) -> None:
        super().__init__(
            f"the service insists on device(s) {', '.join(device_ids)} of {user_id},"
            " which are not on their signed device list"
        )
        self.user_id = user_id
        self.device_ids = device_ids


class LinkError(ParleyClientError):
    """Linking a device failed; the subclasses say why."""


class MalformedLinkCode(LinkError, ValueError):
    """The text is not a Parley link code (or one this version cannot read)."""


class LinkExpired(LinkError):
    """The pairing expired (or was used) before it was completed: start again."""


class LinkRefused(LinkError):
    """The service or the primary refused the link (not the primary, too many devices,
    a pairing already used)."""


class LinkSignatureError(LinkError):
    """An approval or consent does not verify: wrong secret, bad signature, or details
    naming another device or identity. Nothing was linked."""


class ApiError(ParleyClientError):
    """The service answered with an error: `status`, `code` and `message` as sent."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class AuthenticationError(ApiError):
    """401/403: credentials missing, wrong, expired or revoked (or a wrong code)."""


class NotFound(ApiError):
    """404: no such user, key bundle or resource."""


class RateLimited(ApiError):
    """429: try again after `retry_after` seconds."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: float = 1.0,
    ) -> None:
        super().__init__(status, code, message, details)
        self.retry_after = retry_after


class RegistrationLocked(ApiError):
    """423 registration_locked: the number's account has a registration lock; sign up
    again with its PIN. `attempts_left` wrong PINs remain before waits begin;
    `retry_after` (seconds) is set when a wait applies."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
        attempts_left: int | None = None,
    ) -> None:
        super().__init__(status, code, message, details)
        self.retry_after = retry_after
        self.attempts_left = attempts_left


class PinBackoff(RateLimited):
    """429 pin_backoff: too many wrong registration-lock PINs; wait `retry_after` seconds."""


class ServiceUnavailable(ApiError):
    """5xx or no answer: nothing changed; try again later."""


class AccountGone(AuthenticationError):
    """The service no longer knows this profile's account or device; the message says
    why in plain words and what to do. `reason` is one of:

    - "signed_out": this device was signed out by its owner (from this device or
      another); the account still exists;
    - "moved": this device was signed out because the account's number was registered
      on another phone (the owner's new phone, or someone with a code for the number);
    - "unknown": the service does not know the sign-in at all: the account was
      deleted, the sign-in expired unused, or the service's data was reset;
    - "forgotten": the local stack the profile signed up with has since started empty
      (`--fresh`, `python -m local reset`, another `--state-dir`).
    """

    def __init__(
        self,
        reason: str,
        explanation: str,
        *,
        status: int = 401,
        code: str = "invalid_token",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status, code, explanation, details)
        self.args = (explanation,)
        self.reason = reason

    def __str__(self) -> str:
        return self.message
