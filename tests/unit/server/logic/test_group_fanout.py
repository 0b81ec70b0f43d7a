"""Group message fan-out against the real adapters in moto: one envelope per member
device (the sender's other devices too, never the sending device), live delivery,
push for the offline, refusals that change nothing, the queue for large groups."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest

from parley_server.config import Limits
from parley_server.logic import group_fanout, groups
from parley_server.logic.ports import Caller
from parley_server.models.errors import BadRequest, Conflict, NotFound
from parley_server.models.frames import CONNECTING_S, GroupSendFrame, PostOutcome, parse_send
from parley_server.models.groups import FanoutJob
from parley_server.store.groups import FanoutQueue
from tests.conftest import FakeAws
from tests.device_lists import device_key, list_devices
from tests.group_changes import Signer
from tests.unit.conftest import Ports

NOW = 1_800_000_000.0
QUEUE = "parley-test-jobs.fifo"
LIMITS = Limits()
ENDPOINTS = "arn:aws:sns:us-east-1:123456789012:endpoint/APNS/parley"


class World(Ports):
    """The real stores, with the users table as the directory of devices."""

    def person(self, devices: int = 1) -> list[Caller]:
        """A user with `devices` active devices that push can wake, none connected yet."""
        user_id = secrets.token_hex(16)
        users = self.users
        users.create_user(user_id, f"+1555{secrets.randbelow(10**7):07d}", NOW)
        found = []
        for _ in range(devices):
            device_id = secrets.token_hex(8)
            users.add_device(user_id, device_id, NOW)
            users.activate_device(user_id, device_id)
            users.set_push(user_id, device_id, "apns", device_id, f"{ENDPOINTS}/{device_id}")
            found.append(Caller(user_id, device_id, ""))
        list_devices(users, user_id, [c.device_id for c in found])
        return found

    def online(self, device: Caller, *, since: float = NOW) -> Caller:
        connection_id = secrets.token_hex(6) + "="
        self.connections.add(device.user_id, connection_id, device.device_id, now=since, ttl_s=3600)
        return Caller(device.user_id, device.device_id, connection_id)

    def signer(self, device: Caller) -> Signer:
        """The device as it signs group changes (its key from its device list)."""
        return Signer(
            device.user_id, device.device_id, device_key(device.user_id, device.device_id)
        )

    def group(self, admin: Caller, *members: Caller) -> str:
        member_ids = sorted({m.user_id for m in members} - {admin.user_id})
        create = self.signer(admin).create(secrets.token_hex(16), "Climbing", member_ids)
        group = self.call(groups.create_group, admin, create, now=NOW, limits=LIMITS)
        return group.group_id

    def change(self, device: Caller, group_id: str, kind: str, *members: str) -> None:
        """A signed change of `kind` naming `members`, made by `device`."""
        group = self.groups.load(group_id)
        assert group is not None
        change = self.signer(device).next(kind, group, members=sorted(members))
        self.call(groups.apply_change, device, group_id, change, now=NOW, limits=LIMITS)

    def send(
        self,
        sender: Caller,
        group_id: str,
        body: bytes = b"sender key ciphertext",
        *,
        client_id: str = "g-1",
        version: int | None = None,
        inline_members: int = group_fanout.INLINE_MEMBERS,
        chunk_members: int = group_fanout.CHUNK_MEMBERS,
        ttl: int | None = None,
    ) -> group_fanout.GroupSendOutcome:
        raw: dict[str, Any] = {
            "id": client_id,
            "to": f"g:{group_id}",
            "body": base64.b64encode(body).decode(),
        }
        if version is not None:
            raw["version"] = version
        if ttl is not None:
            raw["ttl"] = ttl
        frame = parse_send(raw, max_payload_bytes=64 * 1024)
        assert isinstance(frame, GroupSendFrame)
        return self.call(
            group_fanout.send,
            frame,
            sender,
            now=NOW,
            limits=LIMITS,
            directory=self.users,
            inline_members=inline_members,
            chunk_members=chunk_members,
        )

    def fan_out(self, job: FanoutJob, now: float = NOW) -> group_fanout.FanoutOutcome:
        return self.call(group_fanout.fan_out, job, now=now, directory=self.users)

    def pending(self, device: Caller) -> list[Any]:
        return self.mailbox.page(
            device.user_id, device.device_id, after=None, limit=100, now=NOW
        ).envelopes

    def events(self, device: Caller) -> list[dict[str, Any]]:
        return self.gateway.posted.get(device.connection_id, [])


@pytest.fixture
def world(aws: FakeAws) -> World:
    return World(aws)


def test_every_member_device_gets_one_envelope_but_the_sending_device(world: World) -> None:
    phone, laptop = world.person(devices=2)
    (bob,) = world.person()
    carol_phone, carol_tablet = world.person(devices=2)
    gid = world.group(phone, bob, carol_phone)
    phone, laptop, bob = world.online(phone), world.online(laptop), world.online(bob)

    outcome = world.send(phone, gid, b"one ciphertext for all", client_id="hello-1")

    assert outcome.event["event"] == "sent"
    assert outcome.event["id"] == "hello-1"
    assert (outcome.members, outcome.jobs) == (3, 0)
    assert world.pending(phone) == []
    for device in (laptop, bob, carol_phone, carol_tablet):
        (envelope,) = world.pending(device)
        assert envelope.body == b"one ciphertext for all"
        assert envelope.group == gid
        assert (envelope.sender, envelope.sender_device) == (phone.user_id, phone.device_id)
    # online devices got it at once, with the group named; the sender's phone did not
    for device in (laptop, bob):
        (event,) = world.events(device)
        assert event["group"] == gid
        assert event["id"] == f"m#{phone.user_id}#{phone.device_id}#hello-1"
        assert event["ts"] == outcome.event["ts"]
    assert world.events(phone) == []
    assert sorted(world.pusher.woken) == sorted([carol_phone.device_id, carol_tablet.device_id])
    assert outcome.fanout is not None
    assert (outcome.fanout.devices, outcome.fanout.delivered) == (4, 2)


def test_a_disappearing_group_message_is_kept_no_longer_than_its_timer(world: World) -> None:
    (alice,), (bob,) = world.person(), world.person()
    gid = world.group(alice, bob)
    day = 24 * 3600

    world.send(alice, gid, client_id="gone", ttl=day)
    # the same through the queue (a large group's path)
    world.send(alice, gid, client_id="queued", ttl=day, inline_members=1)

    (envelope,) = world.pending(bob)
    assert (envelope.client_id, envelope.expires_at) == ("gone", int(NOW) + day)
    (job,) = world.queue.jobs
    assert (job.client_id, job.expires_at) == ("queued", int(NOW) + day)


def test_a_removed_member_gets_nothing_sent_after_the_removal(world: World) -> None:
    (alice,), (bob,), (mallory,) = world.person(), world.person(), world.person()
    gid = world.group(alice, bob, mallory)
    world.send(alice, gid, client_id="before")
    world.change(alice, gid, "remove", mallory.user_id)

    world.send(alice, gid, client_id="after")

    assert [e.client_id for e in world.pending(mallory)] == ["before"]
    assert sorted(e.client_id for e in world.pending(bob)) == ["after", "before"]


def test_a_non_member_cannot_send_and_nothing_is_stored(world: World) -> None:
    (alice,), (bob,), (mallory,) = world.person(), world.person(), world.person()
    gid = world.group(alice, bob)

    with pytest.raises(NotFound) as refused:
        world.send(mallory, gid)

    assert refused.value.code == "not_found"
    assert world.pending(alice) == world.pending(bob) == []


def test_a_send_to_an_unknown_group_is_not_found(world: World) -> None:
    (alice,) = world.person()

    with pytest.raises(NotFound) as refused:
        world.send(alice, "f" * 32)

    assert refused.value.code == "not_found"


def test_a_send_for_an_old_version_is_refused_with_the_current_one(world: World) -> None:
    (alice,), (bob,), (carol,) = world.person(), world.person(), world.person()
    gid = world.group(alice, bob)
    world.change(alice, gid, "add", carol.user_id)

    with pytest.raises(Conflict) as refused:
        world.send(alice, gid, version=1)

    assert refused.value.code == "stale_group"
    assert refused.value.details["version"] == 2
    assert world.pending(bob) == world.pending(carol) == []
    assert world.send(alice, gid, version=2).event["event"] == "sent"


@pytest.mark.parametrize("version", [0, -1, "2", True, 1.5])
def test_a_malformed_version_is_a_bad_request(version: object) -> None:
    with pytest.raises(BadRequest):
        parse_send(
            {"id": "g-1", "to": f"g:{'a' * 32}", "body": "c2s=", "version": version},
            max_payload_bytes=64 * 1024,
        )


def test_a_large_group_is_queued_in_slices_of_the_same_message(world: World) -> None:
    (alice,) = world.person()
    others = [device for _ in range(7) for device in world.person()]
    gid = world.group(alice, *others)

    outcome = world.send(alice, gid, client_id="big", inline_members=4)

    assert outcome.fanout is None
    assert outcome.jobs == len(world.queue.jobs) == 1  # 8 members, slices of 50
    world.queue.jobs.clear()
    outcome = world.send(alice, gid, b"x", client_id="big2", inline_members=4, chunk_members=3)
    jobs = world.queue.jobs
    assert [job.chunk for job in jobs] == [0, 1, 2]
    assert sorted(m for job in jobs for m in job.members) == sorted(
        [alice.user_id, *(o.user_id for o in others)]
    )
    assert len({job.ord for job in jobs}) == 1
    assert all(world.pending(o) == [] for o in others)  # nothing written inline
    assert outcome.event["ts"] == int(jobs[0].ord[:17]) // 1000


def test_a_job_run_twice_leaves_one_envelope_per_device(world: World) -> None:
    (alice,), (bob,) = world.person(), world.person()
    gid = world.group(alice, bob)
    world.send(alice, gid, inline_members=0)
    (job,) = world.queue.jobs

    world.fan_out(job)
    world.fan_out(job)

    assert [e.client_id for e in world.pending(bob)] == ["g-1"]


def test_an_expired_job_writes_nothing(world: World) -> None:
    (alice,), (bob,) = world.person(), world.person()
    gid = world.group(alice, bob)
    world.send(alice, gid, inline_members=0)
    (job,) = world.queue.jobs

    outcome = world.fan_out(job, now=job.expires_at + 1)

    assert outcome.devices == 0
    assert world.pending(bob) == []


def test_a_gone_connection_is_forgotten_and_the_device_pushed(world: World) -> None:
    (alice,), (bob,) = world.person(), world.person()
    gid = world.group(alice, bob)
    bob = world.online(bob, since=NOW - CONNECTING_S)
    world.gateway.script[bob.connection_id] = [PostOutcome.GONE]

    outcome = world.send(alice, gid)

    assert outcome.fanout is not None
    assert outcome.fanout.gone == 1
    assert world.connections.of_user(bob.user_id, now=NOW) == []
    assert world.pusher.woken == [bob.device_id]
    assert len(world.pending(bob)) == 1


def test_envelopes_are_written_in_batches_of_25(world: World) -> None:
    (alice,) = world.person()
    many = world.person(devices=30)
    gid = world.group(alice, many[0])

    outcome = world.send(alice, gid)

    assert outcome.fanout is not None
    assert (outcome.fanout.devices, outcome.fanout.writes) == (30, 2)
    assert all(len(world.pending(device)) == 1 for device in many)


def _fifo(aws: FakeAws) -> tuple[Any, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=QUEUE, Attributes={"FifoQueue": "true"})["QueueUrl"]
    return sqs, url


def _job(chunk: int, body: bytes = b"x", client_id: str = "c-1") -> FanoutJob:
    return FanoutJob(
        group_id="1" * 32,
        sender="a" * 32,
        sender_device="d" * 16,
        client_id=client_id,
        body=body,
        ord="00001800000000000000#0000abcd",
        expires_at=1_900_000_000,
        members=("b" * 32,),
        chunk=chunk,
    )


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["MessageGroupId"]
        ).get("Messages", [])
        if not got:
            return found
        for message in got:
            found.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_jobs_reach_the_fifo_queue_once_each_grouped_by_slice(aws: FakeAws) -> None:
    sqs, url = _fifo(aws)
    queue = FanoutQueue(sqs, url)

    calls = queue.enqueue([_job(i) for i in range(21)])
    queue.enqueue([_job(0), _job(1)])  # a retried send: deduplicated by SQS

    assert calls == 3  # ten per SendMessageBatch
    messages = _drain(sqs, url)
    assert sorted(FanoutJob.from_json(m["Body"]).chunk for m in messages) == list(range(21))
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {
        f"{'1' * 32}-{i}" for i in range(21)
    }


def test_large_bodies_are_split_across_batches_within_the_size_limit(aws: FakeAws) -> None:
    sqs, url = _fifo(aws)
    queue = FanoutQueue(sqs, url)
    body = bytes(64 * 1024)  # the largest ciphertext: ~87 KB of base64 per job

    calls = queue.enqueue([_job(i, body, "big") for i in range(5)])

    assert calls == 3  # at most two such jobs fit 256 KiB
    assert len(_drain(sqs, url)) == 5
    assert len(_job(0, body).to_json()) > 87_000
