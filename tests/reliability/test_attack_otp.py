"""Attack: guessing a one-time code, and pumping SMS through the sign-in door.

Through the HttpApi handler with its exact environment (moto in-process), the
clock moved by replacing the handler's one clock (`http_api._now`).

- Brute force: a code allows 5 tries in all, sequential or all at once (each
  guess then runs in an environment of its own: tests/reliability/atomic.py);
  the right code after 5 wrong ones is refused. Asking for new codes buys 5 tries
  each, but the per-phone hourly cap holds the whole hour to 25 tries.
- SMS pumping: one address asking codes for many numbers is cut off at 20 an
  hour; one number gets at most 5 an hour; numbers that cost the sender money
  are refused; nothing refused is ever texted.
"""

from __future__ import annotations

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


def texts_sent() -> list[tuple[str, str]]:
    return list(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values())


def ask(phone: str = PHONE, source: str = "198.51.100.23") -> Answer:
    return call("POST", "/v1/auth/otp", body={"phone": phone}, source_ip=source)


def verify(code: str, phone: str = PHONE) -> Answer:
    return call("POST", "/v1/auth/verify", body={"phone": phone, "code": code})


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


def test_fresh_codes_buy_fresh_tries_but_the_hourly_cap_bounds_guesses_per_hour(
    clock: Clock,
) -> None:
    guesses = 0
    for _ in range(HOURLY_CAP):
        assert ask().status == 202
        for guess in wrong_codes(sms_code(PHONE), MAX_ATTEMPTS):
            verify(guess)
            guesses += 1
        clock.advance(COOLDOWN_S)

    refused = ask()

    assert (refused.status, refused.code) == (429, "rate_limited")
    assert guesses == HOURLY_CAP * MAX_ATTEMPTS  # 25 guesses an hour: 1 in 40,000
    assert len(texts_sent()) == HOURLY_CAP


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
