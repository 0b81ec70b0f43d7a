"""Phone numbers and one-time codes.

A code is 6 digits from a CSPRNG, stored only as HMAC-SHA256(otp key, phone:code),
lives 5 minutes, allows 5 attempts, and is deleted when used. Requests have a
cool-down, a per-phone hourly and daily cap, a per-address cap (an IPv6 address
counted by its /64), and hourly budgets per country calling code and for all
numbers together (SMS pumping), all enforced by conditional writes in DynamoDB.
A request refused by one of them uses up none of the others but the address's.

Lockout: a code that got a wrong guess and was never used has failed. It is
counted at its first wrong guess (so a code left to expire cannot escape) and
forgiven if it is then used. `otp_lockout_failures` failed codes within
`otp_lockout_s` lock the number for `otp_lockout_s` after the last of them: no
code is texted and none is accepted (NumberLocked). The code whose failure
completes the count keeps its remaining attempts while it lives; the lock takes
hold when it dies. Nothing here looks at accounts, so every answer is the same
for a number with an account and one without.

A test number (dev stacks only, logic/testnumbers.py) gets the code derived from
the signing secret instead: nothing is texted, so no cap or budget counts it;
the cool-down, the lifetime, the attempts and the lockout are the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Collection
from typing import TYPE_CHECKING

import msgspec

from parley_server.logic.testnumbers import code_for
from parley_server.models.errors import (
    BadRequest,
    DependencyUnavailable,
    InvalidCode,
    InvalidPhone,
    NumberLocked,
    RateLimited,
    TooManyAttempts,
)

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.logic.tokens import Keys
    from parley_server.store.otp import OtpStore
    from parley_server.store.ratelimits import RateLimiter, Strikes
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
    "source_key",
    "use_code",
    "verify_code",
]

CODE_DIGITS = 6
_CODE = re.compile(r"[0-9]{6}")
_MAX_PHONE_INPUT = 32
# Numbers that cannot receive a code, or that cost the sender money (toll fraud):
# names of phonenumbers.PhoneNumberType.
_REFUSED_TYPES = ("PREMIUM_RATE", "SHARED_COST", "TOLL_FREE", "UAN", "PAGER", "VOICEMAIL")

# phonenumbers is imported where a number is read, not with this module: it is about
# 20 ms of the HTTP API's cold start, and only the routes that take a number (a code
# asked for or checked, a number looked up, an account deleted) read one.


class OtpChallenge(msgspec.Struct, frozen=True):
    """A code is on its way."""

    phone: str
    expires_in: int
    retry_after: int


def normalize_phone(raw: str) -> str:
    """E.164 form of an international number ("+44 7700 900123" -> "+447700900123")."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_PHONE_INPUT:
        raise InvalidPhone("give the phone number in international form, e.g. +447700900123")
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(
            "give the phone number in international form, e.g. +447700900123"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("this is not a valid phone number")
    refused = {getattr(phonenumbers.PhoneNumberType, name) for name in _REFUSED_TYPES}
    if phonenumbers.number_type(number) in refused:
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
    _refuse_if_locked(phone, _strikes(limiter, phone, limits, now), limits, now)
    if phone in test_numbers:
        return _start_test_code(
            phone, keys=keys, otps=otps, limits=limits, now=now, purpose=purpose
        )
    source = source_key(source)
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
    counted: list[tuple[str, str, int]] = []
    try:
        for name, subject, limit, window_s in _caps(phone, limits):
            limiter.hit(name, subject, limit=limit, window_s=window_s, now=now)
            counted.append((name, subject, window_s))
        sms.send(phone, _TEXTS[purpose].format(code=code))
    except Exception as exc:
        # a code that was never sent must not stay usable, nor hold the cool-down,
        # nor use up an allowance (nor the address's, when the text failed)
        otps.consume(phone, digest)
        if counted and not isinstance(exc, RateLimited):
            counted.append(("otp-source", source, 3600))
        _give_back(limiter, counted, now)
        raise
    return OtpChallenge(
        phone=phone, expires_in=limits.otp_ttl_s, retry_after=limits.otp_resend_cooldown_s
    )


# the per-phone caps first, then the shared budgets: a number already refused uses
# up none of the budgets every other number shares
def _caps(phone: str, limits: Limits) -> list[tuple[str, str, int, int]]:
    import phonenumbers

    country = phonenumbers.parse(phone, None).country_code or 0
    per_country = dict(limits.otp_country_hourly_overrides).get(
        country, limits.otp_per_country_hourly
    )
    return [
        ("otp-phone", phone, limits.otp_hourly_cap, 3600),
        ("otp-phone-day", phone, limits.otp_daily_cap, 24 * 3600),
        ("otp-country", str(country), per_country, 3600),
        ("otp-global", "all", limits.otp_global_hourly, 3600),
    ]


def source_key(source: str) -> str:
    """What a source address is counted as: an IPv4 address itself, an IPv6 address
    its /64 (one subscriber's allocation: the rest of it costs nothing to use), an
    IPv4-mapped IPv6 address its IPv4 address, anything else as it is."""
    try:
        address = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return source
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


_FAILED = "otp-failed"


def _strikes(limiter: RateLimiter | None, phone: str, limits: Limits, now: float) -> Strikes | None:
    if limiter is None:
        return None
    return limiter.strikes(
        _FAILED,
        phone,
        threshold=limits.otp_lockout_failures,
        span_s=limits.otp_lockout_s,
        now=now,
    )


def _locked_until(strikes: Strikes | None, limits: Limits) -> float | None:
    if strikes is None or strikes.count < limits.otp_lockout_failures:
        return None
    return strikes.last_at + limits.otp_lockout_s


def _locked(until: float, now: float) -> NumberLocked:
    return NumberLocked(
        "too many failed codes for this number; try again later",
        retry_after=int(until - now + 0.999),
        limit="otp-locked",
    )


def _refuse_if_locked(phone: str, strikes: Strikes | None, limits: Limits, now: float) -> None:
    until = _locked_until(strikes, limits)
    if until is not None:
        raise _locked(until, now)


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


def _give_back(limiter: RateLimiter, counted: list[tuple[str, str, int]], now: float) -> None:
    try:
        for name, subject, window_s in counted:
            limiter.give_back(name, subject, window_s=window_s, now=now)
    except DependencyUnavailable:
        pass  # best effort: counting one too many errs on the safe side


class CheckedCode(msgspec.Struct, frozen=True):
    """A right code, not used yet: `use_code` spends it."""

    phone: str
    code_hash: bytes
    wrong: int = 0  # wrong guesses the code had (each made it a failed code until used)


def verify_code(
    raw_phone: str,
    code: str,
    *,
    keys: Keys,
    otps: OtpStore,
    limits: Limits,
    now: float,
    purpose: str = SIGN_IN,
    limiter: RateLimiter | None = None,
) -> str:
    """Use the phone's code; the E.164 phone when right.

    Malformed input is refused without spending an attempt. A wrong code spends
    one; the last wrong one kills the code (TooManyAttempts). A right code is
    deleted as it is accepted, so it works once. A code asked for another
    purpose is a wrong code.
    """
    checked = check_code(
        raw_phone,
        code,
        keys=keys,
        otps=otps,
        limits=limits,
        now=now,
        purpose=purpose,
        limiter=limiter,
    )
    return use_code(checked, otps=otps, limiter=limiter)


def use_code(checked: CheckedCode, *, otps: OtpStore, limiter: RateLimiter | None = None) -> str:
    """Spend a checked code (delete it, if it is still the phone's live one); the
    E.164 phone. Of two requests with the same code only one gets this far. A code
    used after wrong guesses has not failed after all: its strike is taken back."""
    if not otps.consume(checked.phone, checked.code_hash):
        raise InvalidCode("the code is wrong, expired or already used")
    if checked.wrong and limiter is not None:
        # best effort: one failure too many errs on the safe side
        with contextlib.suppress(DependencyUnavailable):
            limiter.forgive(_FAILED, checked.phone)
    return checked.phone


def check_code(
    raw_phone: str,
    code: str,
    *,
    keys: Keys,
    otps: OtpStore,
    limits: Limits,
    now: float,
    purpose: str = SIGN_IN,
    limiter: RateLimiter | None = None,
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
    strikes = _strikes(limiter, phone, limits, now)
    locked_until = _locked_until(strikes, limits)
    try:
        attempt = otps.attempt(
            phone,
            now=now,
            max_attempts=limits.otp_max_attempts,
            cooldown_s=limits.otp_resend_cooldown_s,
        )
    except (InvalidCode, TooManyAttempts) as exc:
        # no live code: a locked number says so, whatever the reason
        if locked_until is not None:
            raise _locked(locked_until, now) from exc
        raise
    # while locked, only the code whose failure completed the count may be tried
    if (
        locked_until is not None
        and strikes is not None
        and (not attempt.wrong or strikes.count > limits.otp_lockout_failures)
    ):
        raise _locked(locked_until, now)
    if hmac.compare_digest(attempt.code_hash, code_hash(keys, phone, code, purpose)):
        return CheckedCode(phone=phone, code_hash=attempt.code_hash, wrong=attempt.wrong)
    if limiter is not None and otps.mark_wrong(phone, attempt.code_hash) == 1:
        # the code's first wrong guess: it has failed, unless it is used after all
        strikes = limiter.strike(
            _FAILED,
            phone,
            threshold=limits.otp_lockout_failures,
            span_s=limits.otp_lockout_s,
            now=now,
        )
    if attempt.attempts_left <= 0:
        # the code is dead: a lock it completed holds from now
        _refuse_if_locked(phone, strikes, limits, now)
        raise TooManyAttempts(
            "too many wrong codes; ask for a new one",
            retry_after=int(attempt.created_at + limits.otp_resend_cooldown_s - now + 0.999),
        )
    raise InvalidCode(
        "the code is wrong, expired or already used", attempts_left=attempt.attempts_left
    )
