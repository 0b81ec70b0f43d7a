"""Linking devices (logic/linking.py) over the real store (moto): pairing, approval,
completion, publishing lists, and every rule that refuses one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from nacl.signing import SigningKey

from parley_server.config import Limits
from parley_server.logic import devices, linking, prekeys, tokens
from parley_server.logic.device_list import ACCOUNT_PREFIX, DEVICE_PREFIX, HMAC_PREFIX, LIST_PREFIX
from parley_server.logic.ports import Caller
from parley_server.logic.prekeys import KeyUpload, PrekeyIn, SignedPrekeyIn
from parley_server.models.errors import BadRequest, Conflict, Forbidden, NotFound
from parley_server.models.frames import PostOutcome
from tests.conftest import FakeAws
from tests.unit.conftest import Ports

NOW = 1_700_000_000.0
LIMITS = Limits()
KEYS = tokens.derive_keys(b"k" * 32)
UID = "a" * 32
PHONE = Caller(UID, "0" * 16)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def upload_for(identity: SigningKey) -> KeyUpload:
    spk = SigningKey.generate().verify_key.encode()
    return KeyUpload(
        identity_key=b64(identity.verify_key.encode()),
        signed_prekey=SignedPrekeyIn(1, b64(spk), b64(identity.sign(spk).signature)),
        one_time_prekeys=(PrekeyIn(1, b64(b"\x01" * 32)),),
    )


@dataclass
class Closing:
    """The @connections API: records posts and closes."""

    posted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)

    def post(self, connection_id: str, event: Mapping[str, Any]) -> PostOutcome:
        self.posted.setdefault(connection_id, []).append(dict(event))
        return PostOutcome.DELIVERED

    def close(self, connection_id: str) -> bool:
        self.closed.append(connection_id)
        return True


@dataclass
class Pending:
    ref: str
    claim: str
    device_id: str
    key: SigningKey
    details: bytes = b""
    account_signature: bytes = b""


@dataclass
class World(Ports):
    phone_key: SigningKey = field(default_factory=SigningKey.generate)
    closing: Closing = field(default_factory=Closing)
    # the account's list as the primary knows it: (device_id, key_index, identity)
    entries: list[tuple[str, int, bytes]] = field(default_factory=list)
    version: int = 0

    def __post_init__(self) -> None:
        self.users.create_user(UID, "+14155552671", NOW)
        self.users.add_device(UID, PHONE.device_id, NOW)
        prekeys.upload_keys(
            PHONE, upload_for(self.phone_key), prekeys=self.prekeys, users=self.users, limits=LIMITS
        )

    @property
    def identity(self) -> bytes:
        return self.phone_key.verify_key.encode()

    def signed_list(
        self, entries: list[tuple[str, int, bytes]], version: int, **changes: Any
    ) -> tuple[str, str]:
        obj = {
            "user_id": UID,
            "version": version,
            "ts": 1,
            "account_identity": b64(self.identity),
            "devices": [
                {"device_id": d, "key_index": k, "identity": b64(i)} for d, k, i in entries
            ],
            **changes,
        }
        body = canonical(obj)
        return b64(body), b64(self.phone_key.sign(LIST_PREFIX + body).signature)

    def publish(
        self, entries: list[tuple[str, int, bytes]], version: int, caller: Caller = PHONE
    ) -> list[str]:
        body, signature = self.signed_list(entries, version)
        dropped = linking.publish_list(
            caller,
            body,
            signature,
            users=self.users,
            connections=self.connections,
            gateway=self.closing,
            limits=LIMITS,
            now=NOW,
        )
        self.entries, self.version = entries, version
        return dropped

    def first_list(self) -> None:
        self.publish([(PHONE.device_id, 0, self.identity)], 1)

    def start(self, source: str = "192.0.2.1") -> Pending:
        key = SigningKey.generate()
        made = linking.start_pairing(
            b64(key.verify_key.encode()),
            source=source,
            users=self.users,
            limiter=self.limiter,
            limits=LIMITS,
            now=NOW,
        )
        assert made.expires_in == 300
        return Pending(made.ref, b64(made.claim), made.device_id, key)

    def approve(
        self,
        pending: Pending,
        *,
        key_index: int | None = None,
        caller: Caller = PHONE,
        version: int | None = None,
        entries: list[tuple[str, int, bytes]] | None = None,
        details: dict[str, Any] | None = None,
        now: float = NOW,
    ) -> None:
        index = key_index if key_index is not None else max(e[1] for e in self.entries) + 1
        companion = pending.key.verify_key.encode()
        pending.details = canonical(
            details
            or {
                "user_id": UID,
                "device_id": pending.device_id,
                "key_index": index,
                "identity": b64(companion),
                "ts": 1,
            }
        )
        pending.account_signature = self.phone_key.sign(ACCOUNT_PREFIX + pending.details).signature
        mac = hmac.new(
            b"s" * 16, HMAC_PREFIX + pending.details + pending.account_signature, hashlib.sha256
        ).digest()
        new_entries = (
            entries
            if entries is not None
            else [*self.entries, (pending.device_id, index, companion)]
        )
        body, signature = self.signed_list(
            new_entries, version if version is not None else self.version + 1
        )
        linking.approve(
            caller,
            pending.ref,
            details=b64(pending.details),
            account_signature=b64(pending.account_signature),
            hmac=b64(mac),
            list_body=body,
            list_signature=signature,
            users=self.users,
            limits=LIMITS,
            now=now,
        )

    def complete(
        self, pending: Pending, *, signer: SigningKey | None = None, now: float = NOW
    ) -> tokens.TokenPair:
        message = DEVICE_PREFIX + pending.details + pending.account_signature + self.identity
        signature = (signer or pending.key).sign(message).signature
        pair = linking.complete(
            pending.ref,
            pending.claim,
            b64(signature),
            upload_for(pending.key),
            users=self.users,
            prekeys=self.prekeys,
            keys=KEYS,
            refresh_tokens=self.tokens,
            connections=self.connections,
            gateway=self.closing,
            limits=LIMITS,
            now=now,
        )
        current = self.users.device_list(UID)
        self.version = current.version
        assert current.body is not None
        self.entries = [
            (d["device_id"], d["key_index"], base64.b64decode(d["identity"]))
            for d in json.loads(current.body)["devices"]
        ]
        return pair

    def link(self) -> Caller:
        pending = self.start()
        self.approve(pending)
        pair = self.complete(pending)
        return Caller(pair.user_id, pair.device_id)

    def online(self, device: Caller, connection_id: str) -> None:
        self.connections.add(
            UID, connection_id, device.device_id, now=NOW, ttl_s=LIMITS.connection_ttl_s
        )

    def delivered_to(self) -> list[str]:
        return sorted(d.device_id for d in self.users.devices(UID))


@pytest.fixture
def world(aws: FakeAws) -> World:
    return World(aws)


# -- the account identity and the first list ------------------------------------------------


def test_the_notice_is_the_specs_shape() -> None:
    assert devices.devices_changed_event("linked", "1" * 16) == {
        "event": "devices_changed",
        "reason": "linked",
        "device_id": "1" * 16,
    }


def test_the_primary_records_the_account_identity_and_publishes_list_one(world: World) -> None:
    assert world.users.device_list(UID).account_identity == world.identity
    # keys uploaded but no list yet: nothing can be delivered to the account
    assert world.delivered_to() == []
    assert linking.published_list(UID, users=world.users) is None
    world.first_list()
    assert world.delivered_to() == [PHONE.device_id]
    published = linking.published_list(UID, users=world.users)
    assert published is not None
    assert json.loads(published.body)["version"] == 1


def test_the_first_list_must_name_just_the_primary(world: World) -> None:
    other = ("1" * 16, 1, b"\x05" * 32)
    with pytest.raises(Conflict) as refused:
        world.publish([(PHONE.device_id, 0, world.identity), other], 1)
    assert refused.value.code == "device_list_mismatch"
    assert world.users.device_list(UID).version == 0


def test_a_list_signed_by_another_key_changes_nothing(world: World) -> None:
    world.first_list()
    impostor = SigningKey.generate()
    body = canonical(
        {
            "user_id": UID,
            "version": 2,
            "ts": 1,
            "account_identity": b64(world.identity),
            "devices": [
                {"device_id": PHONE.device_id, "key_index": 0, "identity": b64(world.identity)}
            ],
        }
    )
    with pytest.raises(BadRequest) as refused:
        linking.publish_list(
            PHONE,
            b64(body),
            b64(impostor.sign(LIST_PREFIX + body).signature),
            users=world.users,
            connections=world.connections,
            gateway=world.closing,
            limits=LIMITS,
            now=NOW,
        )
    assert refused.value.code == "invalid_signature"
    assert world.users.device_list(UID).version == 1


# -- pairing ----------------------------------------------------------------------------------


def test_a_companion_is_linked_listed_and_the_others_told(world: World) -> None:
    world.first_list()
    world.online(PHONE, "phone-conn")
    pending = world.start()
    assert linking.status(pending.ref, pending.claim, users=world.users, now=NOW) == {
        "state": "pending"
    }
    world.approve(pending)
    answer = linking.status(pending.ref, pending.claim, users=world.users, now=NOW)
    assert answer["state"] == "approved"
    assert answer["user_id"] == UID
    assert base64.b64decode(answer["details"]) == pending.details
    assert base64.b64decode(answer["account_identity"]) == world.identity
    # approved, not completed: not a device yet
    assert world.delivered_to() == [PHONE.device_id]

    pair = world.complete(pending)
    assert (pair.user_id, pair.device_id) == (UID, pending.device_id)
    assert world.delivered_to() == sorted([PHONE.device_id, pending.device_id])
    roles = {d.device_id: (d.role, d.key_index) for d in world.users.signed_in(UID)}
    assert roles == {PHONE.device_id: ("primary", 0), pending.device_id: ("companion", 1)}
    assert world.users.device_list(UID).max_key_index == 1
    assert world.closing.posted["phone-conn"] == [
        devices.devices_changed_event("linked", pending.device_id)
    ]
    # its tokens work: it is a signed-in device of the account
    caller = tokens.authenticate(pair.access_token, keys=KEYS, users=world.users, now=NOW)
    assert caller == Caller(UID, pending.device_id)


def test_a_second_completion_is_refused_and_the_pairing_keeps_no_account_data(
    world: World,
) -> None:
    world.first_list()
    pending = world.start()
    world.approve(pending)
    world.complete(pending)
    with pytest.raises(Conflict) as refused:
        world.complete(pending)
    assert refused.value.code == "pairing_used"
    used = world.users.pairing(pending.ref, NOW)
    assert used is not None
    assert used.state == "used"
    assert used.approval is None


def test_an_expired_pairing_is_gone_for_every_step(world: World) -> None:
    world.first_list()
    pending = world.start()
    later = NOW + LIMITS.pairing_ttl_s
    with pytest.raises(NotFound):
        linking.status(pending.ref, pending.claim, users=world.users, now=later)
    with pytest.raises(NotFound):
        world.approve(pending, now=later)
    world.approve(pending)
    with pytest.raises(NotFound):
        world.complete(pending, now=later)
    assert world.delivered_to() == [PHONE.device_id]


def test_a_wrong_claim_is_answered_as_an_unknown_pairing(world: World) -> None:
    world.first_list()
    pending = world.start()
    world.approve(pending)
    wrong = b64(b"\x00" * 32)
    with pytest.raises(NotFound) as unknown:
        linking.status(pending.ref, wrong, users=world.users, now=NOW)
    with pytest.raises(NotFound) as also_unknown:
        linking.status("f" * 32, pending.claim, users=world.users, now=NOW)
    assert unknown.value.message == also_unknown.value.message
    pending.claim = wrong
    with pytest.raises(NotFound):
        world.complete(pending)
    assert world.delivered_to() == [PHONE.device_id]


def test_only_the_primary_approves(world: World) -> None:
    world.first_list()
    laptop = world.link()
    pending = world.start()
    with pytest.raises(Forbidden, match="only the primary device can link devices"):
        world.approve(pending, caller=laptop)
    pairing = world.users.pairing(pending.ref, NOW)
    assert pairing is not None
    assert pairing.state == "pending"


def test_an_approval_twice_is_refused(world: World) -> None:
    world.first_list()
    pending = world.start()
    world.approve(pending)
    with pytest.raises(Conflict) as refused:
        world.approve(pending, key_index=2, version=3)
    assert refused.value.code == "pairing_used"


def test_a_key_index_is_never_reused(world: World) -> None:
    world.first_list()
    laptop = world.link()  # key index 1
    # unlink it: index 1 stays spent
    world.publish([(PHONE.device_id, 0, world.identity)], world.version + 1)
    assert laptop.device_id not in world.delivered_to()
    pending = world.start()
    with pytest.raises(Conflict) as refused:
        world.approve(pending, key_index=1)
    assert refused.value.code == "key_index_used"
    world.approve(pending, key_index=2)


def test_an_approval_signed_by_another_key_is_refused(world: World) -> None:
    world.first_list()
    pending = world.start()
    world.phone_key, real = SigningKey.generate(), world.phone_key
    with pytest.raises(BadRequest) as refused:
        world.approve(pending)
    world.phone_key = real
    assert refused.value.code == "invalid_signature"
    world.approve(pending)  # nothing was spent by the refusal


def test_details_must_name_the_pairing(world: World) -> None:
    world.first_list()
    pending = world.start()
    other = SigningKey.generate().verify_key.encode()
    for wrong in (
        {"user_id": "b" * 32, "device_id": pending.device_id},
        {"user_id": UID, "device_id": "9" * 16},
    ):
        with pytest.raises(Conflict) as refused:
            world.approve(
                pending,
                details={
                    **wrong,
                    "key_index": 1,
                    "identity": b64(pending.key.verify_key.encode()),
                    "ts": 1,
                },
            )
        assert refused.value.code == "pairing_mismatch"
    with pytest.raises(Conflict):
        world.approve(
            pending,
            details={
                "user_id": UID,
                "device_id": pending.device_id,
                "key_index": 1,
                "identity": b64(other),
                "ts": 1,
            },
        )


def test_the_new_list_must_be_the_next_version_and_add_just_this_device(world: World) -> None:
    world.first_list()
    pending = world.start()
    for version in (1, 3):
        with pytest.raises(Conflict) as refused:
            world.approve(pending, version=version)
        assert refused.value.code == "device_list_version"
    companion = pending.key.verify_key.encode()
    stranger = ("7" * 16, 2, b"\x07" * 32)
    with pytest.raises(Conflict) as refused:
        world.approve(
            pending,
            entries=[*world.entries, (pending.device_id, 1, companion), stranger],
        )
    assert refused.value.code == "device_list_mismatch"
    with pytest.raises(Conflict):
        # the list forgets the new device
        world.approve(pending, entries=list(world.entries))
    world.approve(pending)


def test_no_more_than_max_companions(world: World) -> None:
    world.first_list()
    for _ in range(LIMITS.max_companions):
        world.link()
    pending = world.start()
    with pytest.raises(Conflict) as refused:
        world.approve(pending)
    assert refused.value.code == "too_many_devices"
    assert len(world.delivered_to()) == 1 + LIMITS.max_companions


def test_a_completion_needs_the_companions_own_signature(world: World) -> None:
    world.first_list()
    pending = world.start()
    world.approve(pending)
    with pytest.raises(BadRequest) as refused:
        world.complete(pending, signer=SigningKey.generate())
    assert refused.value.code == "invalid_signature"
    assert world.users.device(UID, pending.device_id) is None
    world.complete(pending)


def test_a_completion_before_approval_is_refused(world: World) -> None:
    world.first_list()
    pending = world.start()
    with pytest.raises(Conflict) as refused:
        world.complete(pending)
    assert refused.value.code == "pairing_pending"


def test_pairings_are_rate_limited_per_source(world: World) -> None:
    from parley_server.models.errors import RateLimited

    for _ in range(LIMITS.pairings_per_source_hourly):
        world.start("198.51.100.7")
    with pytest.raises(RateLimited):
        world.start("198.51.100.7")
    world.start("198.51.100.8")


def test_a_malformed_identity_key_is_refused() -> None:
    with pytest.raises(BadRequest):
        linking.start_pairing(
            "short",
            source="x",
            users=None,  # type: ignore[arg-type]
            limiter=None,  # type: ignore[arg-type]
            limits=LIMITS,
            now=NOW,
        )


# -- publishing: unlinking, rollback ----------------------------------------------------------


def test_a_list_without_a_device_signs_it_out_at_once(world: World) -> None:
    world.first_list()
    laptop = world.link()
    world.online(PHONE, "phone-conn")
    world.online(laptop, "laptop-conn")
    dropped = world.publish([(PHONE.device_id, 0, world.identity)], world.version + 1)
    assert dropped == [laptop.device_id]
    assert world.users.device(UID, laptop.device_id) is None
    assert world.closing.closed == ["laptop-conn"]
    assert world.closing.posted["phone-conn"] == [
        devices.devices_changed_event("unlinked", laptop.device_id)
    ]
    assert world.delivered_to() == [PHONE.device_id]


def test_a_list_can_only_remove_devices_and_never_roll_back(world: World) -> None:
    world.first_list()
    world.link()
    current = list(world.entries)
    for version in (1, world.version):
        with pytest.raises(Conflict) as refused:
            world.publish(current, version)
        assert refused.value.code == "device_list_version"
    with pytest.raises(Conflict) as refused:
        world.publish([*current, ("8" * 16, 5, b"\x08" * 32)], world.version + 1)
    assert refused.value.code == "device_list_mismatch"
    assert len(world.delivered_to()) == 2


def test_only_the_primary_publishes(world: World) -> None:
    world.first_list()
    laptop = world.link()
    with pytest.raises(Forbidden):
        world.publish([(PHONE.device_id, 0, world.identity)], world.version + 1, caller=laptop)


def test_a_device_not_on_the_list_is_not_delivered_to(world: World) -> None:
    """A device inserted behind the service's back is not required, nor delivered to."""
    world.first_list()
    sneaky = Caller(UID, "5" * 16)
    world.users.add_device(UID, sneaky.device_id, NOW, role="companion", key_index=9)
    world.users.activate_device(UID, sneaky.device_id)
    assert world.delivered_to() == [PHONE.device_id]


# -- signing out: who may --------------------------------------------------------------------


def test_a_companion_signs_out_only_itself_the_primary_any(world: World) -> None:
    world.first_list()
    laptop = world.link()
    tablet = world.link()
    with pytest.raises(Forbidden):
        devices.may_sign_out(laptop, tablet.device_id, users=world.users)
    with pytest.raises(Forbidden):
        devices.may_sign_out(laptop, PHONE.device_id, users=world.users)
    devices.may_sign_out(laptop, laptop.device_id, users=world.users)
    devices.may_sign_out(PHONE, tablet.device_id, users=world.users)


def test_sign_out_all_tells_then_signs_out_every_device_but_one(world: World) -> None:
    world.first_list()
    laptop = world.link()
    world.online(PHONE, "phone-conn")
    world.online(laptop, "laptop-conn")
    new_primary = "6" * 16
    closed = devices.sign_out_all(
        UID,
        now=NOW,
        users=world.users,
        connections=world.connections,
        gateway=world.closing,
        keep=new_primary,
        reason="reregistered",
        device_id=new_primary,
    )
    assert closed == 2
    assert world.users.signed_in(UID) == []
    notice = {
        "event": "devices_changed",
        "reason": "reregistered",
        "device_id": new_primary,
    }
    assert world.closing.posted == {"phone-conn": [notice], "laptop-conn": [notice]}
    world.users.reset_devices(UID, NOW)
    assert world.users.device_list(UID).account_identity is None
    assert world.users.device_list(UID).version == 0
