"""A device's WebSocket connection coming and going ($connect / $disconnect)."""

from __future__ import annotations

from typing import Protocol

from parley_server.config import Limits
from parley_server.logic.ports import Caller

__all__ = ["ConnectionRecords", "LastSeen", "connect", "disconnect"]


class ConnectionRecords(Protocol):
    def add(
        self, user_id: str, connection_id: str, device_id: str, *, now: float, ttl_s: int
    ) -> None: ...

    def remove(self, user_id: str, connection_id: str) -> None: ...


class LastSeen(Protocol):
    def record_last_seen(self, user_id: str, ts: float) -> None: ...


def connect(
    caller: Caller,
    *,
    now: float,
    limits: Limits,
    records: ConnectionRecords,
) -> None:
    """Record the connection so senders find it (it outlives API Gateway's 2 h by a margin).

    The one write of $connect. The registration lock's activity is not recorded here:
    the access token this connection was authorized with was issued by a sign-in or
    a refresh at most 15 minutes ago, and the refresh recorded it
    (logic/tokens.py). Every further write here would also widen the window in which
    the connection is recorded but not yet open (models/frames.py Connection)."""
    records.add(
        caller.user_id,
        caller.connection,
        caller.device_id,
        now=now,
        ttl_s=limits.connection_ttl_s,
    )


def disconnect(
    caller: Caller, *, now: float, records: ConnectionRecords, last_seen: LastSeen
) -> None:
    """Forget the connection and record when the user was last online."""
    records.remove(caller.user_id, caller.connection)
    last_seen.record_last_seen(caller.user_id, now)
