"""Sign-in and re-registration: a number that already has an account moves it to
the new phone (the old devices are told, then signed out), behind the account's
registration lock when it has one; a refused request leaves the code usable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from parley_server.config import Limits
from parley_server.logic import accounts, connections, otp, registration_lock, tokens
from parley_server.logic.ports import Caller
from parley_server.logic.tokens import TokenPair, derive_keys
from parley_server.models.errors import (
    BadRequest,
    DeviceSignedOut,
    InvalidCode,
    InvalidToken,
    RegistrationLocked,
    TooManyAttempts,
)
from parley_server.models.frames import PostOutcome
from tests.unit.conftest import Ports

KEYS = derive_keys(b"k" * 64)
LIMITS = Limits()
NOW = 1_700_000_000.0
PHONE = "+14155552671"
PIN = "13572468"
DAY = 24 * 3600


@dataclass
class Gateway:
    """@connections: what was posted and closed, in order."""

    log: list[tuple[str, str, Any]] = field(default_factory=list)

    def post(self, connection_id: str, event: Mapping[str, Any]) -> PostOutcome:
        self.log.append(("post", connection_id, dict(event)))
        return PostOutcome.DELIVERED

    def close(self, connection_id: str) -> bool:
        self.log.append(("close", connection_id, None))
        return True


@dataclass
class World:
    ports: Ports
    gateway: Gateway = field(default_factory=Gateway)
    now: float = NOW

    def text_code(self, code: str = "123456") -> str:
        """A code for PHONE, as POST /v1/auth/otp would have stored it."""
        self.now += 60  # past the resend cool-down
        self.ports.otps.start(
            PHONE,
            otp.code_hash(KEYS, PHONE, code),
            now=self.now,
            ttl_s=LIMITS.otp_ttl_s,
            cooldown_s=LIMITS.otp_resend_cooldown_s,
        )
        return code

    def sign_in(self, code: str, pin: str | None = None, at: float | None = None) -> TokenPair:
        pair, _ = self.sign_in_created(code, pin, at)
        return pair

    def sign_in_created(
        self, code: str, pin: str | None = None, at: float | None = None
    ) -> tuple[TokenPair, bool]:
        return self.ports.call(
            accounts.sign_in,
            PHONE,
            code,
            pin=pin,
            keys=KEYS,
            refresh_tokens=self.ports.tokens,
            gateway=self.gateway,
            limits=LIMITS,
            now=self.now if at is None else at,
        )

    def connect(self, pair: TokenPair, connection_id: str) -> None:
        self.ports.connections.add(
            pair.user_id, connection_id, pair.device_id, now=self.now, ttl_s=3600
        )

    def signed_in(self, user_id: str) -> list[str]:
        return [d.device_id for d in self.ports.users.signed_in(user_id)]

    def lock(self, pair: TokenPair, pin: str = PIN) -> None:
        caller = Caller(pair.user_id, pair.device_id)
        registration_lock.set_lock(caller, pin, users=self.ports.users, now=self.now)


@pytest.fixture
def world(ports: Ports) -> World:
    return World(ports)


def test_the_first_sign_in_creates_the_account_with_this_device_as_primary(
    world: World,
) -> None:
    pair, created = world.sign_in_created(world.text_code())
    assert created
    [device] = world.ports.users.signed_in(pair.user_id)
    assert (device.device_id, device.role, device.key_index) == (pair.device_id, "primary", 0)
    # the code worked once
    with pytest.raises(InvalidCode):
        world.sign_in("123456")


def test_signing_in_again_moves_the_account_and_signs_the_old_devices_out(
    world: World,
) -> None:
    old = world.sign_in(world.text_code())
    users = world.ports.users
    assert users.set_account_identity(old.user_id, b"\x01" * 32)
    world.connect(old, "old-conn")

    new, created = world.sign_in_created(world.text_code("654321"))

    assert not created
    assert new.user_id == old.user_id  # the number's account, its contacts and groups
    assert new.device_id != old.device_id
    assert world.signed_in(new.user_id) == [new.device_id]
    [device] = users.signed_in(new.user_id)
    assert (device.role, device.key_index) == ("primary", 0)
    # the old device heard why, before its connection was closed
    assert world.gateway.log == [
        (
            "post",
            "old-conn",
            {"event": "devices_changed", "reason": "reregistered", "device_id": new.device_id},
        ),
        ("close", "old-conn", None),
    ]
    assert world.ports.connections.of_user(old.user_id, now=world.now) == []
    # the account identity and device list are gone: the new primary starts afresh
    record = users.device_list(new.user_id)
    assert (record.account_identity, record.version, record.max_key_index) == (None, 0, 0)
    # and when it moved is kept, read with the devices (ticks for the old devices'
    # messages go to nobody); the new primary's identity keeps it
    assert users.devices_and_move(new.user_id) == ([], round(world.now * 1_000_000))
    assert users.set_account_identity(new.user_id, b"\x02" * 32)
    assert users.devices_and_move(new.user_id)[1] == round(world.now * 1_000_000)
    # the old device's tokens are refused
    with pytest.raises(DeviceSignedOut):
        world.ports.call(
            tokens.refresh, old.refresh_token, keys=KEYS, limits=LIMITS, now=world.now + 1
        )
    with pytest.raises(InvalidToken):
        world.ports.call(tokens.authenticate, old.access_token, keys=KEYS, now=world.now + 1)
    assert world.ports.call(
        tokens.authenticate, new.access_token, keys=KEYS, now=world.now + 1
    ) == Caller(new.user_id, new.device_id)


def test_a_locked_account_needs_the_pin_and_the_code_stays_usable(world: World) -> None:
    old = world.sign_in(world.text_code())
    world.lock(old)
    code = world.text_code("555000")

    with pytest.raises(RegistrationLocked) as locked:
        world.sign_in(code)
    assert locked.value.to_dict()["attempts_left"] == 5
    with pytest.raises(RegistrationLocked) as wrong:
        world.sign_in(code, pin="00000000")
    assert wrong.value.to_dict() == {
        "code": "registration_locked",
        "message": "wrong PIN",
        "attempts_left": 4,
    }
    # nothing moved
    assert world.signed_in(old.user_id) == [old.device_id]
    assert world.gateway.log == []

    new = world.sign_in(code, pin=PIN)  # the same code, with the PIN
    assert new.user_id == old.user_id
    assert world.signed_in(old.user_id) == [new.device_id]
    state = world.ports.users.registration_lock(old.user_id)
    assert state is not None
    assert state.failures == 0
    assert state.verifier is not None


def test_the_codes_own_attempt_limit_still_applies(world: World) -> None:
    old = world.sign_in(world.text_code())
    world.lock(old)
    code = world.text_code("777111")
    for _ in range(LIMITS.otp_max_attempts):
        with pytest.raises(RegistrationLocked):
            world.sign_in(code)
    with pytest.raises(TooManyAttempts):
        world.sign_in(code, pin=PIN)
    assert world.signed_in(old.user_id) == [old.device_id]


def test_a_wrong_code_never_reaches_the_lock(world: World) -> None:
    old = world.sign_in(world.text_code())
    world.lock(old)
    world.text_code("777111")
    with pytest.raises(InvalidCode):
        world.sign_in("111777", pin="00000000")
    state = world.ports.users.registration_lock(old.user_id)
    assert state is not None
    assert state.failures == 0


def test_a_malformed_pin_is_refused_before_the_code_is_tried(world: World) -> None:
    old = world.sign_in(world.text_code())
    world.lock(old)
    code = world.text_code("777111")
    for _ in range(LIMITS.otp_max_attempts + 2):
        with pytest.raises(BadRequest):
            world.sign_in(code, pin="12ab")
    assert world.sign_in(code, pin=PIN).user_id == old.user_id


def test_after_7_days_of_inactivity_the_lock_is_bypassed_and_removed(world: World) -> None:
    old = world.sign_in(world.text_code())
    world.lock(old)
    world.ports.users.record_active(old.user_id, world.now)
    world.now += LIMITS.reglock_inactivity_s
    code = world.text_code("246000")

    new = world.sign_in(code)

    assert new.user_id == old.user_id
    assert world.signed_in(old.user_id) == [new.device_id]
    state = world.ports.users.registration_lock(old.user_id)
    assert state is not None
    assert state.verifier is None


def test_refreshing_a_token_keeps_the_account_active_and_connecting_writes_nothing(
    world: World,
) -> None:
    pair = world.sign_in(world.text_code())
    world.lock(pair)
    world.ports.call(tokens.refresh, pair.refresh_token, keys=KEYS, limits=LIMITS, now=NOW + DAY)
    state = world.ports.users.registration_lock(pair.user_id)
    assert state is not None
    assert state.last_active == NOW + DAY

    # a connection is authorized by a token a refresh issued (and recorded) minutes ago:
    # $connect records the connection and nothing else
    caller = Caller(pair.user_id, pair.device_id, "conn-1")
    connections.connect(caller, now=NOW + DAY + 60, limits=LIMITS, records=world.ports.connections)
    assert world.ports.users.registration_lock(pair.user_id) == state
    (connection,) = world.ports.connections.of_user(pair.user_id, now=NOW + DAY + 60)
    assert (connection.connection_id, connection.connected_at) == ("conn-1", NOW + DAY + 60)
