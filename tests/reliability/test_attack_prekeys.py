"""Attack: draining someone's one-time prekeys, so their next contacts get weaker
first messages (no one-time prekey: no protection of the first message if the
signed prekey later leaks).

Through the HttpApi handler with its exact environment (moto in-process). One
caller may take at most `bundle_claims_per_target_per_hour` bundles of one
person an hour, sequentially or all at once (each claim then in an environment
of its own: tests/reliability/atomic.py); the rest of the victim's keys stay
for real contacts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.handlers import http_api
from parley_server.logic import prekeys
from parley_server.logic.ports import Caller
from parley_server.logic.prekeys import Bundle
from parley_server.models.errors import RateLimited
from parley_server.store.prekeys import PrekeysStore
from parley_server.store.ratelimits import RateLimiter
from parley_server.store.users import UsersStore
from tests.conftest import FakeAws
from tests.integration.test_http_harness import Answer, Device, call, sign_up, with_keys
from tests.reliability.atomic import AtomicClient, run_together

PER_TARGET = Limits().bundle_claims_per_target_per_hour
KEYS = 100


@pytest.fixture
def victim(function_env: Any) -> Device:
    function_env("HttpApi")
    return with_keys(sign_up("+14155552671"), otk_ids=range(KEYS))


@pytest.fixture
def mallory(victim: Device) -> Device:
    return sign_up("+12025550123")


def claim(caller: Device, target: Device) -> Answer:
    return call("GET", f"/v1/keys/{target.user_id}", token=caller.access_token)


def keys_left(device: Device) -> int:
    count = call("GET", "/v1/keys/count", token=device.access_token).body["one_time_prekeys"]
    assert isinstance(count, int)
    return count


def test_claiming_someones_prekeys_in_a_loop_stops_at_the_hourly_cap(
    victim: Device, mallory: Device
) -> None:
    answers = [claim(mallory, victim) for _ in range(PER_TARGET + 10)]

    assert [a.status for a in answers] == [200] * PER_TARGET + [429] * 10
    assert {a.code for a in answers[PER_TARGET:]} == {"rate_limited"}
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers[PER_TARGET:])
    # each successful claim took one distinct key
    taken = [a.body["devices"][0]["one_time_prekey"]["key_id"] for a in answers[:PER_TARGET]]
    assert len(set(taken)) == PER_TARGET
    assert keys_left(victim) == KEYS - PER_TARGET


def test_claims_sent_all_at_once_are_held_to_the_same_cap(
    aws: FakeAws, victim: Device, mallory: Device
) -> None:
    def environment() -> Callable[[], Bundle]:
        ddb = AtomicClient(aws.client("dynamodb"))
        return lambda: prekeys.claim_bundle(
            Caller(mallory.user_id, mallory.device_id),
            victim.user_id,
            prekeys=PrekeysStore(ddb, aws.settings[Setting.PREKEYS_TABLE]),
            users=UsersStore(ddb, aws.settings[Setting.USERS_TABLE]),
            limiter=RateLimiter(ddb, aws.settings[Setting.RATELIMITS_TABLE]),
            limits=Limits(),
            now=time.time(),
        )

    outcomes = run_together([environment() for _ in range(PER_TARGET * 2)])

    claimed = [o for o in outcomes if isinstance(o, Bundle)]
    assert len(claimed) == PER_TARGET
    assert sum(isinstance(o, RateLimited) for o in outcomes) == PER_TARGET
    keys = [b.devices[0].one_time_prekey for b in claimed]
    assert len({k.key_id for k in keys if k is not None}) == PER_TARGET
    assert keys_left(victim) == KEYS - PER_TARGET


def test_a_real_contact_still_gets_a_one_time_prekey_after_an_attack(
    victim: Device, mallory: Device
) -> None:
    while claim(mallory, victim).status == 200:
        pass
    friend = sign_up("+13105550142")

    bundle = claim(friend, victim)

    assert bundle.status == 200
    assert bundle.body["devices"][0]["one_time_prekey"] is not None


def test_the_cap_lifts_only_when_the_hour_is_over(
    victim: Device, mallory: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    def at(moment: float) -> None:
        monkeypatch.setattr(http_api, "_now", lambda: moment)
        # an access token lives 15 minutes: Mallory keeps hers fresh
        renewed = call("POST", "/v1/auth/refresh", body={"refresh_token": mallory.refresh_token})
        mallory.access_token = renewed.body["access_token"]
        mallory.refresh_token = renewed.body["refresh_token"]

    start = float(int(http_api._now()) // 3600 * 3600 + 3600)
    at(start)
    for _ in range(PER_TARGET):
        assert claim(mallory, victim).status == 200
    at(start + 3599)
    assert claim(mallory, victim).status == 429

    at(start + 3600)

    assert claim(mallory, victim).status == 200
