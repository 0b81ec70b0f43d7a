from __future__ import annotations

import pytest

from parley_server.catalogue import Setting
from parley_server.models.errors import RateLimited
from parley_server.store.ratelimits import RateLimiter
from tests.conftest import FakeAws


def test_hits_up_to_the_limit_pass_and_the_next_is_refused_until_the_window_ends(
    aws: FakeAws,
) -> None:
    limiter = RateLimiter(aws.client("dynamodb"), aws.settings[Setting.RATELIMITS_TABLE])
    now = 1_000_000.2
    counts = [limiter.hit("otp", "+15550001", limit=3, window_s=60, now=now) for _ in range(3)]
    assert counts == [1, 2, 3]
    with pytest.raises(RateLimited) as refused:
        limiter.hit("otp", "+15550001", limit=3, window_s=60, now=now + 1)
    assert refused.value.retry_after == 1_000_020 - 1_000_001
    # another subject and the next window are unaffected
    assert limiter.hit("otp", "+15550002", limit=3, window_s=60, now=now) == 1
    assert limiter.hit("otp", "+15550001", limit=3, window_s=60, now=1_000_020.0) == 1


def test_counters_carry_a_ttl_past_their_window(aws: FakeAws) -> None:
    table = aws.settings[Setting.RATELIMITS_TABLE]
    RateLimiter(aws.client("dynamodb"), table).hit("send", "dev", limit=5, window_s=10, now=105.0)
    item = aws.client("dynamodb").get_item(TableName=table, Key={"key": {"S": "send#dev#10"}})
    assert int(item["Item"]["expires_at"]["N"]) == 110 + 60
