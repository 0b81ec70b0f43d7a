"""The ports the server's use cases take, built once: the real stores over moto,
an in-memory directory, and a @connections gateway and push notifier whose
outcomes a test can script. `ports.call(use_case, ...)` passes each use case the
ports it names, so a test spells out only what it chooses itself."""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from parley_server.catalogue import Setting
from parley_server.models.frames import PostOutcome
from parley_server.store.connections import ConnectionsStore
from parley_server.store.mailbox import Mailbox
from parley_server.store.ratelimits import RateLimiter
from tests.conftest import FakeAws

T = TypeVar("T")


@dataclass(frozen=True)
class Device:
    device_id: str
    push_platform: str | None = None
    push_endpoint: str | None = None


@dataclass
class Directory:
    users: dict[str, list[Device]] = field(default_factory=dict)

    def devices(self, user_id: str) -> list[Device]:
        return list(self.users.get(user_id, []))


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


@dataclass
class Pusher:
    woken: list[str] = field(default_factory=list)

    def notify(self, device: Device) -> bool:
        if not device.push_endpoint:
            return False
        self.woken.append(device.device_id)
        return True


@dataclass
class Ports:
    aws: FakeAws
    directory: Directory = field(default_factory=Directory)
    gateway: Gateway = field(default_factory=Gateway)
    pusher: Pusher = field(default_factory=Pusher)

    @property
    def mailbox(self) -> Mailbox:
        return Mailbox(self.aws.client("dynamodb"), self.aws.settings[Setting.MAILBOX_TABLE])

    @property
    def connections(self) -> ConnectionsStore:
        return ConnectionsStore(
            self.aws.client("dynamodb"), self.aws.settings[Setting.CONNECTIONS_TABLE]
        )

    @property
    def limiter(self) -> RateLimiter:
        return RateLimiter(self.aws.client("dynamodb"), self.aws.settings[Setting.RATELIMITS_TABLE])

    def call(self, use_case: Callable[..., T], *args: Any, **given: Any) -> T:
        """Run `use_case` with `args` and `given`, plus every port it takes that
        `given` does not already name."""
        for name in inspect.signature(use_case).parameters:
            if name not in given and name in _PORTS:
                given[name] = getattr(self, name)
        return use_case(*args, **given)


_PORTS = frozenset({"directory", "gateway", "pusher", "mailbox", "connections", "limiter"})


@pytest.fixture
def ports(aws: FakeAws) -> Ports:
    return Ports(aws)
