"""Push tokens over moto (DynamoDB and SNS): a token is used for wake pushes only
once the device that registered it echoes the challenge pushed through it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from msgspec.structs import replace

from parley_server.catalogue import Setting
from parley_server.config import Limits
from parley_server.logic import push
from parley_server.logic.ports import Caller
from parley_server.models.errors import BadRequest, Conflict
from parley_server.store.push import ChallengeJob, PushNotifier
from parley_server.store.users import UsersStore
from tests.conftest import FakeAws
from tests.device_lists import list_devices

LIMITS = Limits()
NOW = 1_700_000_000.0
ALICE = Caller("a" * 32, "1" * 16)
MALLORY = Caller("b" * 32, "2" * 16)
ALICE_TOKEN = "alice-phone-token"


@dataclass
class Queue:
    """The fan-out queue: challenge jobs, as GroupFanout would take them."""

    jobs: list[ChallengeJob] = field(default_factory=list)

    def enqueue(self, job: ChallengeJob) -> None:
        self.jobs.append(job)


@dataclass
class World:
    users: UsersStore
    notifier: PushNotifier
    queue: Queue
    sns: Any

    def register(self, caller: Caller, token: str, now: float = NOW) -> push.Challenged:
        challenged = push.register(
            caller,
            "fcm",
            token,
            users=self.users,
            notifier=self.notifier,
            challenges=self.queue,  # type: ignore[arg-type]
            limits=LIMITS,
            now=now,
        )
        for job in self.queue.jobs:  # GroupFanout pushes them
            self.notifier.send_challenge(job)
        return challenged

    def challenge(self) -> str:
        """The newest challenge pushed (what the app holding the token reads)."""
        return self.queue.jobs[-1].challenge

    def verify(self, caller: Caller, challenge: str, now: float = NOW + 5) -> push.Verified:
        return push.verify(
            caller,
            challenge,
            users=self.users,
            notifier=self.notifier,
            limits=LIMITS,
            now=now,
        )

    def woken(self, caller: Caller) -> list[str]:
        """The tokens a wake-up of `caller`'s device reaches."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sns import sns_backends

        endpoints = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].platform_endpoints
        before = {arn: len(e.messages) for arn, e in endpoints.items()}
        for device in self.users.devices(caller.user_id):
            if device.device_id == caller.device_id:
                self.notifier.notify(device)
        return [
            e.token
            for arn, e in endpoints.items()
            if len(e.messages) > before.get(arn, 0)
            and json.loads(json.loads(list(e.messages.values())[-1])["default"]) == {"type": "wake"}
        ]


@pytest.fixture
def world(aws: FakeAws) -> World:
    sns = aws.client("sns")
    app = sns.create_platform_application(Name="fcm", Platform="GCM", Attributes={})
    users = UsersStore(aws.client("dynamodb"), aws.settings[Setting.USERS_TABLE])
    for caller, phone in ((ALICE, "+447700900001"), (MALLORY, "+447700900002")):
        users.create_user(caller.user_id, phone, now=NOW)
        users.add_device(caller.user_id, caller.device_id, now=NOW)
        users.activate_device(caller.user_id, caller.device_id)
        list_devices(users, caller.user_id, [caller.device_id])
    return World(users, PushNotifier(sns, {"fcm": app["PlatformApplicationArn"]}), Queue(), sns)


def test_an_attacker_registering_alices_token_leaves_her_pushes_alone(world: World) -> None:
    world.register(ALICE, ALICE_TOKEN)
    world.verify(ALICE, world.challenge())
    assert world.woken(ALICE) == [ALICE_TOKEN]

    world.register(MALLORY, ALICE_TOKEN)  # the challenge goes to Alice's phone
    world.register(MALLORY, "mallory-token")
    with pytest.raises(BadRequest) as refused:
        world.verify(MALLORY, "a-challenge-he-guessed")
    assert refused.value.code == "invalid_push_challenge"

    assert world.woken(ALICE) == [ALICE_TOKEN]
    assert world.woken(MALLORY) == []
    assert world.users.push_claim("fcm", ALICE_TOKEN) == (ALICE.user_id, ALICE.device_id)


def test_a_pending_token_gets_no_wake_push_and_a_verified_one_does(world: World) -> None:
    challenged = world.register(ALICE, ALICE_TOKEN)
    assert challenged.sent is True
    assert challenged.expires_at == int(NOW) + LIMITS.push_challenge_ttl_s
    assert world.woken(ALICE) == []
    verified = world.verify(ALICE, world.challenge())
    assert (verified.platform, verified.moved) == ("fcm", False)
    assert world.woken(ALICE) == [ALICE_TOKEN]


def test_a_wrong_challenge_changes_nothing_but_its_count(world: World) -> None:
    world.register(ALICE, ALICE_TOKEN)
    before = world.users.push_state(ALICE.user_id, ALICE.device_id)
    with pytest.raises(BadRequest) as refused:
        world.verify(ALICE, "not-the-challenge")
    assert refused.value.code == "invalid_push_challenge"
    assert refused.value.details["attempts_left"] == LIMITS.push_challenge_max_attempts - 1
    after = world.users.push_state(ALICE.user_id, ALICE.device_id)
    assert after is not None
    assert before is not None
    assert after.challenge_attempts == 1
    assert replace(after, challenge_attempts=0) == replace(before, challenge_attempts=0)
    assert world.woken(ALICE) == []


def test_an_expired_challenge_is_refused_and_changes_nothing(world: World) -> None:
    world.register(ALICE, ALICE_TOKEN)
    before = world.users.push_state(ALICE.user_id, ALICE.device_id)
    with pytest.raises(BadRequest) as refused:
        world.verify(ALICE, world.challenge(), now=NOW + LIMITS.push_challenge_ttl_s)
    assert refused.value.code == "push_challenge_expired"
    assert world.users.push_state(ALICE.user_id, ALICE.device_id) == before
    assert world.woken(ALICE) == []


def test_the_last_wrong_attempt_drops_the_pending_token(world: World) -> None:
    world.register(ALICE, ALICE_TOKEN)
    right = world.challenge()
    for _ in range(LIMITS.push_challenge_max_attempts):
        with pytest.raises(BadRequest):
            world.verify(ALICE, "wrong")
    with pytest.raises(Conflict) as refused:
        world.verify(ALICE, right)
    assert refused.value.code == "no_push_challenge"


def test_a_token_moves_to_the_device_that_proves_it_holds_it(world: World) -> None:
    world.register(ALICE, ALICE_TOKEN)
    world.verify(ALICE, world.challenge())
    world.register(MALLORY, ALICE_TOKEN)
    assert world.woken(ALICE) == [ALICE_TOKEN]  # nothing moves before the proof
    verified = world.verify(MALLORY, world.challenge())
    assert verified.moved is True
    assert world.woken(MALLORY) == [ALICE_TOKEN]
    assert world.woken(ALICE) == []
    assert world.users.push_claim("fcm", ALICE_TOKEN) == (MALLORY.user_id, MALLORY.device_id)


def test_verifying_with_nothing_pending_is_a_conflict(world: World) -> None:
    with pytest.raises(Conflict) as refused:
        world.verify(ALICE, "anything")
    assert refused.value.code == "no_push_challenge"
