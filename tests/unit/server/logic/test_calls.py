"""Handing out call relays: the caller's device asks, within its hourly budget, and
a refused request asks nothing of the relay service."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from parley_server.config import Limits
from parley_server.logic import calls
from parley_server.logic.ports import Caller
from parley_server.models.calls import IceServer, RelayOffer
from parley_server.models.errors import RateLimited
from tests.unit.conftest import Ports

NOW = 1_800_000_000.0
ALICE = Caller("a" * 32, "1" * 16)


@dataclass
class Relays:
    asked: list[str] = field(default_factory=list)

    def offer(self, device_key: str, *, now: float) -> RelayOffer:
        self.asked.append(device_key)
        return RelayOffer((IceServer(("stun:stun.example:443",)),), 300, int(now) + 300, "internet")


def test_a_device_gets_relays_for_itself_until_its_hourly_budget_is_spent(ports: Ports) -> None:
    relays = Relays()
    limits = Limits(call_relays_per_hour=2)
    for n in range(2):
        offer = ports.call(calls.relays_for, ALICE, relays=relays, limits=limits, now=NOW + n)
        assert offer.expires_at == int(NOW) + n + 300

    with pytest.raises(RateLimited) as refused:
        ports.call(calls.relays_for, ALICE, relays=relays, limits=limits, now=NOW + 2)

    assert refused.value.limit == "call-relays"
    assert refused.value.retry_after >= 1
    # the refused request asked nothing of the relays; the two before were the caller's
    assert relays.asked == [f"{ALICE.user_id}#{ALICE.device_id}"] * 2
    # another device of the same account has a budget of its own
    other = Caller(ALICE.user_id, "2" * 16)
    ports.call(calls.relays_for, other, relays=relays, limits=limits, now=NOW + 3)
    # and the next hour the first device may ask again
    ports.call(calls.relays_for, ALICE, relays=relays, limits=limits, now=NOW + 3600)
    assert len(relays.asked) == 4
