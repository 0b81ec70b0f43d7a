"""Ticks for a group message: aggregate the members' receipts, as WhatsApp shows them.

The server fans one group message out to every member device; each device's
ack sends the sender a `delivered` receipt naming that device, and a member who
reads it sends one `read` receipt. The sender's client keeps one GroupReceipts
per message it sent to a group and feeds it those receipts:

    ticks = GroupReceipts(me, {member: device_ids, ...})   # who it was sent to
    ticks.apply(event["from"], event["from_device"], event["status"], event["ts"])
    ticks.status        # "sent" -> "delivered" (every member device acked)
                        #        -> "read" (every member read)
    ticks.members()     # per-member detail: which devices acked, read, when

Sans-I/O and pure: no storage, no network. to_dict()/from_dict() let the
client keep it in its store between runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["GroupReceipts", "MemberReceipt", "Tick"]

Tick = Literal["sent", "delivered", "read"]


@dataclass(frozen=True)
class MemberReceipt:
    """What one member's devices have said about the message."""

    user_id: str
    devices: frozenset[str]  # the member's devices the message went to
    delivered_to: frozenset[str]  # those that acked it
    read: bool
    delivered_at: int | None  # ms: when the last of their devices acked (or they read it)
    read_at: int | None  # ms

    @property
    def delivered(self) -> bool:
        """Every device of theirs acked it; reading it on one counts for all."""
        return self.read or (bool(self.devices) and self.devices <= self.delivered_to)

    @property
    def tick(self) -> Tick:
        return "read" if self.read else "delivered" if self.delivered else "sent"


class _Member:
    __slots__ = ("delivered_at", "delivered_to", "devices", "read_at", "user_id")

    def __init__(self, user_id: str, devices: Iterable[str]) -> None:
        self.user_id = user_id
        self.devices: set[str] = set(devices)
        self.delivered_to: set[str] = set()
        self.delivered_at: int | None = None
        self.read_at: int | None = None

    def view(self) -> MemberReceipt:
        return MemberReceipt(
            user_id=self.user_id,
            devices=frozenset(self.devices),
            delivered_to=frozenset(self.delivered_to),
            read=self.read_at is not None,
            delivered_at=self.delivered_at,
            read_at=self.read_at,
        )


class GroupReceipts:
    """The receipts of one group message, per member and in aggregate."""

    def __init__(self, sender: str, recipients: Mapping[str, Iterable[str]]) -> None:
        """`recipients`: each member's device ids the message was encrypted for.

        The sender's own user is left out: its other devices ack too, but ticks
        are about the other members. A member with no devices can never ack;
        they are kept (so detail shows them) but do not hold the aggregate back.
        """
        self._sender = sender
        self._members = {
            user_id: _Member(user_id, devices)
            for user_id, devices in recipients.items()
            if user_id != sender
        }

    # -- receipts ---------------------------------------------------------------

    def apply(self, from_user: str, from_device: str, status: str, ts: int) -> bool:
        """Take one receipt; True if it changed anything. Others' receipts are ignored."""
        member = self._members.get(from_user)
        if member is None:
            return False
        before = member.view()
        if status == "read":
            if member.read_at is None:
                member.read_at = ts
        elif status == "delivered":
            # a device the sender did not know of acked it: it received it, count it
            member.devices.add(from_device)
            member.delivered_to.add(from_device)
        else:
            return False
        after = member.view()
        if after.delivered and member.delivered_at is None:
            member.delivered_at = ts
        return member.view() != before

    def apply_event(self, event: Mapping[str, Any]) -> bool:
        """Take a `receipt` event from the server (`from`, `from_device`, `status`, `ts`)."""
        try:
            return self.apply(
                str(event["from"]),
                str(event["from_device"]),
                str(event["status"]),
                int(event["ts"]),
            )
        except (KeyError, TypeError, ValueError):
            return False

    def forget(self, user_id: str) -> None:
        """A member left the group: their silence no longer holds the ticks back."""
        self._members.pop(user_id, None)

    # -- what to show -----------------------------------------------------------

    def _counted(self) -> list[_Member]:
        return [m for m in self._members.values() if m.devices or m.read_at is not None]

    @property
    def status(self) -> Tick:
        """ "read" when every member read it, "delivered" when every member's devices
        all acked it, else "sent". A message to nobody stays "sent"."""
        counted = [m.view() for m in self._counted()]
        if not counted:
            return "sent"
        if all(m.read for m in counted):
            return "read"
        if all(m.delivered for m in counted):
            return "delivered"
        return "sent"

    def members(self) -> list[MemberReceipt]:
        """Per-member detail, in user id order."""
        return [self._members[uid].view() for uid in sorted(self._members)]

    def waiting_for(self, tick: Literal["delivered", "read"]) -> list[str]:
        """Members who have not reached `tick` yet."""
        return [
            m.user_id
            for m in self.members()
            if m.devices and not (m.read if tick == "read" else m.delivered)
        ]

    # -- keeping it -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender": self._sender,
            "members": {
                m.user_id: {
                    "devices": sorted(m.devices),
                    "delivered_to": sorted(m.delivered_to),
                    "delivered_at": m.delivered_at,
                    "read_at": m.read_at,
                }
                for m in self._members.values()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupReceipts:
        members: Mapping[str, Any] = data["members"]
        receipts = cls(str(data["sender"]), {uid: m["devices"] for uid, m in members.items()})
        for uid, saved in members.items():
            member = receipts._members.get(uid)
            if member is None:
                continue
            member.delivered_to = set(saved["delivered_to"])
            member.delivered_at = saved["delivered_at"]
            member.read_at = saved["read_at"]
        return receipts
