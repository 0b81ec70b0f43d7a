"""What the use cases stand on: the caller, and the ports the store adapters
satisfy (tests hand in fakes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from parley_server.models.frames import Connection, Envelope, Page, Position, PostOutcome

__all__ = [
    "Caller",
    "ConnectionsPort",
    "D",
    "DeviceInfo",
    "Directory",
    "GatewayPort",
    "LimiterPort",
    "MailboxPort",
    "Pusher",
]


class Caller(msgspec.Struct, frozen=True):
    """Who is calling: from a verified access token or the authorizer context, never
    from the request. A WebSocket frame's caller also names the connection it came
    on; over HTTP `connection_id` is None."""

    user_id: str
    device_id: str
    connection_id: str | None = None

    @property
    def connection(self) -> str:
        """The connection the frame came on (only WebSocket callers have one)."""
        if self.connection_id is None:
            raise ValueError("this caller has no WebSocket connection")
        return self.connection_id


class DeviceInfo(Protocol):
    @property
    def device_id(self) -> str: ...


D = TypeVar("D", bound=DeviceInfo)
D_co = TypeVar("D_co", bound=DeviceInfo, covariant=True)
D_contra = TypeVar("D_contra", bound=DeviceInfo, contravariant=True)


class Directory(Protocol[D_co]):
    def devices(self, user_id: str) -> Sequence[D_co]: ...

    def devices_and_move(self, user_id: str) -> tuple[Sequence[D_co], int]:
        """`devices`, and when the user's number last moved to a new phone
        (microseconds, as an envelope's `ord` counts; 0 if it never did)."""
        ...


class Pusher(Protocol[D_contra]):
    def notify(self, device: D_contra) -> bool:
        """A content-free background wake-up; whether it went out."""
        ...

    def ring(self, device: D_contra, ttl_s: int) -> bool:
        """A high-priority, content-free call push that lives `ttl_s`; whether it went out."""
        ...


class MailboxPort(Protocol):
    def put(self, envelope: Envelope, *, now: float) -> Envelope | None: ...

    def get_many(
        self, user_id: str, device_id: str, server_ids: Sequence[str], *, now: float
    ) -> dict[str, Envelope]: ...

    def delete(
        self, user_id: str, device_id: str, server_id: str, *, now: float
    ) -> Envelope | None: ...

    def delete_many(self, user_id: str, device_id: str, server_ids: Sequence[str]) -> int: ...

    def page(
        self, user_id: str, device_id: str, *, after: Position | None, limit: int, now: float
    ) -> Page: ...


class ConnectionsPort(Protocol):
    def of_user(self, user_id: str, *, now: float) -> list[Connection]: ...

    def remove(self, user_id: str, connection_id: str) -> None: ...


class GatewayPort(Protocol):
    def post(self, connection_id: str, event: Mapping[str, Any]) -> PostOutcome: ...


class LimiterPort(Protocol):
    def hit(
        self,
        name: str,
        subject: str,
        *,
        limit: int,
        window_s: int,
        now: float,
        code: str | None = None,
        cost: int = 1,
    ) -> int: ...
