"""One-time codes: request, cool-down, caps, verify (moto in-process)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import otp
from parley_server.logic.tokens import derive_keys
from parley_server.models.errors import (
    BadRequest,
    DependencyUnavailable,
    InvalidCode,
    InvalidPhone,
    RateLimited,
    TooManyAttempts,
)
from tests.conftest import FakeAws
from tests.unit.conftest import Ports

PHONE = "+14155552671"
NOW = 1_700_000_000.0
LIMITS = Limits()
KEYS = derive_keys(b"k" * 64)


class Env(Ports):
    def request(self, phone: str = PHONE, now: float = NOW, source: str = "198.51.100.7") -> Any:
        return self.call(otp.request_code, phone, source=source, keys=KEYS, limits=LIMITS, now=now)

    def verify(self, code: str, phone: str = PHONE, now: float = NOW + 10) -> str:
        return self.call(otp.verify_code, phone, code, keys=KEYS, limits=LIMITS, now=now)

    def items(self) -> list[dict[str, Any]]:
        return list(self.ddb.scan(TableName=self.table(Setting.OTP_TABLE))["Items"])

    def item(self, phone: str = PHONE) -> dict[str, Any] | None:
        answer = self.ddb.get_item(
            TableName=self.table(Setting.OTP_TABLE), Key={"phone": {"S": phone}}
        )
        return answer.get("Item")


def sent_sms() -> list[tuple[str, str]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    return list(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values())


def last_code(phone: str = PHONE) -> str:
    texts = [text for number, text in sent_sms() if number == phone]
    return texts[-1].rsplit(" ", 1)[-1]


@pytest.fixture
def env(aws: FakeAws) -> Env:
    return Env(aws)


def test_a_code_is_texted_and_stored_only_as_a_keyed_hash(env: Env) -> None:
    challenge = env.request("+1 (415) 555-2671")
    assert (challenge.phone, challenge.expires_in, challenge.retry_after) == (PHONE, 300, 30)
    [(number, text)] = sent_sms()
    assert number == PHONE
    assert text.startswith("Your Parley code is ")
    code = last_code()
    assert len(code) == 6
    assert code.isdigit()
    item = env.item()
    assert item is not None
    assert bytes(item["code_hash"]["B"]) == otp.code_hash(KEYS, PHONE, code)
    assert code not in str(item)
    assert int(item["expires_at"]["N"]) == int(NOW) + 300


@pytest.mark.parametrize(
    "phone",
    [
        "",
        "4155552671",
        "+1415555",
        "+1 415 555 26711",
        "not a number",
        "+19005551234",
        "+" + "1" * 40,
    ],
)
def test_a_malformed_invalid_or_premium_phone_is_refused_and_nothing_is_sent(
    env: Env, phone: str
) -> None:
    with pytest.raises(InvalidPhone):
        env.request(phone)
    assert sent_sms() == []
    assert env.items() == []


def test_asking_again_during_the_cool_down_is_refused_and_the_first_code_still_works(
    env: Env,
) -> None:
    env.request()
    first = last_code()
    with pytest.raises(RateLimited) as refused:
        env.request(now=NOW + 12)
    assert refused.value.retry_after == 18
    assert len(sent_sms()) == 1
    assert env.verify(first, now=NOW + 13) == PHONE


def test_a_new_code_after_the_cool_down_replaces_the_old_one(env: Env) -> None:
    env.request()
    first = last_code()
    env.request(now=NOW + 31)
    second = last_code()
    if first != second:
        with pytest.raises(InvalidCode):
            env.verify(first, now=NOW + 32)
    assert env.verify(second, now=NOW + 33) == PHONE


def test_the_hourly_cap_per_phone_refuses_further_codes(env: Env) -> None:
    start = 3600 * 500_000.0  # the start of an hourly window
    for i in range(LIMITS.otp_hourly_cap):
        env.request(now=start + i * 31)
    before = len(sent_sms())
    with pytest.raises(RateLimited) as refused:
        env.request(now=start + LIMITS.otp_hourly_cap * 31)
    assert refused.value.retry_after > 3000
    assert len(sent_sms()) == before
    # the refused request left no usable code behind
    assert env.item() is None


def test_one_address_cannot_ask_codes_for_many_numbers(env: Env) -> None:
    phones = [f"+1415555{2600 + i:04d}" for i in range(Limits().otp_per_source_hourly + 1)]
    for phone in phones[:-1]:
        env.request(phone, source="203.0.113.9")
    with pytest.raises(RateLimited):
        env.request(phones[-1], source="203.0.113.9")
    assert env.item(phones[-1]) is None
    env.request(phones[-1], source="203.0.113.10")


class BrokenSms:
    def send(self, phone: str, text: str) -> None:
        raise DependencyUnavailable("could not send the text message")


def test_when_sms_fails_no_code_is_left_usable_and_asking_again_is_allowed(env: Env) -> None:
    with pytest.raises(DependencyUnavailable):
        env.call(
            otp.request_code,
            PHONE,
            source="198.51.100.7",
            keys=KEYS,
            sms=BrokenSms(),
            limits=LIMITS,
            now=NOW,
        )
    assert env.item() is None
    env.request(now=NOW + 1)
    assert len(sent_sms()) == 1


def test_a_right_code_works_once(env: Env) -> None:
    env.request()
    code = last_code()
    assert env.verify(code) == PHONE
    with pytest.raises(InvalidCode):
        env.verify(code, now=NOW + 11)


@pytest.mark.parametrize("code", ["12345a", "12345", "1234567", "", " 123456", "１２３４５６"])
def test_a_malformed_code_is_refused_without_spending_an_attempt(env: Env, code: str) -> None:
    env.request()
    with pytest.raises(BadRequest):
        env.verify(code)
    item = env.item()
    assert item is not None
    assert item["attempts"]["N"] == "0"


def test_five_wrong_codes_kill_the_code(env: Env) -> None:
    env.request()
    right = last_code()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        with pytest.raises(InvalidCode) as refused:
            env.verify(wrong)
        assert refused.value.details["attempts_left"] == left
    with pytest.raises(TooManyAttempts):
        env.verify(wrong)
    with pytest.raises(TooManyAttempts) as dead:
        env.verify(right)
    assert dead.value.status == 429
    assert dead.value.retry_after >= 1


def test_an_expired_code_is_refused_even_before_dynamodb_deletes_it(env: Env) -> None:
    env.request()
    code = last_code()
    with pytest.raises(InvalidCode):
        env.verify(code, now=NOW + 301)
    assert env.item() is not None  # TTL deletion is lazy


def test_a_code_for_another_phone_or_no_code_at_all_is_refused(env: Env) -> None:
    env.request()
    code = last_code()
    with pytest.raises(InvalidCode):
        env.verify(code, phone="+12025550123")


def test_of_concurrent_uses_of_one_right_code_exactly_one_succeeds(env: Env) -> None:
    env.request()
    code = last_code()
    results: list[str] = []
    barrier = threading.Barrier(4)

    def use() -> None:
        barrier.wait()
        try:
            results.append(env.verify(code))
        except InvalidCode:
            results.append("refused")

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [PHONE, "refused", "refused", "refused"]
