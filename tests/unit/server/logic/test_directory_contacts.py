"""Phone lookups and contact writes: their per-device and per-account budgets
(moto in-process)."""

from __future__ import annotations

import pytest

from parley_server.config import Limits
from parley_server.logic import contacts, directory
from parley_server.logic.ports import Caller
from parley_server.models.errors import RateLimited
from tests.unit.conftest import Ports

ALICE = "a" * 32
BOB, BOB_PHONE = "b" * 32, "+12025550123"
CAROL, CAROL_PHONE = "c" * 32, "+14155552671"
NOW = 1_800_000_000.0
PHONE, LAPTOP, TABLET = (Caller(ALICE, d * 16) for d in "123")


@pytest.fixture
def people(ports: Ports) -> Ports:
    for user_id, phone in ((ALICE, "+33612345678"), (BOB, BOB_PHONE), (CAROL, CAROL_PHONE)):
        ports.users.create_user(user_id, phone, now=NOW)
    return ports


def _lookup(ports: Ports, caller: Caller, limits: Limits) -> str:
    return ports.call(directory.find_user, caller, BOB_PHONE, limits=limits, now=NOW)


def test_lookups_have_a_budget_per_device_within_the_accounts(people: Ports) -> None:
    limits = Limits(phone_lookups_per_hour=5, phone_lookups_per_device_per_hour=2)
    for _ in range(2):
        assert _lookup(people, PHONE, limits) == BOB

    with pytest.raises(RateLimited) as refused:
        _lookup(people, PHONE, limits)

    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after == 3600  # NOW is the start of an hour
    # another device has its own budget, within the account's (a refusal used none of it)
    for caller in (LAPTOP, LAPTOP, TABLET):
        assert _lookup(people, caller, limits) == BOB
    with pytest.raises(RateLimited):
        _lookup(people, TABLET, limits)


def test_the_lookup_budgets_are_lower_than_before_and_a_device_gets_a_share() -> None:
    limits = Limits()
    assert limits.phone_lookups_per_hour < 500
    assert limits.phone_lookups_per_device_per_hour < limits.phone_lookups_per_hour


def test_contact_writes_past_a_devices_hourly_budget_are_refused(people: Ports) -> None:
    limits = Limits(contact_writes_per_hour=2)
    people.call(contacts.save, PHONE, BOB, limits=limits, now=NOW)
    people.call(contacts.remove, PHONE, BOB, limits=limits, now=NOW)

    with pytest.raises(RateLimited) as refused:
        people.call(contacts.save, PHONE, CAROL, limits=limits, now=NOW + 10)

    assert refused.value.retry_after == 3600 - 10
    assert people.contacts.saved(ALICE) == []
    people.call(contacts.save, LAPTOP, CAROL, limits=limits, now=NOW + 10)
    people.call(contacts.save, PHONE, CAROL, limits=limits, now=NOW + 3600)
    assert people.contacts.saved(ALICE) == [CAROL]
