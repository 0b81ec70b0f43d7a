"""Key upload, count and bundle claims (moto in-process)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from msgspec.structs import replace
from nacl.signing import SigningKey

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import prekeys
from parley_server.logic.ports import Caller
from parley_server.logic.prekeys import KeyUpload, PrekeyIn, SignedPrekeyIn, b64
from parley_server.models.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, RateLimited
from tests.conftest import FakeAws
from tests.device_lists import list_devices
from tests.unit.conftest import Ports

ALICE = Caller("a" * 32, "1" * 16)
BOB = Caller("b" * 32, "2" * 16)
BOB_PHONE = Caller("b" * 32, "3" * 16)
NOW = 1_700_000_000.0
LIMITS = Limits()


def upload_for(identity: SigningKey, otk_ids: range = range(3), spk_id: int = 1) -> KeyUpload:
    spk = SigningKey.generate().verify_key.encode()  # any 32 bytes stand in for an X25519 key
    return KeyUpload(
        identity_key=b64(identity.verify_key.encode()),
        signed_prekey=SignedPrekeyIn(spk_id, b64(spk), b64(identity.sign(spk).signature)),
        one_time_prekeys=tuple(PrekeyIn(i, b64(bytes([i % 256]) * 32)) for i in otk_ids),
    )


@dataclass
class Env(Ports):
    """Alice and Bob, Bob with two devices, none of which has uploaded keys."""

    def __post_init__(self) -> None:
        users = self.users
        for p, phone in ((ALICE, "+14155552671"), (BOB, "+12025550123")):
            users.create_user(p.user_id, phone, now=NOW)
        for p in (ALICE, BOB, BOB_PHONE):
            users.add_device(p.user_id, p.device_id, now=NOW)
        list_devices(users, ALICE.user_id, [ALICE.device_id])
        list_devices(users, BOB.user_id, [BOB.device_id, BOB_PHONE.device_id])

    def upload(self, who: Caller, upload: KeyUpload) -> None:
        self.call(prekeys.upload_keys, who, upload, limits=LIMITS)

    def claim(self, caller: Caller, target: str, now: float = NOW) -> prekeys.Bundle:
        return self.call(prekeys.claim_bundle, caller, target, limits=LIMITS, now=now)

    def count(self, caller: Caller) -> int:
        return self.call(prekeys.count_one_time, caller)

    def items(self) -> list[dict[str, Any]]:
        return list(self.ddb.scan(TableName=self.table(Setting.PREKEYS_TABLE))["Items"])


@pytest.fixture
def env(aws: FakeAws) -> Env:
    return Env(aws)


def test_uploaded_keys_make_the_device_visible_and_are_counted(env: Env) -> None:
    assert env.users.devices(BOB.user_id) == []
    env.upload(BOB, upload_for(SigningKey.generate(), range(5)))
    assert [d.device_id for d in env.users.devices(BOB.user_id)] == [BOB.device_id]
    assert env.count(BOB) == 5
    assert env.count(BOB_PHONE) == 0


def test_a_bundle_per_device_consumes_one_one_time_prekey_each(env: Env) -> None:
    bob_identity, phone_identity = SigningKey.generate(), SigningKey.generate()
    env.upload(BOB, upload_for(bob_identity, range(2)))
    env.upload(BOB_PHONE, upload_for(phone_identity, range(10, 11)))
    bundle = env.claim(ALICE, BOB.user_id)
    by_device = {d.device_id: d for d in bundle.devices}
    assert set(by_device) == {BOB.device_id, BOB_PHONE.device_id}
    assert by_device[BOB.device_id].identity_key == bob_identity.verify_key.encode()
    first = by_device[BOB.device_id].one_time_prekey
    assert first is not None
    assert first.key_id in (0, 1)
    assert by_device[BOB_PHONE.device_id].one_time_prekey is not None
    assert env.count(BOB) == 1
    # the phone has none left: its bundle falls back to the signed prekey alone
    again = {d.device_id: d for d in env.claim(ALICE, BOB.user_id).devices}
    assert again[BOB_PHONE.device_id].one_time_prekey is None
    assert again[BOB_PHONE.device_id].signed_prekey.key_id == 1
    second = again[BOB.device_id].one_time_prekey
    assert second is not None
    assert {first.key_id, second.key_id} == {0, 1}


def test_a_claim_makes_nobody_a_contact(env: Env) -> None:
    # fetching keys is no relationship: last seen for "contacts" stays hidden both ways
    env.upload(BOB, upload_for(SigningKey.generate()))
    env.claim(ALICE, BOB.user_id)
    assert env.users.presence_view(ALICE.user_id, BOB.user_id)[2] is False
    assert env.users.presence_view(BOB.user_id, ALICE.user_id)[2] is False


class MotoReadRetry:
    """moto's in-process DynamoDB iterates a table's dict while other threads insert
    into it ("dictionary changed size during iteration"); DynamoDB itself has no such
    fault. Reads that trip over it are asked again. Writes pass through untouched, so
    the conditional deletes under test race for real."""

    READS = frozenset({"query", "get_item", "batch_get_item"})

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)
        if name not in self.READS:
            return call

        def read(**kwargs: Any) -> Any:
            for _ in range(20):
                try:
                    return call(**kwargs)
                except RuntimeError as exc:
                    if "changed size during iteration" not in str(exc):
                        raise
            return call(**kwargs)

        return read


class Retrying(Ports):
    """The same tables, read through MotoReadRetry."""

    @property
    def ddb(self) -> Any:
        return MotoReadRetry(super().ddb)


def test_concurrent_claims_never_hand_out_a_key_twice(env: Env, aws: FakeAws) -> None:
    env.upload(BOB, upload_for(SigningKey.generate(), range(30)))
    claimers = [Caller(f"{i:032x}", "4" * 16) for i in range(40)]
    seen: list[int | None] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(claimers))
    retrying = Retrying(aws)

    def claim(caller: Caller) -> None:
        barrier.wait()
        bundle = retrying.call(prekeys.claim_bundle, caller, BOB.user_id, limits=LIMITS, now=NOW)
        with lock:
            seen.extend(
                d.one_time_prekey.key_id if d.one_time_prekey else None for d in bundle.devices
            )

    threads = [threading.Thread(target=claim, args=(c,)) for c in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [k for k in seen if k is not None]
    assert len(seen) == 40
    assert sorted(keys) == list(range(30))  # every key exactly once
    assert seen.count(None) == 10  # the rest fell back to the signed prekey
    assert env.count(BOB) == 0


def test_unknown_users_and_users_without_keys_are_not_found(env: Env) -> None:
    with pytest.raises(NotFound):
        env.claim(ALICE, "c" * 32)
    with pytest.raises(NotFound):
        env.claim(ALICE, BOB.user_id)  # devices, but no keys uploaded yet
    with pytest.raises(BadRequest):
        env.claim(ALICE, "not-a-user-id")


def test_one_requester_cannot_drain_one_persons_prekeys(env: Env) -> None:
    env.upload(BOB, upload_for(SigningKey.generate(), range(50)))
    for _ in range(LIMITS.bundle_claims_per_target_per_hour):
        env.claim(ALICE, BOB.user_id)
    with pytest.raises(RateLimited):
        env.claim(ALICE, BOB.user_id)
    assert env.count(BOB) == 50 - LIMITS.bundle_claims_per_target_per_hour


def test_a_bad_signature_is_refused_and_nothing_is_stored(env: Env) -> None:
    identity = SigningKey.generate()
    good = upload_for(identity)
    forged = replace(
        good,
        signed_prekey=replace(
            good.signed_prekey, signature=b64(SigningKey.generate().sign(b"x" * 32).signature)
        ),
    )
    with pytest.raises(BadRequest) as refused:
        env.upload(BOB, forged)
    assert refused.value.code == "invalid_signature"
    assert env.items() == []
    assert env.users.devices(BOB.user_id) == []


@pytest.mark.parametrize(
    "change",
    [
        {"identity_key": b64(b"x" * 31)},
        {"identity_key": "not base64!"},
        {"identity_key": b64(b"x" * 32) + "\n"},
        {"signed_prekey": SignedPrekeyIn(-1, b64(b"x" * 32), b64(b"s" * 64))},
        {"signed_prekey": SignedPrekeyIn(2**31, b64(b"x" * 32), b64(b"s" * 64))},
        {"signed_prekey": SignedPrekeyIn(1, b64(b"x" * 33), b64(b"s" * 64))},
        {"signed_prekey": SignedPrekeyIn(1, b64(b"x" * 32), b64(b"s" * 63))},
        {"one_time_prekeys": (PrekeyIn(1, b64(b"x" * 32)), PrekeyIn(1, b64(b"y" * 32)))},
        {"one_time_prekeys": (PrekeyIn(-5, b64(b"x" * 32)),)},
        {"one_time_prekeys": (PrekeyIn(5, b64(b"x" * 16)),)},
    ],
)
def test_malformed_keys_are_refused_and_nothing_is_stored(env: Env, change: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        env.upload(BOB, replace(upload_for(SigningKey.generate()), **change))
    assert env.items() == []


def test_too_many_one_time_prekeys_in_one_upload_is_refused(env: Env) -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        env.upload(BOB, upload_for(SigningKey.generate(), range(101)))
    assert refused.value.status == 413
    assert env.items() == []
    env.upload(BOB, upload_for(SigningKey.generate(), range(100)))
    assert env.count(BOB) == 100


def test_a_device_cannot_silently_change_its_identity_key(env: Env) -> None:
    identity = SigningKey.generate()
    env.upload(BOB, upload_for(identity, range(2)))
    with pytest.raises(Conflict) as refused:
        env.upload(BOB, upload_for(SigningKey.generate(), range(10, 12), spk_id=2))
    assert refused.value.code == "identity_key_changed"
    assert env.count(BOB) == 2
    # the same identity may rotate its signed prekey and add one-time prekeys
    env.upload(BOB, upload_for(identity, range(10, 12), spk_id=2))
    assert env.count(BOB) == 4
    [device] = env.claim(ALICE, BOB.user_id).devices
    assert device.signed_prekey.key_id == 2


def test_many_requesters_together_cannot_drain_one_persons_prekeys(env: Env) -> None:
    env.upload(BOB, upload_for(SigningKey.generate(), range(20)))
    limits = Limits(bundle_claims_of_target_per_hour=3)
    strangers = [Caller(f"{n:032x}", "4" * 16) for n in range(1, 5)]
    for stranger in strangers[:3]:
        env.call(prekeys.claim_bundle, stranger, BOB.user_id, limits=limits, now=NOW)

    with pytest.raises(RateLimited) as refused:
        env.call(prekeys.claim_bundle, strangers[3], BOB.user_id, limits=limits, now=NOW + 1)

    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after == 3600 - (NOW + 1) % 3600
    assert env.count(BOB) == 20 - 3
    # another person's bundle is not held back, and the next hour is a new budget
    env.upload(ALICE, upload_for(SigningKey.generate()))
    env.call(prekeys.claim_bundle, strangers[3], ALICE.user_id, limits=limits, now=NOW + 1)
    env.call(prekeys.claim_bundle, strangers[3], BOB.user_id, limits=limits, now=NOW + 3600)


def test_a_claim_that_leaves_a_device_few_one_time_prekeys_reports_it(env: Env) -> None:
    env.upload(BOB, upload_for(SigningKey.generate(), range(4)))
    env.upload(BOB_PHONE, upload_for(SigningKey.generate(), range(10, 30)))
    limits = Limits(prekeys_low_below=3)

    def left() -> dict[str, int | None]:
        bundle = env.call(prekeys.claim_bundle, ALICE, BOB.user_id, limits=limits, now=NOW)
        return {device.device_id: device.left for device in bundle.devices}

    # 4 keys: the claims leave 3 (enough), then 2, 1, 0 (low), then none is left to give
    assert left() == {BOB.device_id: None, BOB_PHONE.device_id: None}
    assert [left()[BOB.device_id] for _ in range(3)] == [2, 1, 0]
    drained = env.call(prekeys.claim_bundle, ALICE, BOB.user_id, limits=limits, now=NOW)
    (bob,) = [d for d in drained.devices if d.device_id == BOB.device_id]
    assert (bob.one_time_prekey, bob.left) == (None, 0)
    assert [d.device_id for d in drained.low] == [BOB.device_id]
    assert [d.device_id for d in drained.drained] == [BOB.device_id]


def test_a_device_left_few_one_time_prekeys_is_told_on_its_live_connections(env: Env) -> None:
    from parley_server.logic import connections as lifecycle

    env.upload(BOB, upload_for(SigningKey.generate(), range(2)))
    env.upload(BOB_PHONE, upload_for(SigningKey.generate(), range(10, 30)))
    bob = Caller(BOB.user_id, BOB.device_id, "bob=")
    phone = Caller(BOB.user_id, BOB_PHONE.device_id, "phone=")
    for caller in (bob, phone):
        env.call(lifecycle.connect, caller, now=NOW, limits=LIMITS)
    bundle = env.call(prekeys.claim_bundle, ALICE, BOB.user_id, limits=LIMITS, now=NOW)

    told = env.call(prekeys.report_low, bundle, now=NOW)

    assert told == 1
    assert env.gateway.posted["bob="] == [{"event": "prekeys_low", "left": 1}]
    assert "phone=" not in env.gateway.posted
