"""Access tokens (JWT) and rotating refresh tokens with reuse detection."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import tokens
from parley_server.logic.ports import Caller
from parley_server.logic.tokens import derive_keys
from parley_server.models.errors import DependencyUnavailable, InvalidToken
from parley_server.store.tokens import RefreshStore
from parley_server.store.users import UsersStore
from tests.conftest import FakeAws
from tests.unit.conftest import Ports

KEYS = derive_keys(b"k" * 64)
ALICE = Caller("a" * 32, "1" * 16)
NOW = 1_700_000_000.0
LIMITS = Limits()


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "parley",
        "aud": "parley",
        "sub": ALICE.user_id,
        "did": ALICE.device_id,
        "iat": int(NOW),
        "ims": int(NOW * 1000),
        "exp": int(NOW) + 900,
        "typ": "access",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_an_issued_token_names_its_user_and_device() -> None:
    token = tokens.issue_access_token(KEYS, ALICE, now=NOW, ttl_s=900)
    assert tokens.read_access_token(KEYS, token, now=NOW + 899) == ALICE
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    decoded = jwt.decode(
        token, KEYS.access, algorithms=["HS256"], audience="parley", options={"verify_exp": False}
    )
    assert decoded == claims()


def test_an_expired_token_is_refused() -> None:
    token = tokens.issue_access_token(KEYS, ALICE, now=NOW, ttl_s=900)
    with pytest.raises(InvalidToken):
        tokens.read_access_token(KEYS, token, now=NOW + 900)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(jwt.encode(claims(), b"x" * 64, algorithm="HS256"), id="foreign key"),
        pytest.param(jwt.encode(claims(), b"k" * 64, algorithm="HS384"), id="other hmac alg"),
        pytest.param(jwt.encode(claims(iss="other"), b"k" * 64, algorithm="HS256"), id="issuer"),
        pytest.param(jwt.encode(claims(aud="other"), b"k" * 64, algorithm="HS256"), id="audience"),
        pytest.param(jwt.encode(claims(typ="refresh"), b"k" * 64, algorithm="HS256"), id="type"),
        pytest.param(jwt.encode(claims(did=None), b"k" * 64, algorithm="HS256"), id="no device"),
        pytest.param(jwt.encode(claims(exp=None), b"k" * 64, algorithm="HS256"), id="no expiry"),
        pytest.param(
            jwt.encode(claims(sub="A" * 32), b"k" * 64, algorithm="HS256"), id="bad user id"
        ),
        pytest.param(
            jwt.encode(claims(did="zz"), b"k" * 64, algorithm="HS256"), id="bad device id"
        ),
        pytest.param(
            b64url(b'{"alg":"none","typ":"JWT"}')
            + "."
            + b64url(json.dumps(claims()).encode())
            + ".",
            id="alg none",
        ),
        pytest.param("", id="empty"),
        pytest.param("not.a.token", id="garbage"),
        pytest.param("a" * 5000, id="huge"),
    ],
)
def test_forged_or_foreign_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        tokens.read_access_token(KEYS, token, now=NOW)


def test_a_token_whose_ms_time_is_not_in_its_second_is_refused() -> None:
    def signed(**changes: Any) -> str:
        return jwt.encode(claims(**changes), KEYS.access, algorithm="HS256")

    assert tokens.read_access_token(KEYS, signed(), now=NOW) == ALICE
    # from before the claim: counted from the start of its second
    assert tokens.read_access_token(KEYS, signed(ims=None), now=NOW) == ALICE
    for bad in (int(NOW) * 1000 - 1, int(NOW) * 1000 + 1000, "1", True):
        with pytest.raises(InvalidToken):
            tokens.read_access_token(KEYS, signed(ims=bad), now=NOW)


def test_a_tampered_payload_is_refused() -> None:
    token = tokens.issue_access_token(KEYS, ALICE, now=NOW, ttl_s=900)
    header, _, signature = token.split(".")
    forged = b64url(json.dumps(claims(sub="b" * 32)).encode())
    with pytest.raises(InvalidToken):
        tokens.read_access_token(KEYS, f"{header}.{forged}.{signature}", now=NOW)


def test_key_confusion_with_an_asymmetric_algorithm_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), key, algorithm="ES256")
    with pytest.raises(InvalidToken):
        tokens.read_access_token(KEYS, token, now=NOW)


def test_the_otp_key_is_not_the_signing_key() -> None:
    assert KEYS.otp != KEYS.access
    assert len(KEYS.otp) == 32


@dataclass
class Stores(Ports):
    """Alice, signed up with one device."""

    def __post_init__(self) -> None:
        self.users.create_user(ALICE.user_id, "+14155552671", now=NOW)
        self.users.add_device(ALICE.user_id, ALICE.device_id, now=NOW)

    def sign_in(self) -> tokens.TokenPair:
        return self.call(tokens.sign_in_device, ALICE, keys=KEYS, limits=LIMITS, now=NOW)

    def use(self, refresh_token: str, now: float = NOW + 60) -> tokens.TokenPair:
        return self.call(tokens.refresh, refresh_token, keys=KEYS, limits=LIMITS, now=now)

    def authenticate(self, access_token: str, now: float = NOW + 60) -> Caller:
        return self.call(tokens.authenticate, access_token, keys=KEYS, now=now)

    def stored(self) -> str:
        items = self.ddb.scan(TableName=self.table(Setting.USERS_TABLE))["Items"]
        return json.dumps(items, default=str)


@pytest.fixture
def stores(aws: FakeAws) -> Stores:
    return Stores(aws)


def test_a_revoked_device_is_refused_even_with_a_valid_token(stores: Stores) -> None:
    pair = stores.sign_in()
    assert stores.authenticate(pair.access_token) == ALICE
    stores.users.revoke_device(ALICE.user_id, ALICE.device_id, now=NOW + 1)
    with pytest.raises(InvalidToken):
        stores.authenticate(pair.access_token)


def test_refresh_tokens_are_stored_only_as_hashes(stores: Stores) -> None:
    pair = stores.sign_in()
    assert pair.refresh_token not in stores.stored()


def test_a_refresh_rotates_and_the_old_token_is_spent(stores: Stores) -> None:
    first = stores.sign_in()
    second = stores.use(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert (second.user_id, second.device_id) == (ALICE.user_id, ALICE.device_id)
    assert stores.authenticate(second.access_token) == ALICE
    third = stores.use(second.refresh_token, now=NOW + 120)
    assert stores.authenticate(third.access_token, now=NOW + 120) == ALICE


def test_reusing_a_spent_refresh_token_revokes_the_whole_family_and_signs_the_device_out(
    stores: Stores,
) -> None:
    first = stores.sign_in()
    second = stores.use(first.refresh_token)
    stores.authenticate(stores.use(second.refresh_token, now=NOW + 70).access_token, now=NOW + 70)
    # someone replays a spent token: `second` was used, so no answer was lost
    with pytest.raises(InvalidToken):
        stores.use(first.refresh_token, now=NOW + 90)
    # the legitimate holder's newer token is refused too, and so is its access token
    with pytest.raises(InvalidToken):
        stores.use(second.refresh_token, now=NOW + 100)
    with pytest.raises(InvalidToken):
        stores.authenticate(second.access_token, now=NOW + 100)
    assert stores.users.devices(ALICE.user_id) == []


def test_a_refresh_that_fails_leaves_the_token_unspent_and_the_device_signed_in(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a throttled write while refreshing answers an error: the device keeps the token
    # it has, and its next try must work, not count as a reuse and sign it out
    pair = stores.sign_in()

    def throttled(*_args: object, **_kwargs: object) -> None:
        raise DependencyUnavailable("user store is throttling")

    with monkeypatch.context() as patched:
        patched.setattr(UsersStore, "record_active", throttled)
        with pytest.raises(DependencyUnavailable):
            stores.use(pair.refresh_token)
    again = stores.use(pair.refresh_token, now=NOW + 90)
    assert stores.authenticate(again.access_token, now=NOW + 90) == ALICE
    assert stores.users.device(ALICE.user_id, ALICE.device_id) is not None  # not signed out


def test_an_unknown_malformed_or_expired_refresh_token_is_refused(stores: Stores) -> None:
    pair = stores.sign_in()
    for bad in ("", "short", "A" * 43, pair.refresh_token + "x"):
        with pytest.raises(InvalidToken):
            stores.use(bad)
    with pytest.raises(InvalidToken):
        stores.use(pair.refresh_token, now=NOW + LIMITS.refresh_token_ttl_s + 1)
    # none of those spent or revoked anything
    assert stores.authenticate(stores.use(pair.refresh_token).access_token) == ALICE


def test_a_revoked_devices_refresh_token_is_refused(stores: Stores) -> None:
    pair = stores.sign_in()
    stores.users.revoke_device(ALICE.user_id, ALICE.device_id, now=NOW + 1)
    with pytest.raises(InvalidToken):
        stores.use(pair.refresh_token)


def test_a_device_that_lost_the_answer_to_its_refresh_gets_one_when_it_asks_again(
    stores: Stores,
) -> None:
    first = stores.sign_in()
    lost = stores.use(first.refresh_token)  # the answer never reached the device

    again = stores.use(first.refresh_token, now=NOW + 60 + LIMITS.refresh_reuse_grace_s)

    assert again.refresh_token != lost.refresh_token
    assert stores.authenticate(again.access_token, now=NOW + 100) == ALICE
    # the access tokens issued before are refused: the lost one, whoever holds it
    for old in (lost.access_token, first.access_token):
        with pytest.raises(InvalidToken):
            stores.authenticate(old, now=NOW + 100)
    # and it goes on refreshing with what it got
    third = stores.use(again.refresh_token, now=NOW + 200)
    assert stores.authenticate(third.access_token, now=NOW + 200) == ALICE
    # the answer it lost is worth nothing now: whoever shows it is not the device
    with pytest.raises(InvalidToken):
        stores.use(lost.refresh_token, now=NOW + 300)
    assert stores.users.devices(ALICE.user_id) == []


def test_an_answer_lost_twice_is_asked_for_again(stores: Stores) -> None:
    first = stores.sign_in()
    stores.use(first.refresh_token)
    stores.use(first.refresh_token, now=NOW + 70)  # lost again

    last = stores.use(first.refresh_token, now=NOW + 80)

    assert stores.authenticate(last.access_token, now=NOW + 80) == ALICE
    assert stores.authenticate(stores.use(last.refresh_token, now=NOW + 90).access_token) == ALICE


def test_a_spent_token_shown_after_its_successor_was_used_signs_the_device_out(
    stores: Stores,
) -> None:
    # the device got its answer and used it: whoever shows the old token is someone else
    first = stores.sign_in()
    second = stores.use(first.refresh_token)
    third = stores.use(second.refresh_token, now=NOW + 70)
    with pytest.raises(InvalidToken):
        stores.use(first.refresh_token, now=NOW + 80)
    assert stores.users.devices(ALICE.user_id) == []
    with pytest.raises(InvalidToken):
        stores.use(third.refresh_token, now=NOW + 90)


def test_a_spent_token_shown_past_the_grace_signs_the_device_out(stores: Stores) -> None:
    first = stores.sign_in()
    stores.use(first.refresh_token)
    with pytest.raises(InvalidToken):
        stores.use(first.refresh_token, now=NOW + 61 + LIMITS.refresh_reuse_grace_s)
    assert stores.users.devices(ALICE.user_id) == []


def test_a_retry_that_races_the_first_try_still_running_is_answered_too(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the device's first refresh is slow (its answer comes too late for the device);
    # the retry reads the token before the first try spends it, then loses the race
    first = stores.sign_in()
    real_find = RefreshStore.find
    stale = real_find(stores.tokens, tokens._hash(first.refresh_token), now=NOW)
    slow = stores.use(first.refresh_token)  # the first try, finishing meanwhile
    reads = iter([stale])

    def find(store: RefreshStore, token_hash: str, *, now: float) -> object:
        return next(reads, None) or real_find(store, token_hash, now=now)

    monkeypatch.setattr(RefreshStore, "find", find)
    retry = stores.use(first.refresh_token, now=NOW + 65)

    assert stores.authenticate(retry.access_token, now=NOW + 70) == ALICE
    with pytest.raises(InvalidToken):
        stores.authenticate(slow.access_token, now=NOW + 70)
