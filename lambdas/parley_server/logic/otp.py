"""Phone numbers and one-time codes.

A code is 6 digits from a CSPRNG, stored only as HMAC-SHA256(otp key, phone:code),
lives 5 minutes, allows 5 attempts, and is deleted when used. Requests have a
cool-down and a per-phone hourly cap (and a per-address cap against SMS pumping),
all enforced by conditional writes in DynamoDB.

A test number (dev stacks only, logic/testnumbers.py) gets the code derived from
the signing secret instead: nothing is texted, so neither hourly cap counts it;
the cool-down, the lifetime and the attempts are the same.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import phonenumbers
from phonenumbers import PhoneNumberType

from parley_server.logic.testnumbers import code_for
from parley_server.models.errors import (
    BadRequest,
    DependencyUnavailable,
    InvalidCode,
    InvalidPhone,
    TooManyAttempts,
)

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.logic.tokens import Keys
    from parley_server.store.otp import OtpStore
    from parley_server.store.ratelimits import RateLimiter
    from parley_server.store.sms import SmsSender

__all__ = [
    "CODE_DIGITS",
    "DELETE_ACCOUNT",
    "PURPOSES",
    "SIGN_IN",
    "CheckedCode",
    "OtpChallenge",
    "check_code",
    "code_hash",
    "normalize_phone",
    "request_code",
    "use_code",
    "verify_code",
]

CODE_DIGITS = 6
_CODE = re.compile(r"[0-9]{6}")
_MAX_PHONE_INPUT = 32
# Numbers that cannot receive a code, or that cost the sender money (toll fraud).
_REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.UAN,
    PhoneNumberType.PAGER,
    PhoneNumberType.VOICEMAIL,
}


@dataclass(frozen=True)
class OtpChallenge:
    """A code is on its way."""

    phone: str
    expires_in: int
    retry_after: int


def normalize_phone(raw: str) -> str:
    """E.164 form of an international number ("+44 7700 900123" -> "+447700900123")."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_PHONE_INPUT:
        raise InvalidPhone("give the phone number in international form, e.g. +447700900123")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(
            "give the phone number in international form, e.g. +447700900123"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("this is not a valid phone number")
    if phonenumbers.number_type(number) in _REFUSED_TYPES:
        raise InvalidPhone("this kind of number cannot receive codes")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# What a code is for. A code asked for one purpose does not work for the other: a
# sign-in code someone was tricked into passing on cannot delete the account, and
# the text of a deletion code says what it does.
SIGN_IN = "sign_in"
DELETE_ACCOUNT = "delete_account"
PURPOSES = (SIGN_IN, DELETE_ACCOUNT)
_TEXTS = {
    SIGN_IN: "Your Parley code is {code}",
    # the code comes last, as in the sign-in text
    DELETE_ACCOUNT: (
        "Share this with nobody: it deletes your Parley account."
        " Your code to DELETE your account is {code}"
    ),
}


def code_hash(keys: Keys, phone: str, code: str, purpose: str = SIGN_IN) -> bytes:
    """The keyed hash a code is stored as (':' never occurs in E.164: no ambiguity).
    A sign-in code hashes as it always has; any other purpose is bound in."""
    message = f"{phone}:{code}" if purpose == SIGN_IN else f"{phone}:{code}:{purpose}"
    return hmac.new(keys.otp, message.encode(), hashlib.sha256).digest()


def request_code(
    raw_phone: str,
    *,
    source: str,
    keys: Keys,
    otps: OtpStore,
    sms: SmsSender,
    limiter: RateLimiter,
    limits: Limits,
    now: float,
    test_numbers: Collection[str] = frozenset(),
    purpose: str = SIGN_IN,
) -> OtpChallenge:
    """Send a fresh code to the phone, replacing any earlier one.

    A number in `test_numbers` gets its derived code and no text message. The
    code works only for `purpose` (one of PURPOSES).
    """
    phone = normalize_phone(raw_phone)
    if purpose not in PURPOSES:
        raise BadRequest(f"purpose must be one of {', '.join(PURPOSES)}", field="purpose")
    if phone in test_numbers:
        return _start_test_code(
            phone, keys=keys, otps=otps, limits=limits, now=now, purpose=purpose
        )
    limiter.hit("otp-source", source, limit=limits.otp_per_source_hourly, window_s=3600, now=now)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    digest = code_hash(keys, phone, code, purpose)
    # the conditional put is the cool-down: it refuses while the last code is young
    otps.start(
        phone,
        digest,
        now=now,
        ttl_s=limits.otp_ttl_s,
        cooldown_s=limits.otp_resend_cooldown_s,
    )
    counted = False
    try:
        limiter.hit("otp-phone", phone, limit=limits.otp_hourly_cap, window_s=3600, now=now)
        counted = True
        sms.send(phone, _TEXTS[purpose].format(code=code))
    except Exception:
        # a code that was never sent must not stay usable, nor hold the cool-down,
        # nor use up the hour's allowance of the phone or the address
        otps.consume(phone, digest)
        if counted:
            _give_back(limiter, phone, source, now)
        raise
    return OtpChallenge(
        phone=phone, expires_in=limits.otp_ttl_s, retry_after=limits.otp_resend_cooldown_s
    )


def _start_test_code(
    phone: str, *, keys: Keys, otps: OtpStore, limits: Limits, now: float, purpose: str = SIGN_IN
) -> OtpChallenge:
    """A test number's challenge: the derived code, stored like any other; no SMS,
    so nothing counts toward the hourly caps (which bound SMS spend)."""
    otps.start(
        phone,
        code_hash(keys, phone, code_for(keys.access, phone), purpose),
        now=now,
        ttl_s=limits.otp_ttl_s,
        cooldown_s=limits.otp_resend_cooldown_s,
    )
    return OtpChallenge(
        phone=phone, expires_in=limits.otp_ttl_s, retry_after=limits.otp_resend_cooldown_s
    )


def _give_back(limiter: RateLimiter, phone: str, source: str, now: float) -> None:
    try:
        limiter.give_back("otp-phone", phone, window_s=3600, now=now)
        limiter.give_back("otp-source", source, window_s=3600, now=now)
    except DependencyUnavailable:
        pass  # best effort: counting one too many errs on the safe side


@dataclass(frozen=True)
class CheckedCode:
    """A right code, not used yet: `use_code` spends it."""

    phone: str
    code_hash: bytes


def verify_code(
    raw_phone: str,
    code: str,
    *,
    keys: Keys,
    otps: OtpStore,
    limits: Limits,
    now: float,
    purpose: str = SIGN_IN,
) -> str:
    """Use the phone's code; the E.164 phone when right.

    Malformed input is refused without spending an attempt. A wrong code spends
    one; the last wrong one kills the code (TooManyAttempts). A right code is
    deleted as it is accepted, so it works once. A code asked for another
    purpose is a wrong code.
    """
    checked = check_code(
        raw_phone, code, keys=keys, otps=otps, limits=limits, now=now, purpose=purpose
    )
    return use_code(checked, otps=otps)


def use_code(checked: CheckedCode, *, otps: OtpStore) -> str:
    """Spend a checked code (delete it, if it is still the phone's live one); the
    E.164 phone. Of two requests with the same code only one gets this far."""
    if otps.consume(checked.phone, checked.code_hash):
        return checked.phone
    raise InvalidCode("the code is wrong, expired or already used")


def check_code(
    raw_phone: str,
    code: str,
    *,
    keys: Keys,
    otps: OtpStore,
    limits: Limits,
    now: float,
    purpose: str = SIGN_IN,
) -> CheckedCode:
    """Check the phone's code without using it up (`use_code` does that, once what
    else the request needs has passed, e.g. the registration lock).

    Every check spends an attempt, right or wrong, so a code that is checked but
    not used still allows only `otp_max_attempts` checks in its lifetime; the
    rest is as `verify_code`.
    """
    phone = normalize_phone(raw_phone)
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise BadRequest(f"the code is {CODE_DIGITS} digits")
    attempt = otps.attempt(
        phone,
        now=now,
        max_attempts=limits.otp_max_attempts,
        cooldown_s=limits.otp_resend_cooldown_s,
    )
    if hmac.compare_digest(attempt.code_hash, code_hash(keys, phone, code, purpose)):
        return CheckedCode(phone=phone, code_hash=attempt.code_hash)
    if attempt.attempts_left <= 0:
        raise TooManyAttempts(
            "too many wrong codes; ask for a new one",
            retry_after=int(attempt.created_at + limits.otp_resend_cooldown_s - now + 0.999),
        )
    raise InvalidCode(
        "the code is wrong, expired or already used", attempts_left=attempt.attempts_left
    )
