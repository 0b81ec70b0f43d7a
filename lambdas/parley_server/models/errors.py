"""One error hierarchy for the server.

Logic raises these; exactly one place maps them to an HTTP answer
(`handlers.http_api`) and one to a WebSocket `error` event
(`handlers._ws`). Nobody matches on message text: the `code` is the contract.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "ConfigError",
    "Conflict",
    "DependencyUnavailable",
    "DeviceSignedOut",
    "Forbidden",
    "GroupChanged",
    "InvalidCode",
    "InvalidPhone",
    "InvalidToken",
    "MismatchedDevices",
    "NotFound",
    "NumberLocked",
    "ParleyError",
    "PayloadTooLarge",
    "PinBackoff",
    "RateLimited",
    "RegistrationLocked",
    "ReusedRefreshToken",
    "SmsUnavailable",
    "TooManyAttempts",
    "Unauthorized",
    "UnsupportedMediaType",
]


class ParleyError(Exception):
    """Base of every error the service answers with."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The `error` object of the wire protocol."""
        return {"code": self.code, "message": self.message, **self.details}


class ConfigError(ParleyError):
    """The function is misconfigured (a deploy problem, never the caller's)."""

    status = 500
    code = "misconfigured"


class BadRequest(ParleyError):
    """The input is malformed or breaks a rule."""

    status = 400
    code = "invalid_request"


class InvalidPhone(BadRequest):
    """The phone number cannot be parsed or is not a valid number."""

    code = "invalid_phone"


class PayloadTooLarge(BadRequest):
    """A body, upload or batch is larger than allowed."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(BadRequest):
    """A body of another content type than the route reads (JSON)."""

    status = 415
    code = "unsupported_media_type"


class Unauthorized(ParleyError):
    """No valid credentials."""

    status = 401
    code = "unauthorized"


class InvalidToken(Unauthorized):
    """A token is malformed, forged, expired, spent or revoked."""

    code = "invalid_token"


class DeviceSignedOut(InvalidToken):
    """A refresh token of a device that has been signed out (its account still exists)."""

    code = "device_signed_out"


class ReusedRefreshToken(InvalidToken):
    """A spent refresh token was presented again: its family must be revoked and
    the device it was issued to signed out."""

    def __init__(self, *, family: str, user_id: str, device_id: str) -> None:
        super().__init__("refresh token already used; this device is signed out")
        self.family = family
        self.user_id = user_id
        self.device_id = device_id


class InvalidCode(Unauthorized):
    """A one-time code is wrong, expired or already used."""

    code = "invalid_code"


class Forbidden(ParleyError):
    """Authenticated, but not allowed to do this."""

    status = 403
    code = "forbidden"


class NotFound(ParleyError):
    """The thing asked for does not exist (or is not visible to the caller)."""

    status = 404
    code = "not_found"


class Conflict(ParleyError):
    """The request conflicts with the current state."""

    status = 409
    code = "conflict"


class GroupChanged(Conflict):
    """A group change lost a race with another change; recompute it and try again."""

    code = "group_changed"


class MismatchedDevices(Conflict):
    """A send's device set differs from the recipient's registered devices."""

    code = "mismatched_devices"

    def __init__(self, missing: list[str], extra: list[str]) -> None:
        super().__init__(
            "payloads do not match the recipient's devices",
            missing=sorted(missing),
            extra=sorted(extra),
        )


class RateLimited(ParleyError):
    """Too many requests; `retry_after` seconds tells when to try again."""

    status = 429
    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: int, code: str | None = None, limit: str = ""
    ) -> None:
        super().__init__(message, code=code, retry_after=max(1, int(retry_after)))
        self.retry_after = max(1, int(retry_after))
        # which limit refused (for metrics; never on the wire)
        self.limit = limit


class TooManyAttempts(RateLimited):
    """A one-time code was guessed wrongly too often; it is dead."""

    code = "too_many_attempts"


class NumberLocked(RateLimited):
    """Too many failed one-time codes for a phone number: it gets no code, and no
    code for it is accepted, for `retry_after` seconds."""

    code = "number_locked"


class PinBackoff(RateLimited):
    """Too many wrong registration-lock PINs: the next try must wait `retry_after` seconds."""

    code = "pin_backoff"


class RegistrationLocked(ParleyError):
    """The number's account has a registration lock: signing in again needs its PIN.

    `attempts_left`: wrong PINs that may still be tried without waiting;
    `retry_after`: seconds before the next PIN may be tried (once those are used up).
    """

    status = 423
    code = "registration_locked"

    def __init__(
        self, message: str, *, retry_after: int | None = None, attempts_left: int | None = None
    ) -> None:
        details: dict[str, Any] = {}
        if retry_after is not None:
            details["retry_after"] = max(1, int(retry_after))
        if attempts_left is not None:
            details["attempts_left"] = max(0, int(attempts_left))
        super().__init__(message, **details)
        self.retry_after = details.get("retry_after")
        self.attempts_left = details.get("attempts_left")


class DependencyUnavailable(ParleyError):
    """An AWS dependency failed; the request changed nothing and may be retried."""

    status = 503
    code = "service_unavailable"


class SmsUnavailable(DependencyUnavailable):
    """A text message could not be sent (same answer; counted apart for operators)."""
