"""The ports the server's use cases take, built once: the real stores over moto,
an in-memory directory, and a @connections gateway, push notifier, fan-out queue
and text sender whose outcomes a test can script or read. `ports.call(use_case,
...)` passes each use case the ports it names, so a test spells out only what it
chooses itself."""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pytest

from parley_server.catalogue import Setting
from parley_server.logic.groups import UsersPort
from parley_server.models.frames import PostOutcome
from parley_server.models.groups import FanoutJob
from parley_server.store.aws import s3_client
from parley_server.store.connections import ConnectionsStore
from parley_server.store.contacts import ContactsStore
from parley_server.store.groups import GroupsStore
from parley_server.store.mailbox import EnvelopeWriter, Mailbox
from parley_server.store.media import MediaStore
from parley_server.store.otp import OtpStore
from parley_server.store.prekeys import PrekeysStore
from parley_server.store.ratelimits import RateLimiter
from parley_server.store.sms import SmsSender
from parley_server.store.tokens import RefreshStore
from parley_server.store.users import KnownUsers, UsersStore
from tests.conftest import FakeAws
from tests.reliability.atomic import AtomicClient

T = TypeVar("T")


@dataclass(frozen=True)
class Device:
    device_id: str
    push_platform: str | None = None
    push_endpoint: str | None = None


@dataclass
class Directory:
    users: dict[str, list[Device]] = field(default_factory=dict)
    moved_at: dict[str, int] = field(default_factory=dict)  # user id -> microseconds

    def devices(self, user_id: str) -> list[Device]:
        return list(self.users.get(user_id, []))

    def devices_and_move(self, user_id: str) -> tuple[list[Device], int]:
        return self.devices(user_id), self.moved_at.get(user_id, 0)


@dataclass
class Gateway:
    """Records posts; `script` decides the outcome per connection (default: delivered)."""

    posted: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    script: dict[str, list[PostOutcome]] = field(default_factory=dict)

    def post(self, connection_id: str, event: Mapping[str, Any]) -> PostOutcome:
        outcomes = self.script.get(connection_id)
        outcome = outcomes.pop(0) if outcomes else PostOutcome.DELIVERED
        if outcome is PostOutcome.DELIVERED:
            self.posted[connection_id].append(dict(event))
        return outcome


class Pushable(Protocol):
    @property
    def device_id(self) -> str: ...

    @property
    def push_endpoint(self) -> str | None: ...


@dataclass
class Pusher:
    """Wakes (or rings) every device that has a push endpoint, and records which."""

    woken: list[str] = field(default_factory=list)
    rung: list[tuple[str, int]] = field(default_factory=list)  # (device id, ttl)

    def notify(self, device: Pushable) -> bool:
        if not device.push_endpoint:
            return False
        self.woken.append(device.device_id)
        return True

    def ring(self, device: Pushable, ttl_s: int) -> bool:
        if not device.push_endpoint:
            return False
        self.rung.append((device.device_id, ttl_s))
        return True


@dataclass
class Queue:
    """The fan-out queue: records the jobs. A use case takes a factory for its
    queue; this one is its own."""

    jobs: list[FanoutJob] = field(default_factory=list)

    def enqueue(self, jobs: Sequence[FanoutJob]) -> int:
        self.jobs.extend(jobs)
        return 1

    def __call__(self) -> Queue:
        return self


class Texts(Protocol):
    def send(self, phone: str, text: str) -> None: ...


@dataclass
class Ports:
    aws: FakeAws
    directory: Directory = field(default_factory=Directory)
    gateway: Gateway = field(default_factory=Gateway)
    pusher: Pusher = field(default_factory=Pusher)
    queue: Queue = field(default_factory=Queue)

    @property
    def ddb(self) -> Any:
        # each request atomic, as DynamoDB applies it (moto's backend is not)
        return AtomicClient(self.aws.client("dynamodb"))

    def table(self, setting: Setting) -> str:
        return self.aws.settings[setting]

    @property
    def mailbox(self) -> Mailbox:
        return Mailbox(self.ddb, self.table(Setting.MAILBOX_TABLE))

    @property
    def envelopes(self) -> EnvelopeWriter:
        return EnvelopeWriter(self.ddb, self.table(Setting.MAILBOX_TABLE))

    @property
    def connections(self) -> ConnectionsStore:
        return ConnectionsStore(self.ddb, self.table(Setting.CONNECTIONS_TABLE))

    @property
    def limiter(self) -> RateLimiter:
        return RateLimiter(self.ddb, self.table(Setting.RATELIMITS_TABLE))

    @property
    def groups(self) -> GroupsStore:
        return GroupsStore(self.ddb, self.table(Setting.GROUPS_TABLE))

    @property
    def users(self) -> UsersStore:
        return UsersStore(self.ddb, self.table(Setting.USERS_TABLE))

    @property
    def known_users(self) -> UsersPort:
        """Which user ids are registered: what group changes take as `users`."""
        return KnownUsers(self.ddb, self.table(Setting.USERS_TABLE))

    @property
    def contacts(self) -> ContactsStore:
        return ContactsStore(self.ddb, self.table(Setting.USERS_TABLE))

    @property
    def prekeys(self) -> PrekeysStore:
        return PrekeysStore(self.ddb, self.table(Setting.PREKEYS_TABLE))

    @property
    def otps(self) -> OtpStore:
        return OtpStore(self.ddb, self.table(Setting.OTP_TABLE))

    @property
    def tokens(self) -> RefreshStore:
        return RefreshStore(self.ddb, self.table(Setting.USERS_TABLE))

    @property
    def sms(self) -> Texts:
        return SmsSender(self.aws.client("sns"))

    @property
    def media(self) -> MediaStore:
        return MediaStore(
            s3_client(),
            self.ddb,
            bucket=self.table(Setting.MEDIA_BUCKET),
            table=self.table(Setting.USERS_TABLE),
        )

    def call(self, use_case: Callable[..., T], *args: Any, **given: Any) -> T:
        """Run `use_case` with `args` and `given`, plus every port it takes that
        `args` and `given` do not already fill."""
        signature = inspect.signature(use_case)
        filled = signature.bind_partial(*args, **given).arguments
        for name, parameter in signature.parameters.items():
            port = _ANNOTATED.get(str(parameter.annotation)) or _PORTS.get(name)
            if port is not None and name not in filled:
                given[name] = getattr(self, port)
        return use_case(*args, **given)


# parameter name -> the port that fills it
_PORTS = {
    name: name
    for name in (
        "directory",
        "gateway",
        "pusher",
        "queue",
        "mailbox",
        "envelopes",
        "connections",
        "limiter",
        "groups",
        "users",
        "prekeys",
        "otps",
        "tokens",
        "sms",
        "contacts",
    )
} | {
    "records": "connections",
    "roster": "groups",
    "repo": "media",
    "activity": "users",
    "device_lists": "users",
}
# where one parameter name means different ports, its annotation decides
_ANNOTATED = {"UsersPort": "known_users"}


@pytest.fixture
def ports(aws: FakeAws) -> Ports:
    return Ports(aws)
