"""One-time codes: the daily cap, the lockout after failed codes, the global and
per-country budgets, IPv6 sources counted by their /64, and refusals that never
tell a registered number from an unregistered one (moto in-process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from parley_server.config import Limits
from parley_server.logic import accounts, otp
from parley_server.logic.tokens import derive_keys
from parley_server.models.errors import InvalidCode, ParleyError, RateLimited
from tests.conftest import FakeAws
from tests.unit.conftest import Ports
from tests.unit.server.logic.test_otp import last_code, sent_sms

PHONE = "+14155552671"
OTHER = "+12025550123"
DAY = 24 * 3600
START = DAY * 20_000.0  # the start of a UTC day (and of an hour)
KEYS = derive_keys(b"k" * 64)


@dataclass
class Env(Ports):
    limits: Limits = field(default_factory=Limits)

    def request(
        self, phone: str = PHONE, *, now: float, source: str = "198.51.100.7"
    ) -> otp.OtpChallenge:
        return self.call(
            otp.request_code, phone, source=source, keys=KEYS, limits=self.limits, now=now
        )

    def verify(self, code: str, phone: str = PHONE, *, now: float) -> str:
        pair, _ = self.call(
            accounts.sign_in, phone, code, keys=KEYS, refresh_tokens=self.tokens,
            limits=self.limits, now=now,
        )  # fmt: skip
        return pair.user_id

    def fail_code(self, phone: str = PHONE, *, now: float, wrong: int = 1) -> None:
        """Ask for a code and guess it wrong `wrong` times (each answer is recorded)."""
        self.request(phone, now=now)
        right = last_code(phone)
        for i in range(1, wrong + 1):
            with pytest.raises(ParleyError):
                self.verify(f"{(int(right) + i) % 10**6:06d}", phone, now=now + 1)


@pytest.fixture
def env(aws: FakeAws) -> Env:
    return Env(aws)


def refusal(error: ParleyError) -> tuple[int, str, dict[str, Any]]:
    return error.status, error.code, error.to_dict()


def wrong_for(phone: str) -> str:
    return f"{(int(last_code(phone)) + 1) % 10**6:06d}"


# -- the daily cap ----------------------------------------------------------------------


def test_a_number_gets_at_most_its_daily_cap_of_codes_whatever_the_hour(env: Env) -> None:
    cap = env.limits.otp_daily_cap
    for n in range(cap):
        # a new hour each time, so the hourly cap never decides
        env.request(now=START + n * 3600 + 10)
    texts = len(sent_sms())

    with pytest.raises(RateLimited) as refused:
        env.request(now=START + cap * 3600 + 10)

    assert refused.value.code == "rate_limited"
    # until the end of the UTC day
    assert refused.value.retry_after == DAY - cap * 3600 - 10
    assert len(sent_sms()) == texts
    # the next day the number gets codes again
    env.request(now=START + DAY + 10)


# -- the lockout ------------------------------------------------------------------------


def test_three_failed_codes_lock_the_number_for_a_day(env: Env) -> None:
    # one killed by five wrong guesses, one replaced after a wrong guess, one expired
    env.fail_code(now=START, wrong=env.limits.otp_max_attempts)
    env.fail_code(now=START + 60)
    env.fail_code(now=START + 120)
    third = START + 120
    # the third failed code may still be tried (it keeps its attempts) ...
    with pytest.raises(InvalidCode) as still:
        env.verify(wrong_for(PHONE), now=third + 2)
    assert still.value.details["attempts_left"] == 3
    # ... but once it is past, the number is locked
    texts = len(sent_sms())
    with pytest.raises(RateLimited) as locked:
        env.request(now=third + 400)
    assert locked.value.code == "number_locked"
    assert locked.value.retry_after == DAY - 400 + 1  # a day after the third failure
    assert len(sent_sms()) == texts
    with pytest.raises(RateLimited) as refused:
        env.verify(last_code(), now=third + 401)
    assert refused.value.code == "number_locked"
    # a day after the third failure, codes flow again
    env.request(now=third + 1 + DAY)
    assert env.verify(last_code(), now=third + 2 + DAY)


def test_the_code_that_makes_the_lock_locks_the_number_when_it_dies(env: Env) -> None:
    env.fail_code(now=START)
    env.fail_code(now=START + 60)
    env.fail_code(now=START + 120, wrong=env.limits.otp_max_attempts - 1)

    with pytest.raises(RateLimited) as last:
        env.verify(wrong_for(PHONE), now=START + 130)

    assert last.value.code == "number_locked"
    with pytest.raises(RateLimited) as asked:
        env.request(now=START + 200)
    assert asked.value.code == "number_locked"


def test_while_the_third_failed_code_lives_no_new_code_is_texted_but_it_still_works(
    env: Env,
) -> None:
    env.fail_code(now=START)
    env.fail_code(now=START + 60)
    env.fail_code(now=START + 120)
    right = last_code()
    texts = len(sent_sms())

    with pytest.raises(RateLimited) as asked:
        env.request(now=START + 200)

    assert asked.value.code == "number_locked"
    assert len(sent_sms()) == texts
    # the refused request left the live code alone: used, it has not failed after all
    assert env.verify(right, now=START + 201)
    env.request(now=START + 240)
    # other numbers are not affected either way
    env.fail_code(OTHER, now=START + 130)
    env.request(OTHER, now=START + 202)


def test_a_code_used_after_a_wrong_guess_has_not_failed(env: Env) -> None:
    for n in range(env.limits.otp_lockout_failures + 1):
        now = START + n * 60
        env.request(now=now)
        with pytest.raises(InvalidCode):
            env.verify(wrong_for(PHONE), now=now + 1)
        assert env.verify(last_code(), now=now + 2)
    env.request(now=START + 3600)


def test_failed_codes_older_than_the_lockout_span_are_forgotten(env: Env) -> None:
    env.fail_code(now=START)
    env.fail_code(now=START + 60)
    env.fail_code(now=START + DAY + 61)  # the first two are more than a day old

    env.request(now=START + DAY + 200)


# -- the global and per-country budgets -----------------------------------------------


def test_the_global_hourly_budget_caps_codes_to_all_numbers(env: Env) -> None:
    env.limits = Limits(otp_global_hourly=3)
    numbers = ["+14155550101", "+447911123456", "+33612345678", "+12025550123"]
    for n, phone in enumerate(numbers[:3]):
        env.request(phone, now=START + n, source=f"203.0.113.{n + 1}")

    with pytest.raises(RateLimited) as refused:
        env.request(numbers[3], now=START + 10, source="203.0.113.99")

    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after == 3600 - 10
    assert [phone for phone, _ in sent_sms()] == numbers[:3]
    assert env.request(numbers[3], now=START + 3600)  # the next hour


def test_each_country_calling_code_has_its_own_hourly_budget(env: Env) -> None:
    env.limits = Limits(otp_per_country_hourly=2, otp_country_hourly_overrides=((44, 3),))
    french = ["+33612345601", "+33612345602", "+33612345603"]
    british = ["+447911123401", "+447911123402", "+447911123403", "+447911123404"]
    for n, phone in enumerate(french[:2] + british[:3]):
        env.request(phone, now=START + n, source=f"203.0.113.{n + 1}")

    with pytest.raises(RateLimited):
        env.request(french[2], now=START + 10, source="203.0.113.50")
    with pytest.raises(RateLimited):
        env.request(british[3], now=START + 11, source="203.0.113.51")

    # another country is unaffected, and a refused number is not held to its own caps
    env.request("+14155550101", now=START + 12, source="203.0.113.52")
    env.request(french[2], now=START + 3600, source="203.0.113.50")


def test_a_request_refused_by_a_budget_uses_up_none_of_the_numbers_allowance(env: Env) -> None:
    env.limits = Limits(otp_global_hourly=1, otp_hourly_cap=2, otp_resend_cooldown_s=1)
    env.request(OTHER, now=START)
    for n in range(3):
        with pytest.raises(RateLimited):
            env.request(now=START + 10 + n * 2)
    env.limits = Limits(otp_global_hourly=10, otp_hourly_cap=2, otp_resend_cooldown_s=1)
    env.request(now=START + 20)
    env.request(now=START + 22)


# -- source addresses -------------------------------------------------------------------


def test_ipv6_sources_are_counted_by_their_64_and_ipv4_by_address(env: Env) -> None:
    env.limits = Limits(otp_per_source_hourly=3)
    numbers = iter(f"+1415555{2600 + i:04d}" for i in range(20))
    for n in range(3):
        env.request(next(numbers), now=START + n, source=f"2001:db8:1:2::{n + 1:x}")

    with pytest.raises(RateLimited):
        env.request(next(numbers), now=START + 5, source="2001:db8:1:2:ffff:ffff:ffff:ffff")

    env.request(next(numbers), now=START + 6, source="2001:db8:1:3::1")  # another /64
    for n in range(4):  # IPv4: each address its own, even in one /24
        env.request(next(numbers), now=START + 10 + n, source=f"198.51.100.{n + 1}")
    for n in range(2):
        env.request(next(numbers), now=START + 20 + n, source="198.51.100.1")
    # an IPv4-mapped IPv6 address is its IPv4 address
    with pytest.raises(RateLimited):
        env.request(next(numbers), now=START + 30, source="::ffff:198.51.100.1")


# -- registered or not: the same answers ------------------------------------------------


def test_every_refusal_is_the_same_for_a_registered_and_an_unregistered_number(
    env: Env,
) -> None:
    registered, unregistered = PHONE, OTHER  # both North American numbers
    env.request(registered, now=START - DAY)
    assert env.verify(last_code(registered), registered, now=START - DAY + 1)

    def answers(phone: str, source: str, at: float) -> list[tuple[int, str, dict[str, Any]]]:
        seen = []
        env.limits = Limits(otp_daily_cap=2)
        env.request(phone, now=at, source=source)
        env.request(phone, now=at + 3600, source=source)
        with pytest.raises(RateLimited) as daily:
            env.request(phone, now=at + 7200, source=source)  # the daily cap
        seen.append(refusal(daily.value))
        env.limits = Limits()
        day = at + DAY
        env.fail_code(phone, now=day, wrong=2)
        env.fail_code(phone, now=day + 60)
        env.fail_code(phone, now=day + 120, wrong=env.limits.otp_max_attempts)
        for ask in range(2):
            with pytest.raises(RateLimited) as locked:
                env.request(phone, now=day + 200 + ask, source=source)
            seen.append(refusal(locked.value))
        with pytest.raises(RateLimited) as verify_locked:
            env.verify("123456", phone, now=day + 300)
        seen.append(refusal(verify_locked.value))
        return seen

    assert answers(registered, "203.0.113.1", START) == answers(
        unregistered, "203.0.113.2", START + 3 * DAY
    )
