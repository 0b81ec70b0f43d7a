"""The registration lock: setting and removing it (primary device only), the PIN
check a re-registration must pass, its backoff and the inactivity rule."""

from __future__ import annotations

import pytest

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import registration_lock as lock
from parley_server.logic.ports import Caller
from parley_server.models.errors import (
    BadRequest,
    Forbidden,
    PinBackoff,
    RegistrationLocked,
    Unauthorized,
)
from parley_server.store.users import UsersStore
from tests.unit.conftest import Ports

NOW = 1_700_000_000.0
LIMITS = Limits()
PIN = "246810"
PHONE_OWNER = Caller("a" * 32, "1" * 16)
COMPANION = Caller("a" * 32, "2" * 16)
DAY = 24 * 3600


@pytest.fixture
def users(ports: Ports) -> UsersStore:
    users = ports.users
    users.create_user(PHONE_OWNER.user_id, "+14155552671", now=NOW)
    users.add_device(PHONE_OWNER.user_id, PHONE_OWNER.device_id, NOW, role="primary")
    users.add_device(COMPANION.user_id, COMPANION.device_id, NOW, role="companion", key_index=1)
    return users


def check(users: UsersStore, pin: str | None, now: float) -> None:
    lock.check_reregistration(PHONE_OWNER.user_id, pin, users=users, limits=LIMITS, now=now)


def failures(users: UsersStore) -> int:
    state = users.registration_lock(PHONE_OWNER.user_id)
    assert state is not None
    return state.failures


# -- the PIN and its verifier -------------------------------------------------------


@pytest.mark.parametrize("pin", ["123456", "0" * 64, "9876543210"])
def test_a_pin_is_6_to_64_ascii_digits(pin: str) -> None:
    assert lock.parse_pin(pin) == pin


@pytest.mark.parametrize(
    "pin",
    ["12345", "0" * 65, "12345a", "123 456", "123456\n", "١٢٣٤٥٦", "", None, 123456],
)
def test_anything_else_is_refused_naming_the_field(pin: object) -> None:
    with pytest.raises(BadRequest) as refused:
        lock.parse_pin(pin)
    assert refused.value.details == {"field": "pin"}


def test_the_verifier_is_argon2id_with_the_agreed_cost_and_never_the_pin() -> None:
    verifier = lock.hash_pin(PIN)
    assert verifier.startswith("$argon2id$v=19$m=65536,t=3,")
    assert PIN not in verifier
    assert lock.verify_pin(verifier, PIN)
    assert not lock.verify_pin(verifier, "246811")
    assert not lock.verify_pin("not a verifier", PIN)


# -- setting and removing it ----------------------------------------------------------


def test_the_primary_sets_the_lock_and_only_a_verifier_is_stored(
    ports: Ports, users: UsersStore
) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)

    state = users.registration_lock(PHONE_OWNER.user_id)
    assert state is not None
    assert state.verifier is not None
    assert lock.verify_pin(state.verifier, PIN)
    stored = str(ports.ddb.scan(TableName=ports.table(Setting.USERS_TABLE))["Items"])
    assert PIN not in stored


def test_a_companion_may_neither_set_nor_remove_the_lock(users: UsersStore) -> None:
    with pytest.raises(Forbidden):
        lock.set_lock(COMPANION, PIN, users=users, now=NOW)
    assert users.registration_lock(PHONE_OWNER.user_id).verifier is None  # type: ignore[union-attr]

    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)
    with pytest.raises(Forbidden):
        lock.remove_lock(COMPANION, users=users)
    assert users.registration_lock(PHONE_OWNER.user_id).verifier is not None  # type: ignore[union-attr]


def test_a_signed_out_device_may_not_touch_it(users: UsersStore) -> None:
    users.revoke_device(PHONE_OWNER.user_id, PHONE_OWNER.device_id, NOW)
    with pytest.raises(Unauthorized):
        lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)


def test_a_malformed_pin_changes_nothing(users: UsersStore) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)
    before = users.registration_lock(PHONE_OWNER.user_id)
    with pytest.raises(BadRequest):
        lock.set_lock(PHONE_OWNER, "12ab56", users=users, now=NOW + 1)
    assert users.registration_lock(PHONE_OWNER.user_id) == before


def test_removing_it_lets_the_number_move_without_a_pin(users: UsersStore) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)
    lock.remove_lock(PHONE_OWNER, users=users)
    lock.remove_lock(PHONE_OWNER, users=users)  # no lock is no error
    check(users, None, NOW + 10)


# -- re-registration --------------------------------------------------------------------


def test_no_lock_no_pin_needed(users: UsersStore) -> None:
    check(users, None, NOW)
    check(users, "999999", NOW)  # a PIN nobody asked for is ignored


def test_without_the_pin_the_answer_is_locked_with_the_tries_left(users: UsersStore) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)
    with pytest.raises(RegistrationLocked) as locked:
        check(users, None, NOW + 1)
    assert locked.value.status == 423
    assert locked.value.to_dict() == {
        "code": "registration_locked",
        "message": "this number's account has a registration lock: give its PIN",
        "attempts_left": 5,
    }
    assert failures(users) == 0  # asking without a PIN is not a try


def test_the_right_pin_passes_and_resets_the_count(users: UsersStore) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)
    for n in range(3):
        with pytest.raises(RegistrationLocked):
            check(users, "111111", NOW + n)
    assert failures(users) == 3
    check(users, PIN, NOW + 10)
    assert failures(users) == 0
    assert users.registration_lock(PHONE_OWNER.user_id).verifier is not None  # type: ignore[union-attr]


def test_five_wrong_pins_are_free_then_each_try_waits_twice_as_long(users: UsersStore) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)
    t = NOW
    for left in (4, 3, 2, 1):
        with pytest.raises(RegistrationLocked) as locked:
            check(users, "000000", t)
        assert (locked.value.attempts_left, locked.value.retry_after) == (left, None)
        t += 1
    with pytest.raises(RegistrationLocked) as locked:
        check(users, "000000", t)  # the fifth: the next one waits a minute
    assert (locked.value.attempts_left, locked.value.retry_after) == (0, 60)

    with pytest.raises(PinBackoff) as backoff:
        check(users, PIN, t + 20)  # even the right PIN must wait
    assert (backoff.value.status, backoff.value.code, backoff.value.retry_after) == (
        429,
        "pin_backoff",
        40,
    )
    with pytest.raises(RegistrationLocked) as locked:
        check(users, None, t + 20)  # asking without a PIN says how long
    assert locked.value.retry_after == 40
    assert failures(users) == 5  # a try refused for waiting is not counted

    t += 60
    with pytest.raises(RegistrationLocked) as locked:
        check(users, "000000", t)  # the sixth: two minutes
    assert locked.value.retry_after == 120
    with pytest.raises(PinBackoff) as backoff:
        check(users, "000000", t + 119)
    assert backoff.value.retry_after == 1

    t += 120
    with pytest.raises(RegistrationLocked) as locked:
        check(users, "000000", t)  # the seventh: four minutes
    assert locked.value.retry_after == 240

    check(users, PIN, t + 240)
    assert failures(users) == 0


@pytest.mark.parametrize(
    ("counted", "wait"),
    [(0, 0), (4, 0), (5, 60), (6, 120), (7, 240), (15, 61440), (16, DAY), (10**6, DAY)],
)
def test_the_wait_grows_as_2_to_the_n_minus_5_minutes_capped_at_a_day(
    counted: int, wait: int
) -> None:
    assert lock.pin_wait(counted, LIMITS) == wait


def test_concurrent_tries_at_one_count_cannot_both_be_checked(users: UsersStore) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)
    verifier = users.registration_lock(PHONE_OWNER.user_id).verifier  # type: ignore[union-attr]
    assert verifier is not None
    assert users.claim_pin_try(PHONE_OWNER.user_id, verifier, 0, NOW)
    # a second try that read the same count loses the conditional write
    assert not users.claim_pin_try(PHONE_OWNER.user_id, verifier, 0, NOW)
    # and one against a replaced lock too
    assert not users.claim_pin_try(PHONE_OWNER.user_id, "$argon2id$other", 1, NOW)
    assert failures(users) == 1


def test_an_account_inactive_for_7_days_loses_its_lock(users: UsersStore) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)
    users.record_active(PHONE_OWNER.user_id, NOW + DAY)  # a device connected a day later

    with pytest.raises(RegistrationLocked):
        check(users, None, NOW + 8 * DAY - 1)  # 7 days after the activity, less a second
    check(users, None, NOW + 8 * DAY)  # 7 days: bypassed ...
    state = users.registration_lock(PHONE_OWNER.user_id)
    assert state is not None
    assert state.verifier is None
    check(users, None, NOW + 8 * DAY + 1)


def test_activity_never_moves_backwards_and_wrong_pins_are_not_activity(
    users: UsersStore,
) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW)
    users.record_active(PHONE_OWNER.user_id, NOW + 3 * DAY)
    users.record_active(PHONE_OWNER.user_id, NOW + DAY)
    state = users.registration_lock(PHONE_OWNER.user_id)
    assert state is not None
    assert state.last_active == NOW + 3 * DAY
    for n in range(3):  # an attacker's tries keep nothing alive
        with pytest.raises(RegistrationLocked):
            check(users, "000000", NOW + 9 * DAY + n)
    check(users, None, NOW + 10 * DAY)


def test_without_recorded_activity_the_lock_counts_from_when_it_was_set(
    users: UsersStore,
) -> None:
    lock.set_lock(PHONE_OWNER, PIN, users=users, now=NOW + 2 * DAY)
    with pytest.raises(RegistrationLocked):
        check(users, None, NOW + 9 * DAY - 1)
    check(users, None, NOW + 9 * DAY)


def test_recording_activity_for_an_unknown_user_is_ignored(users: UsersStore) -> None:
    users.record_active("b" * 32, NOW)
    assert users.registration_lock("b" * 32) is None
