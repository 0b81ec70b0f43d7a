"""Attack: guessing a one-time code, and pumping SMS through the sign-in door.

Through the HttpApi handler with its exact environment (moto in-process), the
clock moved by replacing the handler's one clock (`http_api._now`).

- Brute force: a code allows 5 tries in all, sequential or all at once (each
  guess then runs in an environment of its own: tests/reliability/atomic.py);
  the right code after 5 wrong ones is refused. Asking for new codes buys 5 tries
  each, but the per-phone hourly cap holds the whole hour to 25 tries, and the
  third failed code locks the number for a day: no code is texted, none accepted.
- SMS pumping: one address asking codes for many numbers is cut off at 20 an
  hour (an IPv6 address counted by its /64); one number gets at most 5 an hour;
  a country calling code and all numbers together have hourly budgets; numbers
  that cost the sender money are refused; nothing refused is ever texted.
- Enumeration: every one of these refusals is the same for a number with an
  account and one without.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.handlers import http_api
from parley_server.logic import otp
from parley_server.logic.tokens import derive_keys
from parley_server.models.errors import InvalidCode, TooManyAttempts
from parley_server.store.otp import OtpStore
from tests.conftest import FakeAws
from tests.integration.test_http_harness import Answer, call, sms_code
from tests.reliability.atomic import AtomicClient, run_together

PHONE = "+14155552671"
SECRET = b"k" * 64  # the signing secret of the `aws` fixture
LIMITS = Limits()  # the documented defaults, which the `aws` fixture runs with
MAX_ATTEMPTS = LIMITS.otp_max_attempts
HOURLY_CAP = LIMITS.otp_hourly_cap
COOLDOWN_S = LIMITS.otp_resend_cooldown_s
PER_SOURCE = LIMITS.otp_per_source_hourly


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # the start of an hour window, so a test's steps stay inside one window
        self.now = float(int(time.time()) // 3600 * 3600 + 5)
        monkeypatch.setattr(http_api, "_now", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(function_env: Any, monkeypatch: pytest.MonkeyPatch) -> Clock:
    function_env("HttpApi")
    return Clock(monkeypatch)


def tight_clock(
    aws: FakeAws, function_env: Any, monkeypatch: pytest.MonkeyPatch, **limits: int
) -> Clock:
    """The handler with small limits (PARLEY_LIMITS), so a cap is reached in a few requests."""
    aws.settings[Setting.LIMITS] = json.dumps(limits)
    function_env("HttpApi")
    return Clock(monkeypatch)


def texts_sent() -> list[tuple[str, str]]:
    return list(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values())


def ask(phone: str = PHONE, source: str = "198.51.100.23") -> Answer:
    return call("POST", "/v1/auth/otp", body={"phone": phone}, source_ip=source)


def verify(code: str, phone: str = PHONE) -> Answer:
    return call("POST", "/v1/auth/verify", body={"phone": phone, "code": code})


def refusal(answer: Answer) -> tuple[int, str | None, Any, str | None]:
    error = answer.body.get("error", {}) if isinstance(answer.body, dict) else {}
    return (answer.status, answer.code, error.get("retry_after"), answer.headers.get("retry-after"))


def wrong_codes(right: str, count: int) -> list[str]:
    return [f"{(int(right) + i) % 10**6:06d}" for i in range(1, count + 1)]


# -- brute force ------------------------------------------------------------------------


def test_five_wrong_guesses_kill_the_code_and_the_right_one_is_refused_after(
    clock: Clock,
) -> None:
    assert ask().status == 202
    right = sms_code(PHONE)

    answers = [verify(guess) for guess in wrong_codes(right, MAX_ATTEMPTS)]

    assert [a.code for a in answers] == ["invalid_code"] * 4 + ["too_many_attempts"]
    assert [a.body["error"].get("attempts_left") for a in answers[:4]] == [4, 3, 2, 1]
    late = verify(right)
    assert (late.status, late.code) == (429, "too_many_attempts")


def test_guesses_sent_all_at_once_get_five_tries_between_them(clock: Clock, aws: FakeAws) -> None:
    assert ask().status == 202
    right = sms_code(PHONE)

    def environment(guess: str) -> Callable[[], str]:
        otps = OtpStore(AtomicClient(aws.client("dynamodb")), aws.settings[Setting.OTP_TABLE])
        return lambda: otp.verify_code(
            PHONE, guess, keys=derive_keys(SECRET), otps=otps, limits=LIMITS, now=clock.now
        )

    outcomes = run_together([environment(guess) for guess in wrong_codes(right, 30)])

    tried = [o for o in outcomes if type(o) is InvalidCode]
    # four answered "wrong, n left"; the fifth evaluated guess killed the code
    assert sorted(o.details["attempts_left"] for o in tried) == [1, 2, 3, 4]
    assert sum(isinstance(o, TooManyAttempts) for o in outcomes) == 30 - len(tried)
    assert verify(right).code == "too_many_attempts"


def test_fresh_codes_buy_fresh_tries_but_the_lockout_bounds_guesses_per_day(
    clock: Clock,
) -> None:
    guesses: list[Answer] = []
    asked = ask()
    while asked.status == 202:
        for guess in wrong_codes(sms_code(PHONE), MAX_ATTEMPTS):
            guesses.append(verify(guess))
        clock.advance(COOLDOWN_S)
        asked = ask()

    assert (asked.status, asked.code) == (429, "number_locked")
    # 15 guesses a day (1 in 66,667); the hourly cap alone allowed 25 an hour
    assert len(guesses) == LIMITS.otp_lockout_failures * MAX_ATTEMPTS
    assert guesses[-1].code == "number_locked"  # the last guess killed the third code
    assert len(texts_sent()) == LIMITS.otp_lockout_failures < HOURLY_CAP


def test_the_third_failed_code_locks_the_number_for_a_day(clock: Clock) -> None:
    # three codes, each guessed wrong once and then left (replaced, or expired)
    for _ in range(LIMITS.otp_lockout_failures):
        assert ask().status == 202
        assert verify(wrong_codes(sms_code(PHONE), 1)[0]).code == "invalid_code"
        clock.advance(COOLDOWN_S)
    clock.advance(LIMITS.otp_ttl_s)  # the third has expired
    elapsed = LIMITS.otp_ttl_s + COOLDOWN_S

    asked, tried = ask(source="203.0.113.77"), verify("123456")

    assert (asked.status, asked.code) == (429, "number_locked")
    assert int(asked.headers["retry-after"]) == LIMITS.otp_lockout_s - elapsed
    assert (tried.status, tried.code) == (429, "number_locked")
    assert len(texts_sent()) == LIMITS.otp_lockout_failures  # nothing more was texted
    clock.advance(LIMITS.otp_lockout_s - elapsed)
    assert ask().status == 202


def test_a_registered_and_an_unregistered_number_get_the_same_refusals(
    aws: FakeAws, function_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = tight_clock(aws, function_env, monkeypatch, otp_daily_cap=2, otp_lockout_failures=1)
    registered, unregistered = PHONE, "+12025550123"
    assert ask(registered).status == 202
    assert verify(sms_code(registered), registered).status == 200
    clock.advance(24 * 3600)  # another day: the sign-up's code counts no more
    seen: dict[str, list[tuple[int, str | None, Any, str | None]]] = {
        registered: [],
        unregistered: [],
    }

    def both(step: Callable[[str], Answer]) -> None:
        for phone in (registered, unregistered):
            seen[phone].append(refusal(step(phone)))

    both(lambda phone: ask(phone))
    clock.advance(COOLDOWN_S)
    both(lambda phone: ask(phone))
    clock.advance(COOLDOWN_S)
    both(lambda phone: ask(phone))  # the daily cap
    clock.advance(24 * 3600)
    both(lambda phone: ask(phone))
    both(lambda phone: verify(wrong_codes(sms_code(phone), 1)[0], phone))  # a failed code
    clock.advance(LIMITS.otp_ttl_s)
    both(lambda phone: ask(phone))  # locked
    both(lambda phone: verify(sms_code(phone), phone))  # locked, even the right code

    assert seen[registered] == seen[unregistered]
    assert [answer[:2] for answer in seen[registered]] == [
        (202, None),
        (202, None),
        (429, "rate_limited"),
        (202, None),
        (401, "invalid_code"),
        (429, "number_locked"),
        (429, "number_locked"),
    ]


# -- SMS pumping ------------------------------------------------------------------------


def test_one_address_asking_codes_for_many_numbers_is_cut_off_and_nothing_more_is_texted(
    clock: Clock,
) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(PER_SOURCE + 5)]

    answers = [ask(phone, source="203.0.113.9") for phone in numbers]

    assert [a.status for a in answers] == [202] * PER_SOURCE + [429] * 5
    assert {a.code for a in answers[PER_SOURCE:]} == {"rate_limited"}
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers[PER_SOURCE:])
    assert len(texts_sent()) == PER_SOURCE
    # another address is not punished for it
    assert ask(numbers[-1], source="203.0.113.10").status == 202
    # and the pump may go on an hour later, not sooner
    clock.advance(3600)
    assert ask(numbers[-2], source="203.0.113.9").status == 202


def test_addresses_of_one_ipv6_64_share_the_per_address_cap(
    aws: FakeAws, function_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tight_clock(aws, function_env, monkeypatch, otp_per_source_hourly=3)
    numbers = [f"+1415555{n:04d}" for n in range(5)]

    answers = [ask(phone, source=f"2001:db8:5:6::{n + 1:x}") for n, phone in enumerate(numbers)]

    assert [a.status for a in answers] == [202] * 3 + [429] * 2
    assert len(texts_sent()) == 3
    assert ask(numbers[-1], source="2001:db8:5:7::1").status == 202  # another /64


def test_the_country_and_global_budgets_cut_off_pumping_from_any_number_of_addresses(
    aws: FakeAws, function_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tight_clock(aws, function_env, monkeypatch, otp_per_country_hourly=2, otp_global_hourly=3)
    dutch = ["+31612345601", "+31612345602", "+31612345603"]
    elsewhere = ["+46701234501", "+4791234501"]

    answers = [ask(phone, source=f"203.0.113.{n + 1}") for n, phone in enumerate(dutch)]
    later = [ask(phone, source=f"198.51.100.{n + 1}") for n, phone in enumerate(elsewhere)]

    assert [(a.status, a.code) for a in answers + later] == [
        (202, None),
        (202, None),
        (429, "rate_limited"),  # the Netherlands' hourly budget
        (202, None),
        (429, "rate_limited"),  # the hourly budget of all numbers
    ]
    assert [phone for phone, _ in texts_sent()] == dutch[:2] + elsewhere[:1]


def test_one_number_gets_at_most_its_hourly_cap_from_any_number_of_addresses(
    clock: Clock,
) -> None:
    for n in range(HOURLY_CAP):
        assert ask(source=f"203.0.113.{n + 1}").status == 202
        clock.advance(COOLDOWN_S)

    refused = ask(source="203.0.113.200")

    assert (refused.status, refused.code) == (429, "rate_limited")
    assert [phone for phone, _ in texts_sent()] == [PHONE] * HOURLY_CAP


def test_asking_again_within_the_cool_down_texts_nothing(clock: Clock) -> None:
    assert ask().status == 202
    clock.advance(COOLDOWN_S - 1)

    refused = ask(source="203.0.113.50")

    assert (refused.status, refused.code) == (429, "rate_limited")
    assert len(texts_sent()) == 1


@pytest.mark.parametrize(
    "number",
    [
        "+19005550123",  # US premium rate
        "+448712345678",  # UK shared cost
        "+18005550199",  # US toll free
    ],
)
def test_numbers_that_cost_the_sender_money_are_refused_and_never_texted(
    clock: Clock, number: str
) -> None:
    answer = ask(number)

    assert (answer.status, answer.code) == (400, "invalid_phone")
    assert texts_sent() == []
