"""The recent history a primary hands to a companion it has just linked.

The primary exports the last `HISTORY_DAYS` days (its contacts, its groups and
the messages of every conversation with their states, oldest first) as one JSON
document, encrypts it like an attachment (`parley.attachments.crypto`: a fresh
key, secretstream), uploads the ciphertext through the media API and tells the
new companion where it is in a pairwise `history` message
(`parley.conversations.payload.HistoryPayload`: media id, key, stream header,
SHA-256 of the ciphertext, size). The key travels only inside the end-to-end
encryption; the service stores ciphertext it cannot read.

The companion downloads the object, checks its size and SHA-256, decrypts it,
checks every field of the document, and imports it in one transaction: what it
already has (a message with the same sender and client id, a contact, a newer
group) is kept, so importing twice changes nothing. A document that is
malformed, for another account, or not what its message promised is refused
(`HistoryError`) and nothing is stored.

The export document:

    {"v": 1, "user_id": <this account>, "since": <ms>, "exported_at": <ms>,
     "contacts": [{"user_id", "name", "phone"}, ...],
     "groups": [{"group_id", "name", "version", "members", "admins",
                 "created_by", "created_at", "active"}, ...],
     "messages": [{"peer", "direction", "sender", "client_id", "ts", "state",
                   "content": {...}}, ...]}
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from parley.api import ApiClient
from parley.attachments.crypto import IntegrityError
from parley.attachments.transfer import TransferError, download_attachment, upload_attachment
from parley.content import (
    Attachment,
    Content,
    ContentError,
    TimerChange,
    encode_content,
    parse_content,
)
from parley.conversations import payload
from parley.conversations.sealing import Sealed, Sealer, check_entry_size, new_client_id
from parley.errors import ParleyClientError
from parley.ids import group_id_of, is_client_id, is_group_id, is_user_id
from parley.models import Account, Direction, Group, HistoryImported, Message, MessageState
from parley.protocol import OutboxEntry
from parley.store import Store

__all__ = [
    "COMPANION_WAIT_S",
    "HISTORY_DAYS",
    "HistoryError",
    "HistorySent",
    "export_history",
    "import_history",
    "parse_history",
    "receive_history",
    "send_history",
    "wait_for_device",
]

log = logging.getLogger("parley.devices")

# How far back a new companion's history goes.
HISTORY_DAYS = 90
# How long the primary waits for a companion it approved to finish linking
# (the service's pairing lifetime).
COMPANION_WAIT_S = 300.0
_POLL_S = 1.5
_DAY_MS = 86_400_000
_VERSION = 1
_MIME = "application/json"
_NAME = "history.json"

_TOP_FIELDS = frozenset({"v", "user_id", "since", "exported_at", "contacts", "groups", "messages"})
_CONTACT_FIELDS = frozenset({"user_id", "name", "phone"})
_GROUP_FIELDS = frozenset(
    {"group_id", "name", "version", "members", "admins", "created_by", "created_at", "active"}
)
_MESSAGE_FIELDS = frozenset({"peer", "direction", "sender", "client_id", "ts", "state", "content"})
_OUT_STATES = frozenset(
    {
        MessageState.PENDING,
        MessageState.SENT,
        MessageState.DELIVERED,
        MessageState.READ,
        MessageState.FAILED,
    }
)
_IN_STATES = frozenset({MessageState.RECEIVED, MessageState.READ})
_MAX_NAME_CHARS = 255
_MAX_PHONE_CHARS = 32
_MAX_MEMBERS = 4096
_MAX_TS_MS = 2**53


class HistoryError(ParleyClientError):
    """A history export this device refuses (malformed, for another account, or not
    what its message promised) or could not fetch. Nothing was imported."""


@dataclass(frozen=True)
class HistorySent:
    """What the primary sent a new companion."""

    device_id: str
    messages: int
    conversations: int
    client_id: str  # of the pairwise `history` message, in the outbox


# --- export ----------------------------------------------------------------------------


def export_history(
    store: Store,
    account: Account,
    *,
    now: float,
    days: int = HISTORY_DAYS,
    max_bytes: int = payload.MAX_HISTORY_BYTES,
) -> tuple[bytes, int, int]:
    """The last `days` days of this profile as the export document; with how many
    messages and conversations it holds. Past `max_bytes`, the oldest messages are
    left out until it fits."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise ValueError("days must be a whole number of days, 0 or more")
    since = int(now * 1000) - days * _DAY_MS
    messages = [_message_json(m) for m in store.messages.since(since) if m.content is not None]
    contacts = [
        {"user_id": c.user_id, "name": c.name, "phone": c.phone}
        for c in store.contacts.all()
        if c.user_id != account.user_id
    ]
    groups = [_group_json(g) for g in store.groups.all(include_inactive=True)]
    document: dict[str, Any] = {
        "v": _VERSION,
        "user_id": account.user_id,
        "since": since,
        "exported_at": int(now * 1000),
        "contacts": contacts,
        "groups": groups,
        "messages": messages,
    }
    data = _dump(document)
    while len(data) > max_bytes and document["messages"]:
        kept = document["messages"]
        document["messages"] = kept[len(kept) // 2 + 1 :] if len(kept) > 1 else []
        data = _dump(document)
    if len(data) > max_bytes:
        raise HistoryError("this profile's contacts and groups alone exceed the history limit")
    kept = document["messages"]
    return data, len(kept), len({m["peer"] for m in kept})


def _dump(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _message_json(message: Message) -> dict[str, Any]:
    assert message.content is not None
    return {
        "peer": message.peer,
        "direction": message.direction.value,
        "sender": message.sender,
        "client_id": message.client_id,
        "ts": message.ts,
        "state": message.state.value,
        "content": json.loads(encode_content(message.content)),
    }


def _group_json(group: Group) -> dict[str, Any]:
    return {
        "group_id": group.group_id,
        "name": group.name,
        "version": group.version,
        "members": list(group.members),
        "admins": list(group.admins),
        "created_by": group.created_by,
        "created_at": group.created_at,
        "active": group.active,
    }


# --- the document, checked -------------------------------------------------------------


@dataclass(frozen=True)
class _Contact:
    user_id: str
    name: str | None
    phone: str | None


@dataclass(frozen=True)
class _Message:
    peer: str
    direction: Direction
    sender: str
    client_id: str
    ts: int
    state: MessageState
    content: Content


@dataclass(frozen=True)
class History:
    """An export document, every field checked."""

    user_id: str
    contacts: tuple[_Contact, ...]
    groups: tuple[Group, ...]
    messages: tuple[_Message, ...]


def parse_history(data: bytes, account: Account) -> History:
    """The export document, checked field by field (HistoryError otherwise). It must
    be this account's."""
    if len(data) > payload.MAX_HISTORY_BYTES:
        raise HistoryError("the history is larger than this client accepts")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise HistoryError("the history is not JSON") from exc
    if not isinstance(document, dict) or set(document) != _TOP_FIELDS:
        raise HistoryError("the history has unknown or missing fields")
    if document["v"] != _VERSION or isinstance(document["v"], bool):
        raise HistoryError("the history is of an unknown version")
    if document["user_id"] != account.user_id:
        raise HistoryError("the history is another account's")
    for name in ("since", "exported_at"):
        _timestamp(document[name], name)
    contacts = tuple(_contact(c) for c in _list(document["contacts"], "contacts"))
    groups = tuple(_group(g) for g in _list(document["groups"], "groups"))
    me = account.user_id
    messages = tuple(_message(m, me) for m in _list(document["messages"], "messages"))
    return History(me, contacts, groups, messages)


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise HistoryError(f"the history's {what} are not a list")
    return value


def _fields(value: object, fields: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != fields:
        raise HistoryError(f"a {what} in the history has unknown or missing fields")
    return value


def _timestamp(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_TS_MS:
        raise HistoryError(f"the history's {what} is not a time")
    return value


def _text(value: object, what: str, max_chars: int, *, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > max_chars:
        raise HistoryError(f"a {what} in the history is not a valid text")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise HistoryError(f"a {what} in the history contains control characters")
    return value


def _contact(value: object) -> _Contact:
    fields = _fields(value, _CONTACT_FIELDS, "contact")
    if not is_user_id(fields["user_id"]):
        raise HistoryError("a contact in the history has no valid user id")
    name = _text(fields["name"], "contact name", _MAX_NAME_CHARS, optional=True)
    phone = _text(fields["phone"], "phone number", _MAX_PHONE_CHARS, optional=True)
    return _Contact(fields["user_id"], name or None, phone or None)


def _user_ids(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > _MAX_MEMBERS:
        raise HistoryError(f"a group's {what} in the history are not a list of users")
    if not all(is_user_id(u) for u in value) or len(set(value)) != len(value):
        raise HistoryError(f"a group's {what} in the history are not a list of users")
    return tuple(value)


def _group(value: object) -> Group:
    fields = _fields(value, _GROUP_FIELDS, "group")
    group_id, version, active = fields["group_id"], fields["version"], fields["active"]
    if not is_group_id(group_id):
        raise HistoryError("a group in the history has no valid group id")
    name = _text(fields["name"], "group name", _MAX_NAME_CHARS, optional=False)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise HistoryError("a group in the history has no valid version")
    if not isinstance(active, bool):
        raise HistoryError("a group in the history says neither active nor not")
    members = _user_ids(fields["members"], "members")
    admins = _user_ids(fields["admins"], "admins")
    if not set(admins) <= set(members):
        raise HistoryError("a group in the history has admins who are not members")
    created_by = fields["created_by"]
    if created_by is not None and not is_user_id(created_by):
        raise HistoryError("a group in the history has no valid creator")
    created_at = fields["created_at"]
    if created_at is not None and (
        isinstance(created_at, bool) or not isinstance(created_at, int) or created_at < 0
    ):
        raise HistoryError("a group in the history has no valid creation time")
    assert name is not None
    return Group(group_id, name, version, members, admins, created_by, created_at, active)


def _message(value: object, me: str) -> _Message:
    fields = _fields(value, _MESSAGE_FIELDS, "message")
    peer, sender, client_id = fields["peer"], fields["sender"], fields["client_id"]
    group_id = group_id_of(peer) if isinstance(peer, str) else None
    if not (is_user_id(peer) or is_group_id(group_id)):
        raise HistoryError("a message in the history is in no valid conversation")
    if not is_user_id(sender) or not is_client_id(client_id):
        raise HistoryError("a message in the history has no valid sender or client id")
    try:
        direction = Direction(fields["direction"])
        state = MessageState(fields["state"])
    except ValueError as exc:
        raise HistoryError("a message in the history has no valid direction or state") from exc
    if direction is Direction.OUT:
        if sender != me or peer == me or state not in _OUT_STATES:
            raise HistoryError("a message of ours in the history does not add up")
    elif sender == me or state not in _IN_STATES or (group_id is None and sender != peer):
        raise HistoryError("a received message in the history does not add up")
    ts = _timestamp(fields["ts"], "message time")
    content = fields["content"]
    if not isinstance(content, dict):
        raise HistoryError("a message in the history has no content")
    try:
        parsed = parse_content(content)
    except ContentError as exc:
        raise HistoryError(f"a message in the history has bad content: {exc}") from exc
    return _Message(peer, direction, sender, client_id, ts, state, parsed)


# --- import ----------------------------------------------------------------------------


def import_history(store: Store, account: Account, data: bytes, *, now: float) -> HistoryImported:
    """Check the whole document, then store what this profile does not have yet, all
    in one transaction. Returns how many messages (and conversations they are in)
    were new; importing the same history again imports nothing."""
    history = parse_history(data, account)
    imported = 0
    conversations: set[str] = set()
    with store.transaction():
        for contact in history.contacts:
            if contact.user_id == account.user_id:
                continue
            known = store.contacts.get(contact.user_id)
            if known is None or (known.name is None and contact.name is not None):
                store.contacts.add(contact.user_id, contact.name, contact.phone)
        for group in history.groups:
            known_group = store.groups.get(group.group_id)
            if known_group is None or known_group.version < group.version:
                # nobody in it is verified here until its signed chain is read
                others = tuple(m for m in group.members if m != account.user_id)
                store.groups.save(replace(group, unverified=others), now)
                # read it again from the service: it may have moved on since
                store.groups.note(group.group_id, now)
        now_ms = int(now * 1000)
        for message in history.messages:
            ctx = getattr(message.content, "ctx", None)
            timer_ms = ctx.timer * 1000 if ctx is not None else 0
            if timer_ms and message.ts + timer_ms <= now_ms:
                continue  # it disappeared on the primary already (or is about to)
            group_id = group_id_of(message.peer)
            if group_id is None and store.contacts.get(message.peer) is None:
                store.contacts.add(message.peer, None, None)
            elif group_id is not None and store.groups.get(group_id) is None:
                store.groups.note(group_id, now)  # heard of: read from the service
            stored = store.messages.add(
                peer=message.peer,
                direction=message.direction,
                sender=message.sender,
                client_id=message.client_id,
                text=payload.describe(message.content),
                ts=message.ts,
                state=message.state,
                content=message.content,
            )
            if stored is None:
                continue
            imported += 1
            conversations.add(message.peer)
            if isinstance(message.content, TimerChange):
                # the primary exports only the timer changes it applied
                store.messages.set_timer(
                    message.peer, message.content.seconds, message.sender, message.ts
                )
            if timer_ms:
                # here it runs from when it was sent: it goes no later than on the primary
                store.messages.start_timer(stored.id, message.ts + timer_ms)
    log.info("imported %d messages in %d conversations", imported, len(conversations))
    return HistoryImported(imported, len(conversations))


# --- the primary's side ----------------------------------------------------------------


async def wait_for_device(
    api: ApiClient,
    device_id: str,
    *,
    wait_s: float = COMPANION_WAIT_S,
    poll_s: float = _POLL_S,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Until `device_id` is one of this account's devices with its keys uploaded
    (a companion that finished linking); HistoryError after `wait_s` seconds."""
    deadline = clock() + wait_s
    while True:
        devices = await api.devices()
        if any(d.device_id == device_id and d.ready for d in devices):
            return
        if clock() >= deadline:
            raise HistoryError(f"device {device_id} did not finish linking in time")
        await asyncio.sleep(poll_s)


async def send_history(
    device_id: str,
    *,
    store: Store,
    sealer: Sealer,
    api: ApiClient,
    http: aiohttp.ClientSession,
    queue: Callable[[OutboxEntry], None],
    days: int = HISTORY_DAYS,
    wait_s: float = COMPANION_WAIT_S,
    poll_s: float = _POLL_S,
    clock: Callable[[], float] = time.time,
) -> HistorySent:
    """On the primary, after `Client.link_device` approved companion `device_id`:
    wait until it finished linking, then export, encrypt and upload the history and
    queue the pairwise `history` message for it. `queue` hands the outbox entry to
    the protocol (and flushes), e.g. from `Client`:

        await send_history(device_id, store=self.store, sealer=self.engine.sealer,
                           api=self.api, http=self._session(), queue=self._queue_entry)
    """
    await wait_for_device(api, device_id, wait_s=wait_s, poll_s=poll_s)
    account = sealer.account
    data, count, conversations = export_history(store, account, now=clock(), days=days)
    attachment = await _upload(http, api, data, store.path.parent)
    plaintext = payload.encode_history(
        payload.HistoryPayload(
            device=device_id,
            media_id=attachment.media_id,
            key=attachment.key,
            header=attachment.header,
            sha256=attachment.sha256,
            size=attachment.size,
        )
    )
    me = sealer.me()
    async with sealer.lock(account.user_id):
        # the service routes a message to oneself to every other device of the
        # account; only `device_id` opens the history, the others skip it
        sealed = await sealer.seal(me, plaintext)
        if device_id not in sealed.payloads:
            fresh = await sealer.seal(me, plaintext, only={device_id})
            sealed = Sealed(
                sealed.user_id,
                {**sealed.payloads, **fresh.payloads},
                {**sealed.sessions, **fresh.sessions},
                sealed.events + fresh.events,
            )
        if device_id not in sealed.payloads:
            raise HistoryError(f"device {device_id} is not on this account's device list")
        entry = OutboxEntry(client_id=new_client_id(), to=account.user_id, payloads=sealed.payloads)
        check_entry_size(entry)
        sealer.commit(sealed, entry, plaintext, clock())
    queue(entry)
    log.info("sent %d messages of history to device %s", count, device_id)
    return HistorySent(device_id, count, conversations, entry.client_id)


async def _upload(
    http: aiohttp.ClientSession, api: ApiClient, data: bytes, folder: Path
) -> Attachment:
    """Encrypt the export with a fresh key and upload it; the plaintext lives only
    in a private temporary folder inside the profile, while it is encrypted."""
    workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=".history-", dir=folder))
    try:
        source = workdir / _NAME
        await asyncio.to_thread(source.write_bytes, data)
        return await upload_attachment(http, api, source, mime=_MIME, name=_NAME, workdir=workdir)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)


# --- the companion's side --------------------------------------------------------------


async def receive_history(
    history: payload.HistoryPayload,
    *,
    store: Store,
    account: Account,
    api: ApiClient,
    http: aiohttp.ClientSession,
    clock: Callable[[], float] = time.time,
) -> HistoryImported:
    """On a new companion: download the history a `history` message points at,
    check its size and SHA-256, decrypt and import it (HistoryError otherwise, with
    nothing imported)."""
    if history.device != account.device_id:
        raise HistoryError("this history is for another of this account's devices")
    data = await _download(http, api, history, store.path.parent)
    return import_history(store, account, data, now=clock())


async def _download(
    http: aiohttp.ClientSession, api: ApiClient, history: payload.HistoryPayload, folder: Path
) -> bytes:
    try:
        attachment = Attachment(
            kind="document",
            media_id=history.media_id,
            key=history.key,
            header=history.header,
            sha256=history.sha256,
            size=history.size,
            mime=_MIME,
            name=_NAME,
        )
    except ContentError as exc:
        raise HistoryError(f"the history message is malformed: {exc}") from exc
    workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=".history-", dir=folder))
    try:
        try:
            path = await download_attachment(http, api, attachment, workdir)
        except IntegrityError as exc:
            raise HistoryError(f"the history did not verify: {exc}") from exc
        except TransferError as exc:
            raise HistoryError(f"the history could not be downloaded: {exc}") from exc
        return await asyncio.to_thread(path.read_bytes)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
