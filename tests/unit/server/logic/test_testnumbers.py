"""Test numbers: the fictional range, the derived code (server and SDK agree), a
code request that texts nothing and counts toward no SMS cap, and the CDK key
(refused outside the range and in prod)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from parley.testnumbers import LOCAL_TEST_NUMBERS
from parley.testnumbers import code_for as sdk_code_for
from parley.testnumbers import is_fictional as sdk_is_fictional
from parley_server.catalogue import Setting, function
from parley_server.config import Config, Limits
from parley_server.logic import otp
from parley_server.logic.testnumbers import code_for, is_fictional, parse_test_numbers
from parley_server.logic.tokens import derive_keys
from parley_server.models.errors import ConfigError, InvalidCode, RateLimited
from stacks.grants import check_grants
from stacks.settings import ContextError, ParleySettings
from tests.conftest import TEST_NUMBER, FakeAws
from tests.unit.conftest import Ports

SECRET = b"k" * 64
KEYS = derive_keys(SECRET)
LIMITS = Limits()
NOW = 1_700_000_000.0
TEST = "+12065550142"
REAL = "+14155552671"


class RecordingSms:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))


@dataclass
class Env(Ports):
    texts: RecordingSms = field(default_factory=RecordingSms)

    @property
    def sms(self) -> RecordingSms:
        return self.texts

    def request(
        self,
        phone: str,
        now: float = NOW,
        source: str = "198.51.100.7",
        purpose: str = otp.SIGN_IN,
    ) -> Any:
        return self.call(
            otp.request_code,
            phone,
            source=source,
            keys=KEYS,
            limits=LIMITS,
            now=now,
            test_numbers=frozenset({TEST}),
            purpose=purpose,
        )

    def verify(
        self, phone: str, code: str, now: float = NOW + 5, purpose: str = otp.SIGN_IN
    ) -> str:
        return self.call(
            otp.verify_code, phone, code, keys=KEYS, limits=LIMITS, now=now, purpose=purpose
        )


@pytest.fixture
def env(aws: FakeAws) -> Env:
    return Env(aws)


# -- the rule and the code --------------------------------------------------------------


@pytest.mark.parametrize("number", ["+12065550100", "+12065550199", "+19175550150"])
def test_the_fictional_range_is_555_0100_to_0199(number: str) -> None:
    assert is_fictional(number)
    assert sdk_is_fictional(number)


@pytest.mark.parametrize(
    "number",
    [
        "+12065550099",  # just below the range
        "+12065550200",  # just above it
        "+12065551234",  # a 555 number outside 01XX
        "+447700900123",  # UK drama numbers: not the rule chosen
        "+14155552671",
        "+1206555010",  # too short
        "+120655501000",  # too long
    ],
)
def test_numbers_outside_the_range_are_not_fictional(number: str) -> None:
    assert not is_fictional(number)
    assert not sdk_is_fictional(number)


def test_the_code_is_the_documented_hmac_of_the_number() -> None:
    digest = hmac.new(SECRET, b"parley/test-number-code/v1:" + TEST.encode(), hashlib.sha256)
    expected = int.from_bytes(digest.digest()[:8], "big") % 1_000_000
    assert code_for(SECRET, TEST) == f"{expected:06d}"


def test_server_and_sdk_derive_the_same_six_digits_and_they_vary() -> None:
    codes = {n: code_for(SECRET, n) for n in LOCAL_TEST_NUMBERS}
    assert codes == {n: sdk_code_for(SECRET, n) for n in LOCAL_TEST_NUMBERS}
    assert all(len(c) == 6 and c.isdigit() for c in codes.values())
    assert len(set(codes.values())) > 90  # one code per number, not a constant
    # another stack (another secret) has other codes
    other = {n: code_for(b"z" * 64, n) for n in LOCAL_TEST_NUMBERS}
    assert sum(codes[n] == other[n] for n in codes) < 5


def test_the_local_stack_and_the_sdk_agree_on_the_default_numbers() -> None:
    from local.resources import LOCAL_TEST_NUMBERS as STACK_DEFAULT

    assert tuple(STACK_DEFAULT) == LOCAL_TEST_NUMBERS
    assert parse_test_numbers(json.dumps(STACK_DEFAULT)) == frozenset(LOCAL_TEST_NUMBERS)


# -- asking for a code ----------------------------------------------------------------------


def test_a_test_number_gets_its_derived_code_and_no_text(env: Env) -> None:
    challenge = env.request(TEST)
    assert (challenge.phone, challenge.expires_in, challenge.retry_after) == (TEST, 300, 30)
    assert env.sms.sent == []
    assert env.verify(TEST, code_for(SECRET, TEST)) == TEST


def test_a_test_number_in_another_form_is_still_one(env: Env) -> None:
    env.request("+1 (206) 555-0142")
    assert env.sms.sent == []
    assert env.verify(TEST, code_for(SECRET, TEST)) == TEST


def test_a_wrong_code_for_a_test_number_spends_an_attempt(env: Env) -> None:
    env.request(TEST)
    wrong = f"{(int(code_for(SECRET, TEST)) + 1) % 1_000_000:06d}"
    with pytest.raises(InvalidCode) as refused:
        env.verify(TEST, wrong)
    assert refused.value.details["attempts_left"] == LIMITS.otp_max_attempts - 1


def test_a_test_number_s_deletion_code_is_derived_too_and_only_deletes(env: Env) -> None:
    env.request(TEST, purpose=otp.DELETE_ACCOUNT)
    assert env.sms.sent == []
    code = code_for(SECRET, TEST)
    with pytest.raises(InvalidCode):  # not a sign-in code
        env.verify(TEST, code)
    verified = env.verify(TEST, code, now=NOW + 6, purpose=otp.DELETE_ACCOUNT)
    assert verified == TEST


def test_a_real_number_is_still_texted_a_random_code(env: Env) -> None:
    env.request(REAL)
    [(phone, text)] = env.sms.sent
    assert phone == REAL
    code = text.rsplit(" ", 1)[-1]
    assert env.verify(REAL, code) == REAL


def test_a_test_number_counts_toward_no_sms_cap_but_keeps_the_cool_down(env: Env) -> None:
    step = LIMITS.otp_resend_cooldown_s + 1
    # more requests than the per-phone hourly cap and the per-source one, within the hour
    asks = max(LIMITS.otp_hourly_cap, LIMITS.otp_per_source_hourly) + 2
    for i in range(asks):
        env.request(TEST, now=NOW + i * step)
    assert asks * step < 3600
    assert env.sms.sent == []
    with pytest.raises(RateLimited):  # the cool-down still holds
        env.request(TEST, now=NOW + (asks - 1) * step + 1)
    # and a real number from the same address is not held back by them
    env.request(REAL, now=NOW + asks * step)
    assert [phone for phone, _ in env.sms.sent] == [REAL]


def test_through_the_http_api_the_fixture_s_test_number_signs_up_without_sms(
    function_env: Any,
) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    from tests.integration.test_http_harness import call

    function_env("HttpApi")
    asked = call("POST", "/v1/auth/otp", body={"phone": TEST_NUMBER})
    assert asked.status == 202
    assert list(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values()) == []
    # the `aws` fixture's signing secret is "k" * 64
    code = code_for(SECRET, TEST_NUMBER)
    verified = call("POST", "/v1/auth/verify", body={"phone": TEST_NUMBER, "code": code})
    assert verified.status == 200
    assert len(verified.body["user_id"]) == 32


# -- configuration --------------------------------------------------------------------------


def test_the_function_setting_is_parsed_and_normalised() -> None:
    config = Config.from_environ({Setting.TEST_NUMBERS.value: '["+1 206 555 0142"]'})
    assert config.test_numbers == frozenset({TEST})
    assert Config.from_environ({}).test_numbers == frozenset()


@pytest.mark.parametrize("raw", ['["+14155552671"]', '"+12065550142"', "not json", "[42]"])
def test_the_function_refuses_a_setting_that_is_not_a_list_of_fictional_numbers(
    raw: str,
) -> None:
    with pytest.raises(ConfigError):
        _ = Config.from_environ({Setting.TEST_NUMBERS.value: raw}).test_numbers


def test_only_the_http_api_reads_test_numbers_and_it_needs_no_grant() -> None:
    readers = [s.id for s in _functions() if Setting.TEST_NUMBERS in s.settings]
    assert readers == ["HttpApi"]
    assert Setting.TEST_NUMBERS in function("HttpApi").settings
    check_grants()  # plain configuration, like PARLEY_LIMITS: no resource to grant


def _functions() -> Any:
    from parley_server.catalogue import FUNCTIONS

    return FUNCTIONS


@pytest.mark.parametrize(
    "raw",
    [
        ["+12065550100", "+1 206 555 0101"],
        '["+12065550100", "+12065550101"]',
        "+12065550100,+12065550101",
    ],
)
def test_the_context_key_takes_a_list_in_json_or_comma_form(raw: Any) -> None:
    settings = ParleySettings.from_context({"testNumbers": raw})
    assert settings.test_numbers == ("+12065550100", "+12065550101")
    assert json.loads(settings.test_numbers_json) == ["+12065550100", "+12065550101"]


def test_no_context_key_means_no_test_numbers() -> None:
    settings = ParleySettings.from_context({})
    assert settings.test_numbers == ()
    assert settings.test_numbers_json == "[]"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (["+14155552671"], "not a fictional number"),
        (["+447911123456"], "not a fictional number"),
        (["+12065550100", "+18005550100"], "cannot receive codes"),
        (["call me"], "is not a phone number"),
        ('{"a": "+12065550100"}', "must be a list"),
        ([12065550100], "is not a phone number"),
    ],
)
def test_the_context_key_refuses_anything_but_fictional_numbers(raw: Any, says: str) -> None:
    with pytest.raises(ContextError, match="testNumbers") as refused:
        ParleySettings.from_context({"testNumbers": raw})
    assert says in str(refused.value)


def test_prod_refuses_test_numbers() -> None:
    with pytest.raises(ContextError, match="dev stacks only"):
        ParleySettings.from_context({"stage": "prod", "testNumbers": ["+12065550100"]})
    assert ParleySettings.from_context({"stage": "prod"}).test_numbers_json == "[]"
