"""A user's own devices: the list (what WhatsApp calls linked devices) and signing
one out for good, from any of them, as one does with a lost laptop.

Signing a device out revokes it (its access and refresh tokens are refused from
then on, senders stop encrypting for it, the authorizer refuses its next
connect) and closes the WebSocket connections it has open now, so it stops
receiving at once rather than when its connection next drops (up to 2 hours).
What waits in its mailbox is ciphertext only it could read; it expires with the
mailbox's TTL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from parley_server.logic.ports import Caller, ConnectionsPort
from parley_server.models.errors import DependencyUnavailable, NotFound
from parley_server.models.frames import Connection
from parley_server.store.users import DeviceSummary

__all__ = ["CloserPort", "DevicesPort", "close_connections", "list_devices", "sign_out"]


class DevicesPort(Protocol):
    def signed_in(self, user_id: str) -> list[DeviceSummary]: ...

    def revoke_device(self, user_id: str, device_id: str, now: float) -> None: ...


class CloserPort(Protocol):
    def close(self, connection_id: str) -> bool: ...


def list_devices(caller: Caller, *, users: DevicesPort) -> list[DeviceSummary]:
    """The caller's signed-in devices, oldest first."""
    return users.signed_in(caller.user_id)


def sign_out(
    caller: Caller,
    device_id: str,
    *,
    now: float,
    users: DevicesPort,
    connections: ConnectionsPort,
    gateway: CloserPort,
) -> int:
    """Revoke one of the caller's devices (the calling one too) and close its open
    connections; how many were closed. NotFound for a device that is not the
    caller's or was signed out before with nothing left open. Asked again after a
    DependencyUnavailable, it finishes the job."""
    signed_in = any(d.device_id == device_id for d in users.signed_in(caller.user_id))
    open_now = [c for c in connections.of_user(caller.user_id, now=now) if c.device_id == device_id]
    if not signed_in and not open_now:
        raise NotFound("no such device", code="unknown_device", device_id=device_id)
    if signed_in:
        users.revoke_device(caller.user_id, device_id, now)
    return close_connections(caller.user_id, open_now, connections=connections, gateway=gateway)


def close_connections(
    user_id: str,
    open_now: Iterable[Connection],
    *,
    connections: ConnectionsPort,
    gateway: CloserPort,
) -> int:
    """Close the user's connections in `open_now` and forget them; how many. A close
    that fails is a DependencyUnavailable, with the connections not yet closed still
    recorded, so asking again finishes the job."""
    closed = 0
    for connection in open_now:
        if not gateway.close(connection.connection_id):
            raise DependencyUnavailable("could not close the device's connection; try again")
        connections.remove(user_id, connection.connection_id)
        closed += 1
    return closed
