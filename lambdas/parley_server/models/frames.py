"""WebSocket protocol v1: the frames clients send, the envelopes the mailbox keeps,
and the events the server emits.

Parsing is strict about what it needs and ignores what it does not (a forged
`from` in a frame is simply never read: the sender comes from the authorizer).
Every refusal is a `BadRequest` (or subclass) naming the offending field, raised
before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Literal

import msgspec

from parley_server.ids import DEVICE_HEX, USER_HEX, USER_ID, is_device_id, is_group_id, is_user_id
from parley_server.models.errors import BadRequest, PayloadTooLarge

__all__ = [
    "ACTIONS",
    "BATCH_BYTES",
    "CONNECTING_S",
    "MAX_EPHEMERAL_TTL_S",
    "MAX_IDS_PER_FRAME",
    "AckFrame",
    "Connection",
    "DirectSendFrame",
    "DirectTypingFrame",
    "Envelope",
    "GroupSendFrame",
    "GroupTypingFrame",
    "MessageEnvelope",
    "Page",
    "Position",
    "PostOutcome",
    "ReceiptEnvelope",
    "ReceiptFrame",
    "SendFrame",
    "ServerId",
    "SyncFrame",
    "TypingFrame",
    "batch_event",
    "batches",
    "decode_cursor",
    "encode_cursor",
    "error_event",
    "event_bytes",
    "frame_ref",
    "mailbox_key",
    "make_ord",
    "ms_of_ord",
    "parse_frame",
    "parse_send",
    "parse_server_id",
    "parse_typing",
    "receipt_id",
    "sent_event",
    "synced_event",
    "typing_event",
]

ACTIONS = frozenset({"send", "ack", "receipt", "sync", "typing"})
# One frame may name at most this many ids (ack, receipt). A sync page holds as
# many events, so a client can ack a whole page in one frame.
MAX_IDS_PER_FRAME = 100
# Messages one `send` frame to a user may carry (the first and up to 24 in `more`):
# a burst or a backlog goes in one frame, one invocation and one devices read; the
# SDK packs them into one 32 KB WebSocket frame, and 25 x 5 devices stays a short
# invocation.
MAX_MESSAGES_PER_SEND = 25
# a message's `ts` (ms since the epoch) is at most this: JSON's exact integers
MAX_TS_MS = 2**53 - 1

# Client ids become part of a sort key joined by "#", so "#" is never allowed.
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ORD = re.compile(r"[0-9]{17}#[0-9a-f]{8}")
_SERVER_ID = re.compile(rf"([mr])#({USER_HEX})#({DEVICE_HEX})#({_CLIENT_ID.pattern})")
_GROUP_PREFIX = "g:"


# -- reading a frame -------------------------------------------------------------------


def parse_frame(body: str | None) -> dict[str, Any]:
    """The JSON object of a frame, or `invalid_json`."""
    try:
        raw = json.loads(body or "")
    except (ValueError, TypeError, RecursionError):
        # RecursionError: nested deeper than the parser goes (a 128 KB frame can nest 64k deep)
        raise BadRequest("frame is not JSON", code="invalid_json") from None
    if not isinstance(raw, dict):
        raise BadRequest("frame must be a JSON object", code="invalid_json")
    return raw


def frame_ref(raw: Mapping[str, Any]) -> str | None:
    """The client id a frame carries, if it looks like one: the `ref` of its error."""
    ref = raw.get("id")
    return ref if isinstance(ref, str) and _CLIENT_ID.fullmatch(ref) else None


def _field(raw: Mapping[str, Any], name: str) -> Any:
    if name not in raw or raw[name] is None:
        raise BadRequest(f"`{name}` is required", field=name)
    return raw[name]


def _string(raw: Mapping[str, Any], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = _field(raw, name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadRequest(f"`{name}` must be {what}", field=name)
    return value


def _id_list(raw: Mapping[str, Any], name: str) -> list[str]:
    value = _field(raw, name)
    if not isinstance(value, list) or not value:
        raise BadRequest(f"`{name}` must be a non-empty list", field=name)
    if len(value) > MAX_IDS_PER_FRAME:
        raise PayloadTooLarge(
            f"`{name}` holds more than {MAX_IDS_PER_FRAME} ids", field=name, limit=MAX_IDS_PER_FRAME
        )
    if not all(isinstance(item, str) for item in value):
        raise BadRequest(f"`{name}` must hold strings", field=name)
    # order kept, duplicates dropped: a repeated id means nothing more
    return list(dict.fromkeys(value))


def _ciphertext(value: Any, where: str, max_bytes: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"`{where}` must be a non-empty base64 string", field=where)
    # a cheap bound before decoding: base64 is 4 characters per 3 bytes
    if len(value) > (max_bytes + 2) // 3 * 4:
        raise PayloadTooLarge(
            f"`{where}` is larger than {max_bytes} bytes", field=where, limit=max_bytes
        )
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            f"`{where}` is not valid base64", code="invalid_base64", field=where
        ) from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"`{where}` is larger than {max_bytes} bytes", field=where, limit=max_bytes
        )
    if not data:
        raise BadRequest(f"`{where}` is empty", field=where)
    return data


def _to(raw: Mapping[str, Any]) -> tuple[Literal["user", "group"], str]:
    """Whom a frame is for: a user id, or `g:` and a group id."""
    to = _field(raw, "to")
    if isinstance(to, str) and to.startswith(_GROUP_PREFIX):
        group_id = to.removeprefix(_GROUP_PREFIX)
        if is_group_id(group_id):
            return "group", group_id
    elif is_user_id(to):
        return "user", to
    raise BadRequest("`to` must be a user id or g:<group id>", field="to")


class DirectSendFrame(msgspec.Struct, frozen=True):
    """`send` to a user: one ciphertext per device of the recipient.

    `ephemeral`: something that matters for seconds only (call signalling): kept for
    `ttl_s` (at most MAX_EPHEMERAL_TTL_S) and never pushed, unless `ring`: then a device
    not reached live gets a high-priority call push instead of a wake-up."""

    client_id: str
    to: str
    payloads: Mapping[str, bytes]
    # a disappearing message's timer (s): its envelopes are kept no longer than that
    ttl_s: int | None = None
    ephemeral: bool = False
    ring: bool = False
    # the messages that follow this one to the same user in the same frame, in order
    # (none ephemeral, none with `more` of its own)
    more: tuple[DirectSendFrame, ...] = ()

    @property
    def messages(self) -> tuple[DirectSendFrame, ...]:
        """This message and those that follow it in the frame, in order."""
        return (self, *self.more)

    def __post_init__(self) -> None:
        if self.more and self.ephemeral:
            raise ValueError("an ephemeral send goes alone")
        if any(m.more or m.ephemeral or m.to != self.to for m in self.more):
            raise ValueError("what follows in `more` is a plain message to the same user")
        if self.ring and not self.ephemeral:
            raise ValueError("a ringing send is ephemeral")
        if self.ephemeral and (self.ttl_s is None or self.ttl_s > MAX_EPHEMERAL_TTL_S):
            raise ValueError(f"an ephemeral send lives 1 to {MAX_EPHEMERAL_TTL_S} s")


class GroupSendFrame(msgspec.Struct, frozen=True):
    """`send` to a group: one sender-key ciphertext for every member. `version`, if
    given, is the group version the sender encrypted for (a mismatch is refused)."""

    client_id: str
    group_id: str
    body: bytes
    version: int | None = None
    ttl_s: int | None = None


SendFrame = DirectSendFrame | GroupSendFrame


def _group_version(raw: Mapping[str, Any]) -> int | None:
    value = raw.get("version")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("`version` must be a group version (a positive integer)", field="version")
    return value


# The longest `ttl` a send may ask for: a year (the mailbox keeps nothing past 30 days).
MAX_SEND_TTL_S = 365 * 24 * 3600
# The longest an ephemeral send (call signalling) may live: an unanswered call rings
# for a minute or so; nothing of a call's set-up is worth delivering five minutes late.
MAX_EPHEMERAL_TTL_S = 300


def _ttl(raw: Mapping[str, Any], where: str = "ttl") -> int | None:
    """`ttl`, optional (named `where` in errors)."""
    value = raw.get("ttl")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SEND_TTL_S:
        raise BadRequest(f"`{where}` must be whole seconds from 1 to {MAX_SEND_TTL_S}", field=where)
    return value


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    """An optional JSON true/false (absent or null: false)."""
    value = raw.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"`{name}` must be true or false", field=name)
    return value


def _ephemeral(raw: Mapping[str, Any], kind: str, ttl: int | None) -> tuple[bool, bool]:
    """`ephemeral` and `ring`, checked against each other, the `ttl` and the recipient."""
    ephemeral, ring = _flag(raw, "ephemeral"), _flag(raw, "ring")
    if kind == "group":
        for name, value in (("ephemeral", ephemeral), ("ring", ring)):
            if value:
                raise BadRequest(
                    f"`{name}` is for sends to a user only: group calls are not supported",
                    field=name,
                )
        return False, False
    if ring and not ephemeral:
        raise BadRequest("`ring` needs `ephemeral`: true", field="ring")
    if ephemeral and (ttl is None or ttl > MAX_EPHEMERAL_TTL_S):
        raise BadRequest(
            f"an ephemeral send needs `ttl`: whole seconds from 1 to {MAX_EPHEMERAL_TTL_S}",
            field="ttl",
        )
    return ephemeral, ring


def parse_send(raw: Mapping[str, Any], *, max_payload_bytes: int) -> SendFrame:
    """A `send` frame: to a user (`payloads`) or to `g:<group id>` (`body`); `ttl`
    (optional, seconds) keeps its envelopes no longer than that. A send to a user may
    be `ephemeral` (then `ttl` is required, at most MAX_EPHEMERAL_TTL_S) and `ring`,
    or carry `more`: the messages that follow it to the same user, each an object of
    `id`, `payloads` and an optional `ttl` (MAX_MESSAGES_PER_SEND in all)."""
    client_id = _string(raw, "id", _CLIENT_ID, "1-64 characters of A-Z a-z 0-9 _ -")
    kind, to = _to(raw)
    ttl = _ttl(raw)
    ephemeral, ring = _ephemeral(raw, kind, ttl)
    more = raw.get("more")
    if more is not None and (kind == "group" or ephemeral):
        what = "a group" if kind == "group" else "an ephemeral send"
        raise BadRequest(f"`more` is for plain sends to a user, not {what}", field="more")
    if kind == "group":
        body = _ciphertext(_field(raw, "body"), "body", max_payload_bytes)
        return GroupSendFrame(client_id, to, body, _group_version(raw), ttl)
    payloads = _payloads(raw, "payloads", max_payload_bytes)
    following = () if more is None else _more(more, to, client_id, max_payload_bytes)
    return DirectSendFrame(client_id, to, payloads, ttl, ephemeral, ring, following)


def _payloads(raw: Mapping[str, Any], where: str, max_payload_bytes: int) -> dict[str, bytes]:
    """`payloads` (named `where` in errors): a ciphertext per recipient device id."""
    payloads = raw.get("payloads")
    if not isinstance(payloads, dict) or not payloads:
        raise BadRequest(
            f"`{where}` must map each recipient device id to a ciphertext", field=where
        )
    decoded: dict[str, bytes] = {}
    for device_id, value in payloads.items():
        if not is_device_id(device_id):
            raise BadRequest(f"`{where}` key {device_id[:40]!r} is not a device id", field=where)
        decoded[device_id] = _ciphertext(value, f"{where}.{device_id}", max_payload_bytes)
    return decoded


def _more(
    value: Any, to: str, first_id: str, max_payload_bytes: int
) -> tuple[DirectSendFrame, ...]:
    """`more`: the messages after the first, each `id`, `payloads` and maybe `ttl`."""
    if not isinstance(value, list) or not value:
        raise BadRequest("`more` must be a non-empty list of messages", field="more")
    if len(value) >= MAX_MESSAGES_PER_SEND:
        raise PayloadTooLarge(
            f"one send carries at most {MAX_MESSAGES_PER_SEND} messages",
            field="more",
            limit=MAX_MESSAGES_PER_SEND,
        )
    seen = {first_id}
    messages = []
    for index, item in enumerate(value):
        where = f"more.{index}"
        if not isinstance(item, dict):
            raise BadRequest(f"`{where}` must be an object of id and payloads", field=where)
        unknown = set(item) - {"id", "payloads", "ttl"}
        if unknown:
            name = sorted(unknown)[0][:40]
            raise BadRequest(
                f"`{where}` holds {name!r}: a message in `more` has id, payloads and ttl only",
                field=where,
            )
        client_id = item.get("id")
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            raise BadRequest(
                f"`{where}.id` must be 1-64 characters of A-Z a-z 0-9 _ -", field=f"{where}.id"
            )
        if client_id in seen:
            raise BadRequest(
                f"`{where}.id` repeats another message's id", field=f"{where}.id", id=client_id
            )
        seen.add(client_id)
        ttl = _ttl(item, f"{where}.ttl")
        payloads = _payloads(item, f"{where}.payloads", max_payload_bytes)
        messages.append(DirectSendFrame(client_id, to, payloads, ttl))
    return tuple(messages)


class AckFrame(msgspec.Struct, frozen=True):
    """`ack`: server ids (from `message`/`receipt` events) the device has stored, and
    which of them may tell their sender `delivered` (the recipient decides: a message
    from a stranger is acked without a tick, so nobody learns when a device is online
    by writing to it)."""

    ids: tuple[str, ...]
    delivered: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> AckFrame:
        ids = _id_list(raw, "ids")
        bad = [i for i in ids if not _SERVER_ID.fullmatch(i)]
        if bad:
            raise BadRequest(
                "`ids` must be ids from message or receipt events", field="ids", ids=bad[:10]
            )
        delivered: list[str] = []
        if raw.get("delivered") is not None:
            value = raw["delivered"]
            if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
                raise BadRequest("`delivered` must be a list of ids", field="delivered")
            outside = [i for i in value if i not in ids]
            if outside:
                raise BadRequest(
                    "`delivered` may only name ids of this ack's `ids`",
                    field="delivered",
                    ids=outside[:10],
                )
            delivered = value
        return cls(tuple(ids), frozenset(delivered))


class ReceiptFrame(msgspec.Struct, frozen=True):
    """`receipt`: the reader tells `to` that these of its messages were read; `sent`,
    if given, is each one's `ts` (the server's time of the message, in ms), so what
    was sent before `to`'s number moved to a new phone is told to nobody."""

    to: str
    status: Literal["read"]
    ids: tuple[str, ...]
    sent: tuple[int, ...] | None = None  # one per id, in the same order

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> ReceiptFrame:
        to = _string(raw, "to", USER_ID, "a user id")
        status = _field(raw, "status")
        if status != "read":
            raise BadRequest('`status` must be "read"', field="status")
        listed = raw.get("ids")
        ids = _id_list(raw, "ids")
        if not all(_CLIENT_ID.fullmatch(i) for i in ids):
            raise BadRequest("`ids` must be client ids of messages", field="ids")
        value = raw.get("sent")
        if value is None:
            return cls(to, "read", tuple(ids))
        assert isinstance(listed, list)  # _id_list checked it
        if (
            not isinstance(value, list)
            or len(value) != len(listed)
            or not all(type(t) is int and 0 <= t <= MAX_TS_MS for t in value)
        ):
            raise BadRequest(
                "`sent` must hold the `ts` of each message `ids` names, in the same order",
                field="sent",
            )
        first = dict(zip(reversed(listed), reversed(value), strict=True))  # first one wins
        return cls(to, "read", tuple(ids), tuple(first[i] for i in ids))


class SyncFrame(msgspec.Struct, frozen=True):
    """`sync`: the next page of pending events, after `after` (a cursor from `synced`);
    `batch`: the client reads `batch` events, so the page may go in a few posts."""

    after: Position | None
    batch: bool = False

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SyncFrame:
        batch = _flag(raw, "batch")
        after = raw.get("after")
        if after is None:
            return cls(None, batch)
        if not isinstance(after, str):
            raise BadRequest("`after` must be a cursor from a synced event", field="after")
        return cls(decode_cursor(after), batch)


class DirectTypingFrame(msgspec.Struct, frozen=True):
    """`typing` to a user: relayed to their live connections, never stored."""

    to: str
    state: Literal["on", "off"]


class GroupTypingFrame(msgspec.Struct, frozen=True):
    """`typing` to a group: relayed to every other member's live connections."""

    group_id: str
    state: Literal["on", "off"]


TypingFrame = DirectTypingFrame | GroupTypingFrame


def parse_typing(raw: Mapping[str, Any]) -> TypingFrame:
    """A `typing` frame: to a user or to `g:<group id>`, `state` on or off."""
    kind, to = _to(raw)
    state = _field(raw, "state")
    if state not in ("on", "off"):
        raise BadRequest('`state` must be "on" or "off"', field="state")
    on_off: Literal["on", "off"] = "on" if state == "on" else "off"
    return GroupTypingFrame(to, on_off) if kind == "group" else DirectTypingFrame(to, on_off)


# -- the mailbox ------------------------------------------------------------------------


def mailbox_key(user_id: str, device_id: str) -> str:
    """The partition of one device's mailbox."""
    return f"{user_id}#{device_id}"


def make_ord(now: float, nonce: str, step: int = 0) -> str:
    """A time-ordered sort value: zero-padded microseconds, then a random tie-breaker.
    `step` microseconds later: the n-th message of one frame is stamped n after the
    first, so the messages of a frame sort in the frame's order."""
    return f"{round(now * 1_000_000) + step:017d}#{nonce}"


def us_of_ord(ord_: str) -> int:
    """The server time (integer microseconds) an `ord` was stamped at."""
    return int(ord_[:17])


def ms_of_ord(ord_: str) -> int:
    """The server time (integer milliseconds) an `ord` was stamped at."""
    return us_of_ord(ord_) // 1000


def receipt_id(status: str, ids: Sequence[str]) -> str:
    """A receipt's id, derived from what it says, so a retried receipt is stored once."""
    digest = hashlib.sha256("\n".join([status, *sorted(ids)]).encode()).hexdigest()
    return f"{status}-{digest[:32]}"


class ServerId(msgspec.Struct, frozen=True):
    kind: Literal["m", "r"]
    sender: str
    sender_device: str
    key: str  # client id (messages) or receipt id (receipts)


def parse_server_id(server_id: str) -> ServerId | None:
    found = _SERVER_ID.fullmatch(server_id)
    if not found:
        return None
    kind: Literal["m", "r"] = "m" if found[1] == "m" else "r"
    return ServerId(kind, found[2], found[3], found[4])


class MessageEnvelope(msgspec.Struct, frozen=True):
    """A ciphertext waiting in one device's mailbox."""

    recipient: str
    recipient_device: str
    sender: str
    sender_device: str
    client_id: str
    body: bytes
    ord: str
    expires_at: int
    group: str | None = None

    @property
    def server_id(self) -> str:
        return f"m#{self.sender}#{self.sender_device}#{self.client_id}"

    @property
    def ts(self) -> int:
        """Server time of acceptance, integer milliseconds."""
        return ms_of_ord(self.ord)

    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event": "message",
            "id": self.server_id,
            "client_id": self.client_id,
            "from": self.sender,
            "from_device": self.sender_device,
            "body": base64.b64encode(self.body).decode("ascii"),
            "ts": self.ts,
        }
        if self.group is not None:
            event["group"] = self.group
        return event


class ReceiptEnvelope(msgspec.Struct, frozen=True):
    """A delivered/read receipt waiting in one device's mailbox."""

    recipient: str
    recipient_device: str
    sender: str  # the reader
    sender_device: str
    status: str
    ids: tuple[str, ...]  # client ids of the messages it is about
    ord: str
    expires_at: int

    @property
    def receipt_id(self) -> str:
        return receipt_id(self.status, self.ids)

    @property
    def server_id(self) -> str:
        return f"r#{self.sender}#{self.sender_device}#{self.receipt_id}"

    @property
    def ts(self) -> int:
        return ms_of_ord(self.ord)

    def event(self) -> dict[str, Any]:
        return {
            "event": "receipt",
            "id": self.server_id,
            "from": self.sender,
            "from_device": self.sender_device,
            "status": self.status,
            "ids": list(self.ids),
            "ts": self.ts,
        }


Envelope = MessageEnvelope | ReceiptEnvelope


class Position(msgspec.Struct, frozen=True, order=True):
    """Where a sync page ended: the `by_order` key of the last envelope read."""

    ord: str
    server_id: str


class Page(msgspec.Struct, frozen=True):
    """Pending envelopes, oldest first, and where the next page starts (None: no more)."""

    envelopes: list[Envelope]
    next: Position | None


def encode_cursor(position: Position) -> str:
    raw = json.dumps([position.ord, position.server_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; anything not made by `encode_cursor` is refused."""
    bad = BadRequest("`after` is not a cursor from a synced event", field="after")
    if len(cursor) > 256:
        raise bad
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise bad from None
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not all(isinstance(part, str) for part in raw)
        or not _ORD.fullmatch(raw[0])
        or not _SERVER_ID.fullmatch(raw[1])
    ):
        raise bad
    return Position(raw[0], raw[1])


# -- delivery ---------------------------------------------------------------------------


# How long after its $connect handler recorded it a connection may still not be
# open: $connect runs for at most API Gateway's 29 s integration timeout, and the
# @connections API answers 410 (gone) for a connection until its $connect is over.
CONNECTING_S = 30


class Connection(msgspec.Struct, frozen=True):
    """A live WebSocket connection of one device."""

    connection_id: str
    device_id: str
    connected_at: float  # when $connect recorded it (epoch seconds)
    batch: bool = False  # it reads `batch` events (it dialled with batch=1)

    def over(self, now: float) -> bool:
        """Whether a 410 for a post to it at `now` means the connection is over. Within
        CONNECTING_S of its recording it may only be opening: forgetting its record
        then would leave an open connection that no sender finds until it reconnects
        (what was posted waits in the mailbox, and its sync after opening finds it)."""
        return now - self.connected_at >= CONNECTING_S


class PostOutcome(Enum):
    """What happened to one event posted to one connection."""

    DELIVERED = "delivered"
    GONE = "gone"  # the connection no longer exists (410): forget it
    FAILED = "failed"  # throttled or unavailable: the envelope waits for sync


# -- events the server emits ------------------------------------------------------------


def sent_event(client_id: str, ts: int, more: Sequence[tuple[str, int]] = ()) -> dict[str, Any]:
    """`sent` for a frame's first message; `more`: (client id, ts) of those after it."""
    event: dict[str, Any] = {"event": "sent", "id": client_id, "ts": ts}
    if more:
        event["more"] = [{"id": cid, "ts": at} for cid, at in more]
    return event


def synced_event(more: bool, cursor: str | None) -> dict[str, Any]:
    return {"event": "synced", "more": more, "cursor": cursor}


# API Gateway meters WebSocket messages in units of 32 KB: events posted together up
# to that size cost what one of them alone costs (and one PostToConnection).
BATCH_BYTES = 32 * 1024
_BATCH_OVERHEAD = len('{"event":"batch","events":[]}')


def event_bytes(event: Mapping[str, Any]) -> int:
    """The size of `event` as posted (compact JSON, as the gateway adapter writes it)."""
    return len(json.dumps(event, separators=(",", ":")))


def batches(
    events: Sequence[Mapping[str, Any]], limit: int = BATCH_BYTES, *, together: bool = True
) -> list[list[Mapping[str, Any]]]:
    """`events` in order, in runs that each fit one `batch` event of at most `limit`
    bytes; an event too large to share a post goes alone. Not `together` (a client
    that does not read batches): a run of one each."""
    if not together:
        return [[event] for event in events]
    runs: list[list[Mapping[str, Any]]] = []
    size = limit  # no run open yet
    for event in events:
        grown = size + 1 + event_bytes(event)  # its comma before it
        if runs and grown <= limit:
            runs[-1].append(event)
            size = grown
        else:
            runs.append([event])
            size = _BATCH_OVERHEAD + event_bytes(event)
    return runs


def batch_event(events: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """One post of `events`: the event itself when it is alone, else a `batch`."""
    if len(events) == 1:
        return events[0]
    return {"event": "batch", "events": list(events)}


def typing_event(
    sender: str, sender_device: str, state: str, group: str | None = None
) -> dict[str, Any]:
    event = {"event": "typing", "from": sender, "from_device": sender_device, "state": state}
    if group is not None:
        event["group"] = group
    return event


def error_event(error: Mapping[str, Any], ref: str | None) -> dict[str, Any]:
    """An `error` event from an error's `to_dict()`; `ref` is the frame's client id."""
    event: dict[str, Any] = {"event": "error"}
    if ref is not None:
        event["ref"] = ref
    event.update(error)
    return event
