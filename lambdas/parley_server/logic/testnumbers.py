"""Test numbers: fictional phone numbers that sign up without a phone (dev stacks only).

A test number's code is never texted. It is derived from the stack's signing
secret, so whoever can read the secret (the deployer, or the local stack's
emulator) can compute it, and nobody else:

    code = HMAC-SHA256(secret, "parley/test-number-code/v1:" + E.164 number),
           first 8 bytes as a big-endian integer, mod 10^6, as 6 digits

Only numbers in the North American range reserved for fiction may be test
numbers: +1 NPA 555-0100 through 555-0199 (any valid area code NPA), so no real
subscriber's number can ever be signed into with a computed code. The client
SDK computes the same code (`parley.testnumbers`); tests check the two agree.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable

from parley_server.models.errors import ConfigError, InvalidPhone

__all__ = [
    "FICTIONAL_RULE",
    "code_for",
    "is_fictional",
    "normalize_test_numbers",
    "parse_test_numbers",
]

FICTIONAL_RULE = "+1 NPA 555-0100 to 555-0199 (North American numbers reserved for fiction)"
_FICTIONAL = re.compile(r"\+1[2-9][0-9]{2}5550(1[0-9]{2})")
_DOMAIN = b"parley/test-number-code/v1:"
# international form only: '+', then digits and the usual separators
_WRITTEN = re.compile(r"\+[0-9][0-9 ().-]*")


def is_fictional(e164: str) -> bool:
    """True for an E.164 number in +1 NPA 555-0100..0199."""
    return bool(_FICTIONAL.fullmatch(e164))


def code_for(secret: bytes, e164: str) -> str:
    """The 6-digit code a test number signs in with."""
    digest = hmac.new(secret, _DOMAIN + e164.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**6:06d}"


def normalize_test_numbers(numbers: Iterable[object]) -> tuple[str, ...]:
    """The numbers in E.164, sorted and without repeats; ValueError for a number
    that is not valid or not in the fictional range."""
    from parley_server.logic.otp import normalize_phone

    found: set[str] = set()
    for raw in numbers:
        if not isinstance(raw, str) or not _WRITTEN.fullmatch(raw.strip()):
            raise ValueError(f"{raw!r} is not a phone number (give strings like '+12065550100')")
        try:
            e164 = normalize_phone(raw)
        except InvalidPhone as exc:
            raise ValueError(f"{raw!r}: {exc.message}") from None
        if not is_fictional(e164):
            raise ValueError(
                f"{raw!r} is not a fictional number; test numbers are {FICTIONAL_RULE}"
            )
        found.add(e164)
    return tuple(sorted(found))


def parse_test_numbers(raw: str | None) -> frozenset[str]:
    """PARLEY_TEST_NUMBERS (a JSON list of numbers; unset or "[]": none)."""
    try:
        value = json.loads(raw or "[]")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"the test numbers are not JSON: {exc}") from exc
    if not isinstance(value, list):
        raise ConfigError("the test numbers must be a JSON list of phone numbers")
    try:
        return frozenset(normalize_test_numbers(value))
    except ValueError as exc:
        raise ConfigError(f"test numbers: {exc}") from exc
