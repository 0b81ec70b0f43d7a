"""Typed models the SDK hands to applications: messages, contacts and events."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from parley.content import Attachment, Content, Quote, Target
from parley.ids import group_address, group_id_of

__all__ = [
    "Account",
    "AccountMoved",
    "CallControl",
    "CallEnded",
    "CallMissed",
    "CallRecord",
    "CallState",
    "CallStateChanged",
    "CallStats",
    "Connected",
    "Contact",
    "DeviceLinked",
    "DeviceUnlinked",
    "DevicesChanged",
    "Direction",
    "Disconnected",
    "Event",
    "Group",
    "GroupMembersUnverified",
    "GroupUpdated",
    "HistoryImported",
    "IdentityChanged",
    "IncomingCall",
    "LinkedDevice",
    "Message",
    "MessageDeleted",
    "MessageDisappeared",
    "MessageEdited",
    "MessageReceived",
    "MessageSent",
    "MessageState",
    "PaymentAnswer",
    "PaymentAnswered",
    "ReactionChanged",
    "ReceiptUpdate",
    "SendFailed",
    "Synced",
    "TimerChanged",
    "Typing",
]


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class MessageState(StrEnum):
    """Outgoing: pending -> sent (✓) -> delivered (✓✓) -> read (blue ✓✓), or failed.
    Incoming: received -> read (once the user has seen it)."""

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    RECEIVED = "received"

    @property
    def rank(self) -> int:
        """States only move forward: a late `delivered` never undoes `read`."""
        return _RANK[self]

    @property
    def ticks(self) -> str:
        return _TICKS[self]


_RANK = {
    MessageState.PENDING: 0,
    MessageState.FAILED: 0,
    MessageState.RECEIVED: 0,
    MessageState.SENT: 1,
    MessageState.DELIVERED: 2,
    MessageState.READ: 3,
}
_TICKS = {
    MessageState.PENDING: "🕓",
    MessageState.FAILED: "!",
    MessageState.RECEIVED: "",
    MessageState.SENT: "✓",
    MessageState.DELIVERED: "✓✓",
    MessageState.READ: "✓✓",  # shown blue by the CLI
}


@dataclass(frozen=True)
class Account:
    """Who this profile is on the service."""

    user_id: str
    device_id: str
    phone: str
    # "primary" (registered by phone) or "companion" (linked); None in a profile
    # made before linked devices, which is its account's only device
    role: str | None = None
    key_index: int | None = None  # 0 for the primary, 1.. for companions


@dataclass(frozen=True)
class Contact:
    """Someone this profile talks to. `name` is local (None for strangers who wrote first)."""

    user_id: str
    name: str | None
    phone: str | None
    identity_changed: bool = False  # a device's identity key changed since last verified
    verified: bool = False  # the user compared safety numbers and said they match
    # the user saved them, wrote to them first or accepted their request
    # (parley.relationships); until then what they send is a message request
    accepted: bool = False

    @property
    def display_name(self) -> str:
        return self.name or self.phone or f"user {self.user_id[:8]}"


@dataclass(frozen=True)
class PaymentAnswer:
    """One person's answer to a payment request (`parley.payments`): "paid" (with the
    UPI transaction id they gave, if any) or "declined", in their reply `message_id`
    at server time `ts` (ms)."""

    by: str  # user id
    status: str  # "paid" or "declined"
    txn: str | None
    ts: int
    message_id: int


@dataclass(frozen=True)
class Message:
    """One message of a conversation, as stored on this device.

    `content` is what was sent: `parley.content.Text`, `Location`, `ContactCard` or
    `Attachment` (image, video, audio, document). `text` is the text of a text
    message and a one-line stand-in for anything else ("📷 photo.jpg").
    """

    id: int  # local row id
    peer: str  # the other person's user id (the conversation)
    direction: Direction
    client_id: str
    sender: str  # user id
    text: str
    ts: int  # ms since the epoch (the server's time once known)
    state: MessageState
    # None only for a stored text the content rules of this version no longer accept
    content: Content | None = None
    # where an attachment was saved on this device (`Client.download`), if it was
    file: Path | None = None
    # when its author last edited it (server time, ms); None: never edited
    edited_at: int | None = None
    # "author" or "admin" once deleted for everyone (content and file are gone then)
    deleted: str | None = None
    # (user id, emoji), one per person who reacted, oldest first
    reactions: tuple[tuple[str, str], ...] = ()
    # its disappearing timer (seconds, 0: none) and, once it runs, when it ends (ms)
    timer: int = 0
    expires_at: int | None = None
    # a payment request's answers that count (parley.payments.rules): each payer's
    # latest, oldest first
    payment_answers: tuple[PaymentAnswer, ...] = ()
    # starred on this device (`Client.star`)
    starred: bool = False

    @property
    def outgoing(self) -> bool:
        return self.direction is Direction.OUT

    @property
    def edited(self) -> bool:
        return self.edited_at is not None

    @property
    def reply_to(self) -> Quote | None:
        """The message this one answers (author, client id, kind, excerpt), if any."""
        ctx = getattr(self.content, "ctx", None)
        return ctx.reply if ctx is not None else None

    @property
    def forwarded(self) -> int:
        """How many times it was forwarded to get here (0: its sender wrote it)."""
        ctx = getattr(self.content, "ctx", None)
        return ctx.forwarded if ctx is not None else 0

    @property
    def target(self) -> Target:
        """How other messages (a reply, a reaction, an edit) name this one."""
        return Target(self.sender, self.client_id)

    @property
    def group_id(self) -> str | None:
        """The group this message belongs to, if it is a group message."""
        return group_id_of(self.peer)

    @property
    def kind(self) -> str:
        """text, image, video, audio, document, location or contact."""
        return self.content.kind if self.content is not None else "text"

    @property
    def attachment(self) -> Attachment | None:
        """The file this message carries, if it carries one."""
        return self.content if isinstance(self.content, Attachment) else None

    @property
    def payment_status(self) -> str | None:
        """A payment request's latest answer: "paid" or "declined" (None: none yet)."""
        return self.payment_answers[-1].status if self.payment_answers else None


@dataclass(frozen=True)
class Group:
    """A group chat as this profile last saw it on the service.

    `version` moves with every change of who is in the group; `active` is
    False once this account has left it or learned it was removed.
    """

    group_id: str
    name: str
    version: int
    members: tuple[str, ...]  # user ids, oldest member first
    admins: tuple[str, ...]
    created_by: str | None = None
    created_at: int | None = None  # seconds since the epoch
    active: bool = True
    rev: int = 0  # the service's count of every change (the next signed change is rev + 1)
    head: int = 0  # the last change of its signed chain (0: the chain has not started)
    # members no valid signed change of an admin vouches for: they get no sender key
    unverified: tuple[str, ...] = ()

    @property
    def conversation(self) -> str:
        """The key of its conversation (`Message.peer`), "g:<group id>"."""
        return group_address(self.group_id)

    @property
    def display_name(self) -> str:
        return self.name or f"group {self.group_id[:8]}"

    def is_member(self, user_id: str) -> bool:
        return user_id in self.members

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admins


# --- events ------------------------------------------------------------------


@dataclass(frozen=True)
class MessageReceived:
    """A message arrived; `contact` sent it, in `group` if it is a group message."""

    message: Message
    contact: Contact
    group: Group | None = None

    @property
    def content(self) -> Content | None:
        """What arrived, typed (see `Message.content`)."""
        return self.message.content


@dataclass(frozen=True)
class MessageSent:
    """The server stored our message (single tick)."""

    message: Message


@dataclass(frozen=True)
class MessageEdited:
    """Its author edited `message` (which now has the new text, `edited` set)."""

    message: Message


@dataclass(frozen=True)
class MessageDeleted:
    """`message` was deleted for everyone: by its author, or (`by` == "admin") by a
    group admin, `deleted_by`. Its content and any downloaded file are gone."""

    message: Message
    by: str  # "author" or "admin"
    deleted_by: str  # user id


@dataclass(frozen=True)
class ReactionChanged:
    """`user_id` reacted to `message` with `emoji` ("": took their reaction back).
    `message.reactions` has everyone's reactions as they now are."""

    message: Message
    user_id: str
    emoji: str


@dataclass(frozen=True)
class PaymentAnswered:
    """`by` answered the payment request `request` (as it now is, with
    `payment_answers`): "paid" (`txn`: the UPI transaction id they gave) or
    "declined", in their reply `answer`. Only answers that count raise it."""

    request: Message
    status: str
    by: str
    txn: str | None
    answer: Message


@dataclass(frozen=True)
class TimerChanged:
    """The disappearing timer of a conversation (a user id, or a group's "g:<id>")
    is now `seconds` (0: off), set by `set_by`."""

    conversation: str
    seconds: int
    set_by: str


@dataclass(frozen=True)
class MessageDisappeared:
    """`message`'s disappearing timer ran out: it and its file are gone from this device."""

    message: Message


@dataclass(frozen=True)
class ReceiptUpdate:
    """Our messages to `contact` moved to `state` (delivered or read).

    In a group (`group` set) the state is the group's: delivered once every
    member's devices have the message, read once every member read it;
    `contact` is the member whose receipt completed it.
    """

    contact: Contact
    state: MessageState
    messages: tuple[Message, ...]
    group: Group | None = None


@dataclass(frozen=True)
class LinkedDevice:
    """One of this account's signed-in devices (`Client.devices()`)."""

    device_id: str
    created_at: int  # seconds since the epoch
    current: bool  # the device this client runs on
    ready: bool  # its keys are uploaded: people can send to it
    push: str | None  # its push platform, if it registered one
    role: str | None = None  # "primary" or "companion"
    key_index: int | None = None  # 0 for the primary, 1.. for companions
    # on the account's signed device list (as verified here); None if not checked
    listed: bool | None = None


@dataclass(frozen=True)
class Typing:
    """`contact` started or stopped typing: to us, or in `group` when it is set
    (then `contact` may be a member this profile has no name for)."""

    contact: Contact
    typing: bool
    group: Group | None = None


@dataclass(frozen=True)
class IdentityChanged:
    """A contact's identity key changed (reinstall, new device, or an attack):
    compare safety numbers before trusting the conversation. `device_id` is None
    when the account identity itself changed (the number was registered on a new
    phone: a new primary whose device lists start over)."""

    contact: Contact
    device_id: str | None


@dataclass(frozen=True)
class DevicesChanged:
    """A contact's signed device list changed (a companion device linked or unlinked
    under the same account identity); for this account `contact.name` is "you"."""

    contact: Contact
    added: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class DeviceLinked:
    """A new device was linked to this account."""

    device_id: str


@dataclass(frozen=True)
class DeviceUnlinked:
    """One of this account's devices was unlinked (signed out)."""

    device_id: str


@dataclass(frozen=True)
class AccountMoved:
    """This device was signed out: the account's number was registered on another
    phone. The profile keeps its history but can no longer send or receive."""


@dataclass(frozen=True)
class HistoryImported:
    """A new companion imported the history its primary sent: `messages` and
    `conversations` new to this profile."""

    messages: int
    conversations: int


@dataclass(frozen=True)
class SendFailed:
    """The server refused our message for good (`code`, and why in words)."""

    message: Message
    code: str  # the service's error code, e.g. "forbidden"
    reason: str


@dataclass(frozen=True)
class GroupUpdated:
    """The service showed a group changed: name, members, admins, or this account's
    place in it (`group.active`). `previous` is None for a group new to this profile."""

    group: Group
    previous: Group | None

    @property
    def added(self) -> tuple[str, ...]:
        before = set(self.previous.members) if self.previous else set()
        return tuple(m for m in self.group.members if m not in before)

    @property
    def removed(self) -> tuple[str, ...]:
        now = set(self.group.members)
        return tuple(m for m in (self.previous.members if self.previous else ()) if m not in now)


@dataclass(frozen=True)
class GroupMembersUnverified:
    """The service lists members of `group` that no admin's signed change let in:
    they get none of this device's sender keys (so they cannot read what it sends
    to the group) until an admin vouches for the membership (`vouch_group`).
    Either the service added them behind the admins' backs, or an admin's device
    signed under an account identity this device does not trust."""

    group: Group
    user_ids: tuple[str, ...]


@dataclass(frozen=True)
class Connected:
    """The WebSocket is open (a sync follows)."""


@dataclass(frozen=True)
class Synced:
    """Everything that waited on the server has been received."""


@dataclass(frozen=True)
class Disconnected:
    reason: str


# --- calls (parley.calling) ----------------------------------------------------------------


class CallState(StrEnum):
    """Where a call is on this device. Outgoing: calling -> ringing (a device of
    theirs rings) -> connecting -> connected -> ended. Incoming: ringing ->
    connecting (accepted here) -> connected -> ended. `elsewhere`: another device
    of this account has the call."""

    CALLING = "calling"
    RINGING = "ringing"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ELSEWHERE = "elsewhere"
    ENDED = "ended"


@dataclass(frozen=True)
class CallRecord:
    """One entry of this device's call log (kept sealed in the profile's store).

    `outcome`: while it lasts "ongoing"; then "answered" (it connected), "missed"
    (incoming, never answered here), "declined", "busy", "no_answer", "failed",
    "answered_elsewhere" (another device of this account took it) or "cancelled"
    (we hung up before they answered)."""

    call_id: str
    peer: str  # the other party's user id
    direction: Direction
    video: bool
    started_at: float  # when it was offered (epoch seconds)
    outcome: str = "ongoing"
    reason: str | None = None  # the hang-up reason it ended with
    connected_at: float | None = None
    ended_at: float | None = None
    elsewhere: bool = False  # placed or answered on another device of this account

    @property
    def duration(self) -> float:
        """Seconds it was connected (0 if it never was)."""
        if self.connected_at is None or self.ended_at is None:
            return 0.0
        return max(0.0, self.ended_at - self.connected_at)

    @property
    def missed(self) -> bool:
        return self.outcome == "missed"


@dataclass(frozen=True)
class CallStats:
    """A call's media figures, from WebRTC's statistics (None where not known yet)."""

    rtt_ms: float | None  # round-trip time, as the far end's RTCP reports it
    packets_sent: int
    packets_received: int
    packets_lost: int  # of what they sent us, as our receiver counts it
    bytes_sent: int
    bytes_received: int
    send_kbps: float | None  # since the previous reading
    receive_kbps: float | None

    @property
    def loss(self) -> float:
        """The fraction of their packets lost on the way to us."""
        expected = self.packets_received + self.packets_lost
        return self.packets_lost / expected if expected else 0.0


class CallControl(Protocol):
    """What an application does with a live call (`parley.calling.Call`)."""

    @property
    def call_id(self) -> str: ...

    @property
    def contact(self) -> Contact: ...

    @property
    def video(self) -> bool: ...

    @property
    def state(self) -> CallState: ...

    async def accept(
        self,
        *,
        audio: Any = None,
        sink: Any = None,
        video_source: Any = None,
        video_sink: Any = None,
        relay_only: bool | None = None,
    ) -> None: ...

    async def decline(self) -> None: ...

    async def hangup(self) -> None: ...


@dataclass(frozen=True)
class IncomingCall:
    """Someone calls: every device of this account rings. `await event.call.accept()`
    or `decline()`; the first device to answer wins (the others see
    `CallEnded` with reason "answered_elsewhere")."""

    call: CallControl


@dataclass(frozen=True)
class CallStateChanged:
    call: CallControl
    state: CallState


@dataclass(frozen=True)
class CallEnded:
    """A call this device took part in (or rang for) is over: `record.reason` says
    why (normal, declined, busy, answered_elsewhere, timeout, failed) and
    `record.duration` how long it was connected."""

    call: CallControl
    record: CallRecord


@dataclass(frozen=True)
class CallMissed:
    """A call nobody answered here: it rang out, the caller gave up, or it came while
    this device was offline (learned at the next connect)."""

    record: CallRecord
    contact: Contact


Event = (
    MessageReceived
    | MessageSent
    | MessageEdited
    | MessageDeleted
    | ReactionChanged
    | PaymentAnswered
    | TimerChanged
    | MessageDisappeared
    | ReceiptUpdate
    | Typing
    | IdentityChanged
    | DevicesChanged
    | DeviceLinked
    | DeviceUnlinked
    | AccountMoved
    | HistoryImported
    | SendFailed
    | GroupUpdated
    | GroupMembersUnverified
    | IncomingCall
    | CallStateChanged
    | CallEnded
    | CallMissed
    | Connected
    | Synced
    | Disconnected
)
