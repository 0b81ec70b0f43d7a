"""What the protocol hands back: typed events, and the checks on the fields they come from."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from parley.ids import group_id_of, is_client_id, is_device_id, is_group_id, is_user_id
from parley.protocol.frames import OutboxEntry

log = logging.getLogger("parley.protocol")

RECEIPT_STATUSES = frozenset({"delivered", "read"})
_MAX_SERVER_ID = 512


@dataclass(frozen=True)
class IncomingMessage:
    """A `message` event, new to us: store it, then call `message_stored`."""

    server_id: str
    client_id: str
    sender: str
    sender_device: str
    body: str  # b64 ciphertext, not yet decoded
    ts: int
    group: str | None = None


@dataclass(frozen=True)
class IncomingReceipt:
    """A `receipt` event: apply it, then call `receipt_stored`."""

    server_id: str
    sender: str
    sender_device: str | None
    status: str  # "delivered" | "read"
    client_ids: tuple[str, ...]
    ts: int


@dataclass(frozen=True)
class SendAccepted:
    """The server stored the outbox head (single tick)."""

    entry: OutboxEntry
    ts: int


@dataclass(frozen=True)
class SendRejected:
    """The server refused a send. Unless `retry_after` is set, the entry is gone."""

    entry: OutboxEntry
    code: str
    message: str
    retry_after: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DevicesMismatched:
    """The recipient's devices differ from the payloads: re-encrypt and call
    `replace_payloads` (or `cancel`). The conversation waits until then."""

    entry: OutboxEntry
    missing: tuple[str, ...]
    extra: tuple[str, ...]


@dataclass(frozen=True)
class GroupStale:
    """The group moved on (`version`) since the body was encrypted: refresh it,
    rotate the sender key, re-encrypt and call `replace_group_body` (or
    `cancel`). The conversation waits until then."""

    entry: OutboxEntry
    version: int


@dataclass(frozen=True)
class SyncComplete:
    """Every pending event has been delivered after a (re)connect."""


@dataclass(frozen=True)
class TypingChanged:
    sender: str
    sender_device: str | None
    typing: bool
    group: str | None = None  # typing in this group, not to us alone


DEVICE_CHANGE_REASONS = frozenset({"linked", "unlinked", "reregistered"})


@dataclass(frozen=True)
class DevicesChangedNotice:
    """A `devices_changed` notice: one of this account's devices was linked or
    unlinked, or the number was registered on another phone ("reregistered")."""

    reason: str  # "linked" | "unlinked" | "reregistered"
    device_id: str


def parse_devices_changed(raw: dict[str, Any]) -> DevicesChangedNotice | None:
    """A `devices_changed` event's fields, or None (logged) if they are unusable."""
    reason, device = raw.get("reason"), raw.get("device_id")
    if reason not in DEVICE_CHANGE_REASONS or not is_device_id(device):
        log.warning("ignored a malformed devices_changed event")
        return None
    return DevicesChangedNotice(str(reason), device)


@dataclass(frozen=True)
class PrekeysLow:
    """A `prekeys_low` notice: key bundle claims left this device `left` one-time
    prekeys on the server (few, or none): time to upload more."""

    left: int


def parse_prekeys_low(raw: dict[str, Any]) -> PrekeysLow:
    """A `prekeys_low` event's fields (a missing or odd count reads as none left: the
    notice alone says to top up)."""
    left = raw.get("left")
    return PrekeysLow(left if is_int(left) else 0)


@dataclass(frozen=True)
class ServerError:
    """An `error` event that answers no pending send."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


ProtocolEvent = (
    IncomingMessage
    | IncomingReceipt
    | SendAccepted
    | SendRejected
    | DevicesMismatched
    | GroupStale
    | SyncComplete
    | TypingChanged
    | DevicesChangedNotice
    | PrekeysLow
    | ServerError
)


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def event_id(raw: dict[str, Any], what: str) -> str | None:
    """The server's id of an event, or None (logged) if it has none usable."""
    server_id = raw.get("id")
    if isinstance(server_id, str) and 0 < len(server_id) <= _MAX_SERVER_ID:
        return server_id
    log.warning("ignored %s event without a usable id", what)
    return None


def names_group(value: object) -> TypeGuard[str]:
    """A group id, bare or as its conversation address ("g:<group id>")."""
    return isinstance(value, str) and is_group_id(group_id_of(value) or value)


def is_client_id_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(is_client_id(v) for v in value)


def is_device_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(is_device_id(v) for v in value)


def parse_message(raw: dict[str, Any], server_id: str) -> IncomingMessage | None:
    """A `message` event's fields, or None (logged) if they are unusable."""
    sender, device, client_id = raw.get("from"), raw.get("from_device"), raw.get("client_id")
    body, ts, group = raw.get("body"), raw.get("ts"), raw.get("group")
    if not (is_user_id(sender) and is_device_id(device)):
        log.warning("dropped message %s: bad sender", server_id[:80])
        return None
    if not is_client_id(client_id):
        log.warning("dropped message %s: bad client id", server_id[:80])
        return None
    if not isinstance(body, str) or not body:
        log.warning("dropped message %s: no body", server_id[:80])
        return None
    if not is_int(ts) or (group is not None and not names_group(group)):
        log.warning("dropped message %s: bad ts or group", server_id[:80])
        return None
    return IncomingMessage(
        server_id=server_id,
        client_id=client_id,
        sender=sender,
        sender_device=device,
        body=body,
        ts=int(ts),
        group=None if group is None else group_id_of(group) or group,
    )


def parse_receipt(raw: dict[str, Any], server_id: str) -> IncomingReceipt | None:
    """A `receipt` event's fields, or None (logged) if they are unusable."""
    sender, device, status = raw.get("from"), raw.get("from_device"), raw.get("status")
    ids, ts = raw.get("ids"), raw.get("ts")
    if not (
        is_user_id(sender)
        and (device is None or is_device_id(device))
        and isinstance(status, str)
        and status in RECEIPT_STATUSES
        and is_client_id_list(ids)
        and is_int(ts)
    ):
        log.warning("dropped a malformed receipt %s", server_id[:80])
        return None
    return IncomingReceipt(
        server_id=server_id,
        sender=sender,
        sender_device=device if isinstance(device, str) else None,
        status=status,
        client_ids=tuple(ids),
        ts=ts,
    )


def parse_typing(raw: dict[str, Any]) -> TypingChanged | None:
    """A `typing` event's fields, or None (logged) if they are unusable."""
    sender, device, state = raw.get("from"), raw.get("from_device"), raw.get("state")
    group = raw.get("group")
    if not is_user_id(sender) or state not in {"on", "off"}:
        log.warning("ignored a malformed typing event")
        return None
    if group is not None and not is_group_id(group):
        log.warning("ignored a typing event with a malformed group")
        return None
    from_device = device if isinstance(device, str) and is_device_id(device) else None
    return TypingChanged(sender, from_device, state == "on", group)
