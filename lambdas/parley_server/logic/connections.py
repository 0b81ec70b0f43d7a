"""A device's WebSocket connection coming and going ($connect / $disconnect)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from parley_server.config import Limits
from parley_server.logic.ports import Caller
from parley_server.models.errors import BadRequest

__all__ = ["ConnectionRecords", "LastSeen", "batch_option", "connect", "disconnect"]


class ConnectionRecords(Protocol):
    def add(
        self,
        user_id: str,
        connection_id: str,
        device_id: str,
        *,
        now: float,
        ttl_s: int,
        batch: bool = False,
    ) -> None: ...

    def remove(self, user_id: str, connection_id: str) -> None: ...


class LastSeen(Protocol):
    def record_last_seen(self, user_id: str, ts: float) -> None: ...


def batch_option(query: Mapping[str, str] | None) -> bool:
    """Whether the client asked, in the URL it dialled (`batch=1`), for what is posted
    to it together to come in `batch` events; BadRequest for anything but 1 or 0."""
    value = (query or {}).get("batch", "0")
    if value not in ("0", "1"):
        raise BadRequest("`batch` must be 1 or 0", field="batch")
    return value == "1"


def connect(
    caller: Caller,
    *,
    now: float,
    limits: Limits,
    records: ConnectionRecords,
    batch: bool = False,
) -> None:
    """Record the connection so senders find it (it outlives API Gateway's 2 h by a margin),
    and whether it reads `batch` events.

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
        batch=batch,
    )


def disconnect(
    caller: Caller, *, now: float, records: ConnectionRecords, last_seen: LastSeen
) -> None:
    """Forget the connection and record when the user was last online."""
    records.remove(caller.user_id, caller.connection)
    last_seen.record_last_seen(caller.user_id, now)
