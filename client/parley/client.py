"""The SDK surface: `Client` and the event stream.

    async with Client("alice") as c:
        await c.send("Bob", "hi")
        async for event in c.events():
            ...

A `Client` opens its profile's store, keeps one WebSocket connection up
(reconnecting, syncing and resending on its own) and turns what arrives into
typed events (`parley.models`). Everything it is told to send is stored in the
outbox first, so a message survives a crash or a lost connection.

It is a facade over the slices: `parley.conversations` and `parley.groups`
(composed by `parley.engine`), `parley.groups.membership` (its group calls are
`parley.groups.calls.GroupCalls`), `parley.devices.calls` (`DeviceCalls`),
`parley.transfers` for files, and `parley.connection` for the live side;
`parley.assembly` puts them together. What the protocol hands in goes to one
handler per event type (`parley.inbound`).

Groups work like conversations with one person:

    climbing = await c.create_group("Climbing", ["Bob", "Carol"])
    await c.send(climbing, "Saturday?")        # or c.send("Climbing", ...)
    await c.add_members(climbing, ["Dan"]); await c.remove_members(climbing, ["Carol"])
    c.group_ticks(message)                      # who has it, who read it
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import aiohttp

from parley import keys, relationships
from parley.api import ApiClient, PushRegistration
from parley.assembly import (
    ServiceAccess,
    Slices,
    build_slices,
    open_registered,
    service_api,
)
from parley.attachments.transfer import ProgressCallback
from parley.calling.facade import PhoneCalls
from parley.calling.manager import Calls
from parley.calling.relays import IceConfig, parse_relays
from parley.calling.signalling import Signaller
from parley.connection import Connection
from parley.content import Attachment, ContactCard, Content, Location
from parley.conversations import actions
from parley.conversations.calls import MessageCalls
from parley.conversations.payload import HistoryPayload
from parley.conversations.search import SearchCalls
from parley.devices.calls import DeviceCalls
from parley.devices.history import HistorySent, receive_history, send_history
from parley.directory import add_contact, find_contact, find_conversation
from parley.endpoints import Endpoints
from parley.engine import Engine
from parley.errors import AccountGone, ContactNotFound, ParleyClientError
from parley.groups import MemberReceipt
from parley.groups.admins import signed_admin
from parley.groups.calls import GroupCalls
from parley.groups.membership import Membership
from parley.models import Account, AccountMoved, Contact, Event, Group, Message
from parley.payments.calls import PaymentCalls
from parley.protocol import ACK_DELAY_S, RECEIPT_ACK_DELAY_S, OutboxEntry, Protocol
from parley.signup import KeyringChoice
from parley.store import Store
from parley.transfers import MEDIA_DIR, fetch_file, upload_file
from parley.transport import Backoff

__all__ = ["Client", "EventStream"]

log = logging.getLogger("parley.client")

_EVENT_QUEUE = 1000
# The service relays typing in groups of up to this many members (docs/PROTOCOL.md).
GROUP_TYPING_MEMBERS = 32

_T = TypeVar("_T")


class EventStream:
    """An async iterator over a client's events from the moment it was created."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(_EVENT_QUEUE)
        client._subscribers.append(self._queue)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    def drain(self) -> list[Event]:
        """The events already waiting, without blocking."""
        events: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is not None:
                events.append(event)
        return events

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._client._subscribers.remove(self._queue)


# how often the client looks for messages whose timer ran out when none is due sooner
# (a timer that starts meanwhile ends at least 24 hours later)
_SWEEP_IDLE_S = 60.0


class Client(MessageCalls, PaymentCalls, SearchCalls, GroupCalls, DeviceCalls, PhoneCalls):
    """One profile, connected. Use as `async with Client(profile) as c:`.

    `connect=False` opens the profile without a WebSocket (history, contacts,
    safety numbers, HTTP calls only). `ack_delay` (s): how long an ack waits for
    others to share its frame (0: each goes at once, one Lambda invocation each).
    `receipt_ack_delay` (s): how long the ack of a receipt, on which no tick hangs,
    may wait for an ack frame that goes anyway (at least `ack_delay`).
    """

    def __init__(
        self,
        profile: str = "default",
        *,
        endpoints: Endpoints | None = None,
        home: Path | None = None,
        passphrase: str | None = None,
        keyring: KeyringChoice = "auto",
        allow_plaintext: bool = False,
        connect: bool = True,
        backoff: Backoff | None = None,
        ack_delay: float = ACK_DELAY_S,
        receipt_ack_delay: float = RECEIPT_ACK_DELAY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.profile = profile
        self._endpoints = endpoints
        self._home = home
        self._passphrase = passphrase
        self._keyring = keyring
        self._allow_plaintext = allow_plaintext
        self._connect = connect
        self._backoff = backoff
        self._ack_delay = ack_delay
        self._receipt_ack_delay = receipt_ack_delay
        self._clock = clock
        self._subscribers: list[asyncio.Queue[Event | None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._store: Store | None = None
        self._access = ServiceAccess(None)
        self._slices: Slices | None = None
        self.protocol = Protocol()
        self._live = Connection(self.protocol, self._emit)
        self._history_sends: dict[str, asyncio.Future[HistorySent | None]] = {}
        self._calls: Calls | None = None
        self._ice: IceConfig | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        store = open_registered(
            self.profile, self._home, self._passphrase, self._keyring, self._allow_plaintext
        )
        self._store = store
        self._http = aiohttp.ClientSession()
        if self._endpoints is None and self._connect:
            self._endpoints = Endpoints.local()
        try:
            access = service_api(
                store,
                self._endpoints,
                self.profile,
                self._http,
                connect=self._connect,
                clock=self._clock,
            )
        except ParleyClientError:
            await self.close()
            raise
        self._access = access
        self._slices = slices = build_slices(
            store,
            lambda: self.api,
            self._live,
            self._emit,
            self._after_connect,
            devices_changed=self.devices_changed,
            has_service=access.api is not None,
            clock=self._clock,
            ack_delay=self._ack_delay,
            receipt_ack_delay=self._receipt_ack_delay,
        )
        slices.inbound.on_history = self._history_arrived
        signaller = Signaller(slices.engine.sealer, self._queue_entry)
        self._calls = calls = Calls(
            store, slices.engine.account, signaller, self._relays, self._emit, clock=self._clock
        )
        slices.inbound.on_call = calls.received
        slices.inbound.signal_done = calls.signal_done
        self.protocol = self._live.protocol
        self.sweep()
        self._live.tasks.append(asyncio.create_task(self._sweeping(), name="parley-disappearing"))
        if self._connect and access.api is not None and self._endpoints is not None:
            self._live.start(
                self._endpoints.ws_url,
                token=access.api.access_token,
                refresh_token=self._refresh_for_live(access.api),
                on_event=slices.inbound.handle,
                maintain=self.maintain_keys,
                backoff=self._backoff,
            )

    def _refresh_for_live(self, api: ApiClient) -> Callable[[], Awaitable[object]]:
        """The connection's token refresh. A device offline when its number moved to
        another phone learns it here, as it reconnects (an open connection is told by
        `devices_changed`): AccountMoved, then the transport stops."""

        async def refresh() -> object:
            try:
                return await api.refresh()
            except AccountGone as gone:
                if gone.reason == "moved":
                    self._emit(AccountMoved())
                raise

        return refresh

    async def close(self) -> None:
        if self._calls is not None:
            await self._calls.close()
            self._calls = None
        refreshing = self._slices.membership.refreshing if self._slices is not None else {}
        await self._live.close(*refreshing.values())
        refreshing.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._store is not None:
            self._store.close()
            self._store = None
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    # --- who and where -----------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self._open(self._store)

    @property
    def api(self) -> ApiClient:
        self._open(self._store)
        return self._access.require()

    @property
    def endpoints(self) -> Endpoints | None:
        return self._endpoints

    @property
    def engine(self) -> Engine:
        return self._open(self._slices).engine

    @property
    def account(self) -> Account:
        return self.store.accounts.require()

    @property
    def connected(self) -> bool:
        return self.protocol.connected

    @property
    def _groups(self) -> Membership:
        return self._open(self._slices).membership

    @staticmethod
    def _open(part: _T | None) -> _T:
        if part is None:
            raise ParleyClientError("the client is not open")
        return part

    # --- contacts ------------------------------------------------------------------------

    async def add_contact(self, phone: str, name: str) -> Contact:
        """Find `phone` in the directory and save it as `name` (accepted: they get
        ticks and typing, and see last seen if it is shared with contacts)."""
        contact = await add_contact(self.api, self.store, phone, name)
        await self._tell_contacts()
        return contact

    def contacts(self) -> list[Contact]:
        return self.store.contacts.all()

    def message_requests(self) -> list[Contact]:
        """People who wrote and whom this user does not know yet (not accepted, no
        shared group), oldest first. Until accepted they get no delivered or read
        ticks and their typing is not shown (parley.relationships)."""
        return relationships.requests(self.store)

    async def accept(self, contact: str | Contact) -> Contact:
        """Accept `contact`'s message request: from now on they get delivered and read
        ticks, see typing, and see last seen if it is shared with contacts. Replying
        or `add_contact` accepts too."""
        target = self.contact(contact)
        if relationships.accept(self.store, target.user_id):
            await self._tell_contacts()
        return self.contact(target.user_id)

    async def remove_contact(self, contact: str | Contact) -> Contact:
        """Stop counting `contact` as one: their messages are requests again and they
        no longer see last seen. The conversation and keys stay."""
        target = self.contact(contact)
        if relationships.remove(self.store, target.user_id):
            await self._tell_contacts()
        return self.contact(target.user_id)

    async def sync_contacts(self) -> None:
        """Tell the service whom this user accepted or removed, and take over what the
        account's other devices did (also done after every connect)."""
        await relationships.sync(self.api, self.store)

    async def _after_connect(self) -> None:
        """After each (re)connect, in the background: this account's devices, then
        its contacts (what changed here while offline, and on its other devices)."""
        try:
            await self.refresh_own_devices()
        finally:
            await self.sync_contacts()

    async def _tell_contacts(self) -> None:
        if self._access.api is None:
            return  # told after the next connect
        try:
            await self.sync_contacts()
        except ParleyClientError as exc:
            log.warning("could not tell the service about contacts (will retry): %s", exc)

    def contact(self, key: str | Contact) -> Contact:
        """A contact by name, phone or user id (ContactNotFound if none)."""
        return find_contact(self.store, key)

    # --- messages ------------------------------------------------------------------------

    async def send(self, to: str | Contact | Group, text: str) -> Message:
        """Encrypt and queue `text` for every device of a contact, or once for a group
        (by name, phone, user id, group name or group id). Returns at once with the
        stored message (state pending); ticks arrive as events."""
        return await self.send_content(to, text)

    async def send_group(self, group: str | Group, content: str | Content) -> Message:
        """Send to a group (by name or id), even if a contact has the same name."""
        return await self.send_content(self.group(group), content)

    async def send_content(self, to: str | Contact | Group, content: str | Content) -> Message:
        """Send any kind of message (`parley.content.Text`, `Location`, `ContactCard`, or an
        `Attachment` already uploaded) the way `send` sends a text."""
        target = self.conversation(to)
        if isinstance(target, Group):
            target = await self._groups.for_sending(target, self.engine.needs_new_key)
        elif relationships.accept(self.store, target.user_id):
            # writing to someone (a reply to a request, too) is accepting them
            task = asyncio.create_task(self._tell_contacts(), name="parley-contacts")
            self._live.tasks.append(task)
        outgoing = await self.engine.send_to(target, content)
        for event in outgoing.events:
            self._emit(event)
        for entry in outgoing.entries:  # in order: sender keys before the group message
            self.protocol.send(entry)
        self._live.flush()
        return outgoing.message

    async def send_location(
        self, contact: str | Contact | Group, lat: float, lon: float, name: str | None = None
    ) -> Message:
        """Share a point on the map (latitude, longitude in degrees), optionally named."""
        return await self.send_content(contact, Location(lat, lon, name))

    async def send_contact(
        self, contact: str | Contact | Group, name: str, phones: str | Sequence[str]
    ) -> Message:
        """Share a contact card: a name and one or more phone numbers."""
        numbers = (phones,) if isinstance(phones, str) else tuple(phones)
        return await self.send_content(contact, ContactCard(name, numbers))

    async def send_file(
        self,
        contact: str | Contact | Group,
        path: str | os.PathLike[str],
        caption: str | None = None,
        progress: ProgressCallback | None = None,
        *,
        mime: str | None = None,
        name: str | None = None,
    ) -> Message:
        """Encrypt `path` with a fresh key, upload it, and send what opens it.

        The kind (image, video, audio, document) follows the MIME type, guessed
        from the file name unless given; images carry a small preview. The
        upload happens now (`progress(done, total)` follows it) and needs the
        service; the message itself is then queued like any other. Raises
        `parley.content.ContentError` (a ValueError) for a bad file or caption,
        `parley.TransferError` when the upload fails, and the API's
        errors (e.g. a file over the service's size limit).
        """
        target = self.conversation(contact)
        attachment = await upload_file(
            self._session(), self.api, path, caption, progress, mime=mime, name=name
        )
        return await self.send_content(target, attachment)

    @property
    def media_dir(self) -> Path:
        """Where `download` saves attachments: <profile dir>/media/."""
        return self.store.path.parent / MEDIA_DIR

    async def _upload_again(self, attachment: Attachment, path: Path) -> Attachment:
        """A fresh upload of a file this device has, described as `attachment` was."""
        again = await upload_file(
            self._session(),
            self.api,
            path,
            attachment.caption,
            None,
            mime=attachment.mime,
            name=attachment.name,
        )
        return again

    def _signed_admin(self, group_id: str, user_id: str) -> bool:
        return signed_admin(self.store, group_id, user_id)

    async def _delete_media(self, media_id: str) -> None:
        """Best effort: an object already gone, or a service out of reach, is logged."""
        try:
            await self.api.delete_media(media_id)
        except ParleyClientError as exc:
            log.info("media %s not deleted: %s", media_id, exc)

    def message(self, message_id: int) -> Message:
        """A stored message by its id (`Message.id`, as the CLI shows it)."""
        found = self.store.messages.by_id(message_id)
        if found is None:
            raise ParleyClientError(f"no message {message_id} in this profile")
        return found

    async def download(
        self, message: Message | int, progress: ProgressCallback | None = None
    ) -> Path:
        """Fetch, verify and decrypt a message's attachment into `media_dir`; its path.

        A file already downloaded (and still there) is not fetched again. A
        failed download leaves nothing in `media_dir`. Raises ParleyClientError
        if the message carries no file, `parley.IntegrityError` if what
        arrived is not what the sender sent, `parley.TransferError`
        when the transfer fails.
        """
        found = self.message(message if isinstance(message, int) else message.id)
        return await fetch_file(
            self._session(), self.api, self.store.messages, found, self.media_dir, progress
        )

    def history(self, contact: str | Contact | Group, limit: int = 50) -> list[Message]:
        """The last `limit` messages with a contact or in a group, oldest first."""
        target = self.conversation(contact)
        key = target.conversation if isinstance(target, Group) else target.user_id
        return self.store.messages.history(key, limit)

    async def mark_read(self, contact: str | Contact | Group) -> list[Message]:
        """Mark the conversation read and tell the sender (blue ticks on their side);
        in a group, each sender of what was read."""
        target = self.conversation(contact)
        if isinstance(target, Group):
            by_sender = self.engine.mark_group_read(target)
        else:
            by_sender = {target.user_id: self.engine.mark_read(target)}
        read = [m for messages in by_sender.values() for m in messages]
        with self.store.transaction():
            actions.start_read(self.store, read, now=self._clock())
        for sender, messages in by_sender.items():
            # a message request is read without telling its sender (relationships)
            if messages and relationships.knows(self.store, sender):
                self.protocol.send_receipt(
                    sender, [m.client_id for m in messages], "read", [m.ts for m in messages]
                )
        self._live.flush()
        return [m for messages in by_sender.values() for m in messages]

    def sweep(self) -> list[Event]:
        """Erase the messages whose disappearing timer ran out (and their files) now;
        what went, also as `MessageDisappeared` events. The client does this by
        itself while open."""
        with self.store.transaction():
            gone = actions.sweep(self.store, now=self._clock())
        for event in gone:
            self._emit(event)
        return gone

    async def _sweeping(self) -> None:
        while True:
            due = self.store.messages.next_expiry()
            wait = _SWEEP_IDLE_S if due is None else due / 1000 - self._clock()
            await asyncio.sleep(min(max(wait, 0.05), _SWEEP_IDLE_S))
            self.sweep()

    async def typing(self, contact: str | Contact | Group, typing: bool = True) -> None:
        """Show (or stop showing) `contact`, or every other member of a group, that this
        user is typing. Not stored anywhere; dropped while offline. In a group of more
        than GROUP_TYPING_MEMBERS members it does nothing (the service relays none)."""
        target = self.conversation(contact)
        if isinstance(target, Contact):
            if not relationships.knows(self.store, target.user_id):
                return  # nobody who is a stranger to this user sees them typing
            self.protocol.send_typing(target.user_id, typing)
        elif target.active and len(target.members) <= GROUP_TYPING_MEMBERS:
            self.protocol.send_typing(target.conversation, typing)
        else:
            return
        self._live.flush()

    def events(self) -> EventStream:
        """Every event from now on (one stream per call; each gets every event)."""
        return EventStream(self)

    async def wait_synced(self) -> None:
        """Until the current connection has received everything that was waiting
        (wrap in `asyncio.timeout()` to bound it)."""
        await self._live.synced.wait()

    async def wait_groups_read(self) -> None:
        """Until the groups being read from the service in the background (ones new to
        this profile, or that moved on) are read (wrap in `asyncio.timeout()`)."""
        await self._groups.wait_read()

    async def wait_outbox_empty(self) -> None:
        """Until the server has answered every queued message (accepted or refused)."""
        await self._live.wait_outbox_empty()

    # --- groups ----------------------------------------------------------------------------

    def conversation(self, key: str | Contact | Group) -> Contact | Group:
        """A contact (by name, phone or user id) or else a group (by name or id)."""
        return find_conversation(self.store, self._groups, key)

    def group_ticks(self, message: Message | int) -> list[MemberReceipt]:
        """Per-member detail of a group message we sent: which of each member's devices
        have it, whether and when they read it. (`message.state` is the whole group's.)"""
        found = self.message(message if isinstance(message, int) else message.id)
        return self.engine.ticks.ticks(found)

    # --- identity and keys -------------------------------------------------------------

    async def safety_numbers(self, contact: str | Contact) -> dict[str, str]:
        """Device id -> 60-digit safety number. Compare them in person or on a call."""
        target = self.contact(contact)
        if not self.store.contacts.identities(target.user_id):
            for event in await self.engine.ensure_sessions(target):
                self._emit(event)
        return self.engine.safety_numbers(target)

    async def safety_number(self, contact: str | Contact) -> str:
        """The safety number with `contact` (their most recent key if they have several)."""
        numbers = await self.safety_numbers(contact)
        if not numbers:
            raise ContactNotFound("no identity key known for this contact")
        return numbers[sorted(numbers)[-1]]

    def mark_verified(self, contact: str | Contact) -> None:
        """The user compared safety numbers and they match: clears the change warning."""
        self.store.contacts.set_verified(self.contact(contact).user_id, True)

    async def maintain_keys(self) -> keys.Maintenance:
        """Replenish one-time prekeys and rotate the signed prekey if due (also automatic)."""
        return await keys.maintain(self.api, self.store, self._clock())

    async def last_seen(self, contact: str | Contact) -> dict[str, Any]:
        return await self.api.presence(self.contact(contact).user_id)

    async def set_last_seen_visibility(
        self, who: Literal["nobody", "contacts", "everybody"]
    ) -> None:
        await self.api.set_presence(who)

    async def register_push(self, platform: Literal["fcm", "apns"], token: str) -> PushRegistration:
        """Register this device's push token. The service pushes a challenge through
        it; pass it to `verify_push` when it arrives (`parley.push.challenge_of`
        reads it from the push's data). Until then this device's previous token, if
        any, keeps getting its wake-ups."""
        return await self.api.register_push(platform, token)

    async def verify_push(self, challenge: str) -> None:
        """Send back the challenge pushed through the token just registered: from now
        on wake-ups go to it."""
        await self.api.verify_push(challenge)

    def _emit(self, event: Event) -> None:
        for queue in self._subscribers:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("an event consumer is too slow; dropped %s", type(event).__name__)

    # --- internals -----------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        return self._open(self._http)

    # --- history for a new companion (parley.devices.history) ------------------------------

    async def history_sent(self, device_id: str) -> HistorySent | None:
        """On the primary, after `link_device`: wait until the history for the new
        device is on its way (queued in the outbox; `wait_outbox_empty()` then waits
        for the service to have it). None if none is being sent, or it failed (logged).
        The client must stay open meanwhile: the new device first finishes linking."""
        sending = self._history_sends.get(device_id)
        return None if sending is None else await sending

    def _send_history_soon(self, device_id: str) -> None:
        """The history goes to a device just approved, once it finished linking."""
        sending: asyncio.Future[HistorySent | None] = asyncio.get_running_loop().create_future()
        self._history_sends[device_id] = sending
        task = asyncio.create_task(
            self._send_history(device_id, sending), name="parley-history-send"
        )
        self._live.tasks.append(task)

    async def _send_history(
        self, device_id: str, sending: asyncio.Future[HistorySent | None]
    ) -> None:
        sent: HistorySent | None = None
        try:
            sent = await send_history(
                device_id,
                store=self.store,
                sealer=self.engine.sealer,
                api=self.api,
                http=self._session(),
                queue=self._queue_entry,
                clock=self._clock,
            )
        except (ParleyClientError, ValueError) as exc:  # ContentError, a failed upload
            log.warning("could not send the history to device %s: %s", device_id, exc)
        finally:
            if not sending.done():  # also when the client closes first
                sending.set_result(sent)

    @property
    def _phone(self) -> Calls:
        return self._open(self._calls)

    async def _relays(self) -> IceConfig:
        """The ICE servers for a call: fetched from the service, kept while fresh."""
        if self._ice is None or not self._ice.fresh(self._clock()):
            self._ice = parse_relays(await self.api.call_relays(), self._clock())
        return self._ice

    def _queue_entry(self, entry: OutboxEntry) -> None:
        self.protocol.send(entry)
        self._live.flush()

    def _history_arrived(self, history: HistoryPayload) -> None:
        """Our primary handed this new companion its history: fetch and import it in
        the background, then `HistoryImported`."""
        task = asyncio.create_task(self._import_history(history), name="parley-history")
        self._live.tasks.append(task)

    async def _import_history(self, history: HistoryPayload) -> None:
        try:
            imported = await receive_history(
                history,
                store=self.store,
                account=self.account,
                api=self.api,
                http=self._session(),
                clock=self._clock,
            )
        except ParleyClientError as exc:
            log.warning("could not import the history from our primary: %s", exc)
            return
        self._emit(imported)
