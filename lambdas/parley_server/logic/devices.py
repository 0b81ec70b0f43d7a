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

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

from parley_server.logic.ports import Caller, ConnectionsPort
from parley_server.models.errors import DependencyUnavailable, Forbidden, NotFound
from parley_server.models.frames import Connection, PostOutcome
from parley_server.store.users import DeviceSummary

__all__ = [
    "CloserPort",
    "DevicesPort",
    "NoticeReason",
    "close_connections",
    "devices_changed_event",
    "list_devices",
    "may_sign_out",
    "notify_devices_changed",
    "open_connections",
    "sign_out",
    "sign_out_all",
]

NoticeReason = Literal["linked", "unlinked", "reregistered"]


class DevicesPort(Protocol):
    def signed_in(self, user_id: str) -> list[DeviceSummary]: ...

    def revoke_device(
        self, user_id: str, device_id: str, now: float, *, reason: str | None = None
    ) -> None: ...


class CloserPort(Protocol):
    def close(self, connection_id: str) -> bool: ...


class NoticePort(CloserPort, Protocol):
    def post(self, connection_id: str, event: Mapping[str, Any]) -> PostOutcome: ...


def devices_changed_event(reason: NoticeReason, device_id: str) -> dict[str, str]:
    """The `devices_changed` notice (not stored: offline devices relist on connect)."""
    return {"event": "devices_changed", "reason": reason, "device_id": device_id}


def notify_devices_changed(
    user_id: str,
    reason: NoticeReason,
    device_id: str,
    *,
    now: float,
    connections: ConnectionsPort,
    gateway: NoticePort,
) -> int:
    """Post `devices_changed` to every live connection of the account's devices but
    `device_id` (the device concerned); how many got it. Best effort: a connection
    that is gone is forgotten, one that fails is skipped."""
    event = devices_changed_event(reason, device_id)
    told = 0
    for connection in connections.of_user(user_id, now=now):
        if connection.device_id == device_id:
            continue
        outcome = gateway.post(connection.connection_id, event)
        if outcome is PostOutcome.DELIVERED:
            told += 1
        elif outcome is PostOutcome.GONE and connection.over(now):
            connections.remove(user_id, connection.connection_id)
    return told


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
    open_now = open_connections(caller.user_id, device_id, now=now, connections=connections)
    if not signed_in and not open_now:
        raise NotFound("no such device", code="unknown_device", device_id=device_id)
    return _revoke_and_close(
        caller.user_id,
        device_id,
        signed_in=signed_in,
        open_now=open_now,
        now=now,
        users=users,
        connections=connections,
        gateway=gateway,
    )


def may_sign_out(caller: Caller, device_id: str, *, users: DevicesPort) -> None:
    """Who may sign which device out: a companion only itself, the primary any device
    of the account (Forbidden otherwise). The caller is a signed-in device."""
    if device_id == caller.device_id:
        return
    mine = next(
        (d for d in users.signed_in(caller.user_id) if d.device_id == caller.device_id), None
    )
    if mine is not None and mine.role != "primary":
        raise Forbidden(
            "a linked device can sign out only itself; use the primary device",
            code="forbidden",
        )


def sign_out_all(
    user_id: str,
    *,
    now: float,
    users: DevicesPort,
    connections: ConnectionsPort,
    gateway: NoticePort,
    keep: str | None = None,
    reason: NoticeReason | None = None,
    device_id: str | None = None,
) -> int:
    """Sign every device of the account out (but `keep`) as `sign_out` does one: their
    tokens are refused, senders stop seeing them, their connections are closed. With
    `reason` and `device_id`, their live connections first get a `devices_changed`
    notice naming `device_id` (a re-registration: reason "reregistered", the new
    primary), and each revocation keeps `reason`, so a device that was offline hears
    it when its refresh is refused. How many connections were closed; safe to ask
    again."""
    if reason is not None and device_id is not None:
        for connection in connections.of_user(user_id, now=now):
            if connection.device_id not in (keep, device_id):
                gateway.post(connection.connection_id, devices_changed_event(reason, device_id))
    open_now = [c for c in connections.of_user(user_id, now=now) if c.device_id != keep]
    for device in users.signed_in(user_id):
        if device.device_id != keep:
            users.revoke_device(user_id, device.device_id, now, reason=reason)
    return close_connections(user_id, open_now, connections=connections, gateway=gateway)


def _revoke_and_close(
    user_id: str,
    device_id: str,
    *,
    signed_in: bool,
    open_now: list[Connection],
    now: float,
    users: DevicesPort,
    connections: ConnectionsPort,
    gateway: CloserPort,
) -> int:
    if signed_in:
        users.revoke_device(user_id, device_id, now)
    return close_connections(user_id, open_now, connections=connections, gateway=gateway)


def open_connections(
    user_id: str, device_id: str, *, now: float, connections: ConnectionsPort
) -> list[Connection]:
    """The device's connections that are open now."""
    return [c for c in connections.of_user(user_id, now=now) if c.device_id == device_id]


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
