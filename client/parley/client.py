"""The SDK surface: `Client`, signup helpers and the event stream.

    async with Client("alice") as c:
        await c.send("Bob", "hi")
        async for event in c.events():
            ...

A `Client` opens its profile's store, keeps one WebSocket connection up
(reconnecting, syncing and resending on its own) and turns what arrives into
typed events (`parley.models`). Everything it is told to send is stored in the
outbox first, so a message survives a crash or a lost connection.

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
import shutil
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp

from parley import keys, media
from parley.api import MAX_IDS_PER_GROUP_CHANGE, ApiClient, DeviceBundle
from parley.attachments import ProgressCallback, download_attachment, upload_attachment
from parley.crypto import IdentityKeyPair
from parley.endpoints import Endpoints
from parley.engine import Engine, GroupResend
from parley.errors import (
    ConfigurationError,
    ContactNotFound,
    NotFound,
    NotRegistered,
    ParleyClientError,
)
from parley.group_receipts import MemberReceipt
from parley.groups import NotAGroupMember
from parley.models import (
    GROUP_PREFIX,
    Account,
    Connected,
    Contact,
    Disconnected,
    Event,
    Group,
    GroupUpdated,
    LinkedDevice,
    Message,
    Synced,
    Typing,
)
from parley.profiles import profile_dir
from parley.protocol import (
    DevicesMismatched,
    GroupStale,
    IncomingMessage,
    IncomingReceipt,
    Protocol,
    ProtocolEvent,
    SendAccepted,
    SendRejected,
    ServerError,
    SyncComplete,
    TypingChanged,
    is_user_id,
)
from parley.service import account_gone, check_service, remember_service
from parley.storage import DB_FILE, Store
from parley.transport import Backoff, Transport
from parley.vault import KEYRING_SERVICE, KeyringLike, system_keyring

__all__ = ["MEDIA_DIR", "Client", "EventStream", "request_code", "sign_up"]

log = logging.getLogger("parley.client")

# Prekey upkeep runs at start and again after first messages used up prekeys,
# at most this often.
MAINTENANCE_INTERVAL_S = 60.0
_EVENT_QUEUE = 1000
# Downloaded attachments, inside the profile directory.
MEDIA_DIR = "media"
# Tries at reading a group again when the server said a group send was stale.
REGROUP_TRIES = 3
# Refusals of a group send that mean this account may no longer be in the group.
_NOT_IN_GROUP = frozenset({"forbidden", "not_found"})
# The service relays typing in groups of up to this many members (docs/PROTOCOL.md).
GROUP_TYPING_MEMBERS = 32

KeyringChoice = KeyringLike | Literal["auto"] | None


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


def _open_store(
    profile: str,
    home: Path | None,
    passphrase: str | None,
    keyring: KeyringChoice,
    allow_plaintext: bool,
    *,
    create: bool,
) -> Store:
    return Store.open(
        profile_dir(profile, home),
        passphrase=passphrase,
        keyring=keyring,
        allow_plaintext=allow_plaintext,
        create=create,
    )


async def request_code(phone: str, *, endpoints: Endpoints | None = None) -> dict[str, Any]:
    """Ask the service to text a sign-up code to `phone` (E.164, e.g. +15551234567)."""
    endpoints = endpoints or Endpoints.local()
    async with aiohttp.ClientSession() as http:
        return await ApiClient(endpoints.http_url, http).request_code(phone)


async def sign_up(
    profile: str,
    phone: str,
    code: str,
    *,
    endpoints: Endpoints | None = None,
    home: Path | None = None,
    passphrase: str | None = None,
    keyring: KeyringChoice = "auto",
    allow_plaintext: bool = False,
    clock: Callable[[], float] = time.time,
) -> Account:
    """Verify `code`, create this device's identity and publish its prekeys.

    The profile must be new (one profile = one account on one device).
    """
    endpoints = endpoints or Endpoints.local()
    directory = profile_dir(profile, home)
    is_new = not (directory / DB_FILE).exists()
    registered = False
    store = _open_store(profile, home, passphrase, keyring, allow_plaintext, create=True)
    try:
        if store.account() is not None:
            raise ParleyClientError(f"profile {profile!r} already has an account")
        async with aiohttp.ClientSession() as http:
            api = ApiClient(endpoints.http_url, http, clock=clock)
            result = await api.verify(phone, code)
            account = Account(result.user_id, result.device_id, phone)
            with store.transaction():
                store.save_account(account, IdentityKeyPair.generate())
                store.save_tokens(result.tokens)
            registered = True
            remember_service(directory, endpoints)  # the service this account lives on
            api.use_tokens(store)
            # if this fails the account stands; the client publishes keys when it connects
            await keys.publish_initial_keys(api, store, clock())
        return account
    finally:
        store.close()
        if is_new and not registered:
            shutil.rmtree(directory, ignore_errors=True)  # a failed signup leaves nothing


class Client:
    """One profile, connected. Use as `async with Client(profile) as c:`.

    `connect=False` opens the profile without a WebSocket (history, contacts,
    safety numbers, HTTP calls only).
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
        self._clock = clock
        self._subscribers: list[asyncio.Queue[Event | None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._store: Store | None = None
        self._api: ApiClient | None = None
        self._engine: Engine | None = None
        self._transport: Transport | None = None
        self._relisting: asyncio.Task[None] | None = None
        self._wrong_service: ParleyClientError | None = None  # see parley.service
        self.protocol = Protocol()
        self._synced = asyncio.Event()
        self._outbox_changed = asyncio.Event()
        self._maintenance_due = asyncio.Event()

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
        store = _open_store(
            self.profile,
            self._home,
            self._passphrase,
            self._keyring,
            self._allow_plaintext,
            create=False,
        )
        try:
            store.require_account()
        except NotRegistered:
            store.close()
            raise
        self._store = store
        self._http = aiohttp.ClientSession()
        endpoints = self._endpoints
        if endpoints is None and self._connect:
            endpoints = Endpoints.local()
        self._endpoints = endpoints
        if endpoints is not None:
            directory = store.path.parent
            try:
                check_service(directory, endpoints, self.profile)
            except ParleyClientError as wrong_service:
                if self._connect:
                    await self.close()
                    raise
                # offline, the history stays readable; the first call to the service says why not
                self._wrong_service = wrong_service
                endpoints = None
            if endpoints is not None:
                explain = partial(account_gone, profile=self.profile, directory=directory)
                self._api = ApiClient(
                    endpoints.http_url, self._http, store, clock=self._clock, explain=explain
                )
        self._engine = Engine(store, self._fetch_bundles, clock=self._clock)
        self.protocol = Protocol(is_seen=store.is_seen)
        for item in store.outbox():
            self.protocol.send(item.entry)
        if not self._connect or endpoints is None:
            return
        assert self._api is not None
        self._transport = Transport(
            endpoints.ws_url,
            self.protocol,
            token=self._api.access_token,
            refresh_token=self._api.refresh,
            on_event=self._on_protocol_event,
            on_connection=self._on_connection,
            backoff=self._backoff,
        )
        self._tasks.append(asyncio.create_task(self._transport.run(), name="parley-transport"))
        self._tasks.append(asyncio.create_task(self._maintenance(), name="parley-keys"))

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.stop()
        background = [*self._tasks, *self._refreshing.values()]
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._refreshing.clear()
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
        if self._store is None:
            raise ParleyClientError("the client is not open")
        return self._store

    @property
    def api(self) -> ApiClient:
        if self._store is None:
            raise ParleyClientError("the client is not open")
        if self._api is None:
            if self._wrong_service is not None:
                raise self._wrong_service
            raise ConfigurationError("no service endpoints: start the local stack or use --aws")
        return self._api

    @property
    def endpoints(self) -> Endpoints | None:
        return self._endpoints

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise ParleyClientError("the client is not open")
        return self._engine

    @property
    def account(self) -> Account:
        return self.store.require_account()

    @property
    def connected(self) -> bool:
        return self.protocol.connected

    # --- contacts ------------------------------------------------------------------------

    async def add_contact(self, phone: str, name: str) -> Contact:
        """Find `phone` in the directory and save it as `name`."""
        if not name.strip():
            raise ValueError("a contact needs a name")
        user_id = await self.api.lookup(phone)
        if user_id == self.account.user_id:
            raise ParleyClientError("that is this account's own number")
        other = self.store.find_contact(name)
        if other is not None and other.user_id != user_id and other.name == name:
            raise ParleyClientError(f"another contact is already called {name!r}")
        return self.store.add_contact(user_id, name.strip(), phone)

    def contacts(self) -> list[Contact]:
        return self.store.contacts()

    def contact(self, key: str | Contact) -> Contact:
        """A contact by name, phone or user id (ContactNotFound if none)."""
        if isinstance(key, Contact):
            found = self.store.contact(key.user_id)
        else:
            found = self.store.find_contact(key)
        if found is None:
            raise ContactNotFound(f"no contact {key!r}: add one with add_contact(phone, name)")
        return found

    # --- messages ------------------------------------------------------------------------

    async def send(self, to: str | Contact | Group, text: str) -> Message:
        """Encrypt and queue `text` for every device of a contact, or once for a group
        (by name, phone, user id, group name or group id). Returns at once with the
        stored message (state pending); ticks arrive as events."""
        return await self.send_content(to, text)

    async def send_group(self, group: str | Group, content: str | media.Content) -> Message:
        """Send to a group (by name or id), even if a contact has the same name."""
        return await self.send_content(self.group(group), content)

    async def send_content(
        self, to: str | Contact | Group, content: str | media.Content
    ) -> Message:
        """Send any kind of message (`parley.media.Text`, `Location`, `Contact`, or an
        `Attachment` already uploaded) the way `send` sends a text."""
        target = self.conversation(to)
        if isinstance(target, Group):
            return await self._send_to_group(target, content)
        message, entry, events = await self.engine.prepare(target, content)
        for event in events:
            self._emit(event)
        self.protocol.send(entry)
        # the copy for our other devices leaves with it, so it is there before the
        # recipient's receipts (which reach every device of ours) can be
        await self._copy_to_own_devices(message)
        self._flush()
        return message

    async def _send_to_group(self, group: Group, content: str | media.Content) -> Message:
        if group.version == 0:
            group = await self.refresh_group(group)  # known only by its id so far
        elif self._api is not None and self.engine.needs_new_key(group):
            # a key is about to go out: to the members as they are now, if we can tell
            try:
                group = await self.refresh_group(group)
            except ParleyClientError as exc:
                log.info("sending to %s as last seen: %s", group.group_id, exc)
        message, entries, events = await self.engine.prepare_group(group, content)
        for event in events:
            self._emit(event)
        for entry in entries:  # the sender keys first; the message waits for them
            self.protocol.send(entry)
        self._flush()
        return message

    async def send_location(
        self, contact: str | Contact | Group, lat: float, lon: float, name: str | None = None
    ) -> Message:
        """Share a point on the map (latitude, longitude in degrees), optionally named."""
        return await self.send_content(contact, media.Location(lat, lon, name))

    async def send_contact(
        self, contact: str | Contact | Group, name: str, phones: str | Sequence[str]
    ) -> Message:
        """Share a contact card: a name and one or more phone numbers."""
        numbers = (phones,) if isinstance(phones, str) else tuple(phones)
        return await self.send_content(contact, media.Contact(name, numbers))

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
        `parley.media.ContentError` (a ValueError) for a bad file or caption,
        `parley.attachments.TransferError` when the upload fails, and the API's
        errors (e.g. a file over the service's size limit).
        """
        target = self.conversation(contact)
        if caption is not None and not caption.strip():
            caption = None
        if caption is not None and len(caption) > media.MAX_CAPTION_CHARS:
            # checked before the upload, not after it
            raise media.ContentError(
                f"a caption holds at most {media.MAX_CAPTION_CHARS} characters"
            )
        attachment = await upload_attachment(
            self._session(),
            self.api,
            path,
            mime=mime,
            name=name,
            caption=caption,
            progress=progress,
        )
        return await self.send_content(target, attachment)

    @property
    def media_dir(self) -> Path:
        """Where `download` saves attachments: <profile dir>/media/."""
        return self.store.path.parent / MEDIA_DIR

    def message(self, message_id: int) -> Message:
        """A stored message by its id (`Message.id`, as the CLI shows it)."""
        found = self.store.message_by_id(message_id)
        if found is None:
            raise ParleyClientError(f"no message {message_id} in this profile")
        return found

    async def download(
        self, message: Message | int, progress: ProgressCallback | None = None
    ) -> Path:
        """Fetch, verify and decrypt a message's attachment into `media_dir`; its path.

        A file already downloaded (and still there) is not fetched again. A
        failed download leaves nothing in `media_dir`. Raises ParleyClientError
        if the message carries no file, `parley.media.IntegrityError` if what
        arrived is not what the sender sent, `parley.attachments.TransferError`
        when the transfer fails.
        """
        found = self.message(message if isinstance(message, int) else message.id)
        attachment = found.attachment
        if attachment is None:
            raise ParleyClientError(f"message {found.id} carries no file ({found.kind})")
        if found.file is not None and _is_file_of_size(found.file, attachment.size):
            return found.file
        folder = self.media_dir
        await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
        path = await download_attachment(
            self._session(), self.api, attachment, folder, progress=progress
        )
        self.store.set_message_file(found.id, path)
        return path

    def history(self, contact: str | Contact | Group, limit: int = 50) -> list[Message]:
        """The last `limit` messages with a contact or in a group, oldest first."""
        return self.store.history(_conversation_key(self.conversation(contact)), limit)

    async def mark_read(self, contact: str | Contact | Group) -> list[Message]:
        """Mark the conversation read and tell the sender (blue ticks on their side);
        in a group, each sender of what was read."""
        target = self.conversation(contact)
        if isinstance(target, Group):
            by_sender = self.engine.mark_group_read(target)
            for sender, messages in by_sender.items():
                self.protocol.send_receipt(sender, [m.client_id for m in messages], "read")
            self._flush()
            return [m for messages in by_sender.values() for m in messages]
        read = self.engine.mark_read(target)
        if read:
            self.protocol.send_receipt(target.user_id, [m.client_id for m in read], "read")
            self._flush()
        return read

    async def typing(self, contact: str | Contact | Group, typing: bool = True) -> None:
        """Show (or stop showing) `contact`, or every other member of a group, that this
        user is typing. Not stored anywhere; dropped while offline. In a group of more
        than GROUP_TYPING_MEMBERS members it does nothing (the service relays none)."""
        target = self.conversation(contact)
        if isinstance(target, Contact):
            self.protocol.send_typing(target.user_id, typing)
        elif target.active and len(target.members) <= GROUP_TYPING_MEMBERS:
            self.protocol.send_typing(target.conversation, typing)
        else:
            return
        self._flush()

    def events(self) -> EventStream:
        """Every event from now on (one stream per call; each gets every event)."""
        return EventStream(self)

    async def wait_synced(self) -> None:
        """Until the current connection has received everything that was waiting
        (wrap in `asyncio.timeout()` to bound it)."""
        await self._synced.wait()

    async def wait_groups_read(self) -> None:
        """Until the groups being read from the service in the background (ones new to
        this profile, or that moved on) are read (wrap in `asyncio.timeout()`)."""
        while self._refreshing:
            await asyncio.gather(*self._refreshing.values(), return_exceptions=True)

    async def wait_outbox_empty(self) -> None:
        """Until the server has answered every queued message (accepted or refused)."""
        while self.protocol.pending():
            self._outbox_changed.clear()
            await self._outbox_changed.wait()

    # --- groups ----------------------------------------------------------------------------

    def conversation(self, key: str | Contact | Group) -> Contact | Group:
        """A contact (by name, phone or user id) or else a group (by name or id)."""
        if isinstance(key, Group):
            return self.group(key)
        if isinstance(key, Contact):
            return self.contact(key)
        found = self.store.find_contact(key)
        if found is not None:
            return found
        try:
            return self.group(key)
        except ContactNotFound:
            raise ContactNotFound(
                f"no contact {key!r} and no group of that name:"
                " add one with add_contact(phone, name)"
            ) from None

    def groups(self) -> list[Group]:
        """The groups this account is in, as last seen (see `refresh_groups`)."""
        return self.store.groups()

    def group(self, key: str | Group) -> Group:
        """A group by name (case-insensitive) or id, as last seen (ContactNotFound if
        none; ParleyClientError if several active groups have that name)."""
        if isinstance(key, Group):
            key = key.group_id
        if key.startswith(GROUP_PREFIX):
            key = key[len(GROUP_PREFIX) :]
        found = self.store.find_groups(key)
        if not found:
            raise ContactNotFound(f"no group {key!r}")
        exact = [g for g in found if g.group_id == key]
        if exact:
            return exact[0]
        active = [g for g in found if g.active]
        if len(active) > 1:
            ids = ", ".join(g.group_id for g in active)
            raise ParleyClientError(f"several groups are called {key!r}: use its id ({ids})")
        return found[0]

    async def create_group(self, name: str, members: Sequence[str | Contact] = ()) -> Group:
        """A new group with these contacts; this account is its first admin."""
        ids = [self._member_id(m) for m in members]
        if len(ids) > MAX_IDS_PER_GROUP_CHANGE:
            group = await self.api.create_group(name, ids[:MAX_IDS_PER_GROUP_CHANGE])
            self._keep_group(group)
            return await self.add_members(group, ids[MAX_IDS_PER_GROUP_CHANGE:])
        return self._keep_group(await self.api.create_group(name, ids))

    async def refresh_group(self, group: str | Group) -> Group:
        """Read the group from the service. If this account is no longer in it, it is
        kept as inactive (history stays) and its sender keys are deleted."""
        group_id = self._group_id(group)
        try:
            fresh = await self.api.group(group_id)
        except NotFound:
            return self._left_group(group_id)
        if not fresh.is_member(self.account.user_id):
            return self._left_group(group_id)
        return self._keep_group(fresh)

    async def refresh_groups(self) -> list[Group]:
        """Bring every group up to date with the service; the groups this account is in."""
        listed = await self.api.groups()
        for summary in listed:
            known = self.store.group(summary.group_id)
            if known is None or known.version != summary.version or not known.active:
                await self.refresh_group(summary.group_id)
        seen = {s.group_id for s in listed}
        for group in self.store.groups():
            if group.group_id not in seen:
                # the list can lag behind a change; the group itself is always current
                await self.refresh_group(group)
        return self.groups()

    async def add_members(self, group: str | Group, members: Sequence[str | Contact]) -> Group:
        """Add contacts to the group (admins only; `parley.ApiError` "not_admin" else)."""
        group_id = self._group_id(group)
        ids = [self._member_id(m) for m in members]
        if not ids:
            raise ValueError("name at least one member to add")
        current: Group | None = None
        for start in range(0, len(ids), MAX_IDS_PER_GROUP_CHANGE):
            chunk = ids[start : start + MAX_IDS_PER_GROUP_CHANGE]
            current = self._keep_group(await self.api.add_group_members(group_id, chunk))
        assert current is not None
        return current

    async def remove_members(self, group: str | Group, members: Sequence[str | Contact]) -> Group:
        """Remove members from the group (admins only). Our next message to it goes
        with a fresh sender key that they never get."""
        group_id = self._group_id(group)
        me = self.account.user_id
        ids = [self._member_id(m) for m in members]
        if me in ids:
            raise ValueError("to leave a group use leave()")
        if not ids:
            raise ValueError("name at least one member to remove")
        current = self.group(group_id)
        for user_id in ids:
            answer = await self.api.remove_group_member(group_id, user_id)
            if answer is not None:
                current = self._keep_group(answer)
        return current

    async def leave(self, group: str | Group) -> Group:
        """Leave the group: it stays in the history, inactive, without its keys."""
        group_id = self._group_id(group)
        with contextlib.suppress(NotFound):  # already out of it
            await self.api.remove_group_member(group_id, self.account.user_id)
        return self._left_group(group_id)

    async def promote(self, group: str | Group, member: str | Contact) -> Group:
        """Make a member an admin (admins only)."""
        group_id = self._group_id(group)
        return self._keep_group(await self.api.promote_admin(group_id, self._member_id(member)))

    async def dismiss_admin(self, group: str | Group, member: str | Contact) -> Group:
        """An admin becomes a plain member again (admins only; never the last admin)."""
        group_id = self._group_id(group)
        return self._keep_group(await self.api.dismiss_admin(group_id, self._member_id(member)))

    def group_ticks(self, message: Message | int) -> list[MemberReceipt]:
        """Per-member detail of a group message we sent: which of each member's devices
        have it, whether and when they read it. (`message.state` is the whole group's.)"""
        found = self.message(message if isinstance(message, int) else message.id)
        return self.engine.groups.ticks(found)

    def member_name(self, user_id: str) -> str:
        """How to show a group member: "you", the contact's name, or a short id."""
        if user_id == self.account.user_id:
            return "you"
        contact = self.store.contact(user_id)
        return contact.display_name if contact else f"user {user_id[:8]}"

    def _group_id(self, group: str | Group) -> str:
        if isinstance(group, Group):
            return group.group_id
        return self.group(group).group_id

    def _member_id(self, member: str | Contact) -> str:
        if isinstance(member, Contact):
            return member.user_id
        found = self.store.find_contact(member)
        if found is not None:
            return found.user_id
        if is_user_id(member):
            return member
        raise ContactNotFound(f"no contact {member!r}: add one with add_contact(phone, name)")

    def _keep_group(self, group: Group) -> Group:
        previous = self.store.save_group(group, self._clock())
        if previous != group:
            update = GroupUpdated(group, previous if previous and previous.version else None)
            self._emit(update)
            if update.removed:
                with self.store.transaction():
                    for event in self.engine.groups.members_gone(group, update.removed):
                        self._emit(event)
        return group

    def _left_group(self, group_id: str) -> Group:
        previous = self.store.group(group_id)
        self.store.leave_group(group_id)
        now = self.store.group(group_id)
        if now is None:  # never seen: nothing to keep
            raise NotAGroupMember(f"you are not a member of group {group_id}")
        if previous != now and now.version:
            self._emit(GroupUpdated(now, previous))
        return now

    def _refresh_soon(self, group_ids: set[str] | list[str]) -> None:
        """Read these groups from the service in the background (once at a time each)."""
        if self._api is None:
            return
        for group_id in group_ids:
            if group_id in self._refreshing:
                continue
            task = asyncio.create_task(self._refresh_quietly(group_id))
            self._refreshing[group_id] = task

    async def _refresh_quietly(self, group_id: str) -> None:
        try:
            await self.refresh_group(group_id)
        except ParleyClientError as exc:
            log.warning("could not read group %s from the service: %s", group_id, exc)
        finally:
            self._refreshing.pop(group_id, None)

    # --- identity and keys -------------------------------------------------------------

    async def safety_numbers(self, contact: str | Contact) -> dict[str, str]:
        """Device id -> 60-digit safety number. Compare them in person or on a call."""
        target = self.contact(contact)
        if not self.store.device_identities(target.user_id):
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
        self.store.set_verified(self.contact(contact).user_id, True)

    async def maintain_keys(self) -> keys.Maintenance:
        """Replenish one-time prekeys and rotate the signed prekey if due (also automatic)."""
        return await keys.maintain(self.api, self.store, self._clock())

    # --- this account's devices -------------------------------------------------------

    async def devices(self) -> list[LinkedDevice]:
        """This account's signed-in devices, oldest first (`current` marks this one)."""
        return await self.api.devices()

    async def refresh_own_devices(self) -> list[LinkedDevice]:
        """Learn this account's other devices from the service: what this device sends
        is copied to those that are ready (and its group sender keys go to them), so
        every device of the account shows the whole conversation. The client does this
        on connecting; call it after signing in on another device to start at once."""
        found = await self.api.devices()
        before = self.engine.own_devices
        self.engine.set_own_devices(d.device_id for d in found if d.ready and not d.current)
        if self.engine.own_devices - before:
            # a device new to us: our group sender keys go to it with the next message
            self.store.forget_distribution(self.account.user_id)
        return found

    async def sign_out_device(self, device_id: str) -> None:
        """Sign one of this account's devices out for good (a lost phone, an old
        laptop): its tokens stop working, its open connection is closed and people's
        apps stop encrypting for it. Signing out this device also forgets its tokens
        here; the profile keeps its history but can no longer send or receive."""
        await self.api.remove_device(device_id)
        me = self.account.user_id
        self.engine.own_devices -= {device_id}
        self.store.forget_device(me, device_id)
        if device_id == self.account.device_id:
            self.store.forget_tokens()
            if self._transport is not None:  # the service closed it; do not dial again
                await self._transport.stop()

    async def request_account_deletion_code(self) -> dict[str, Any]:
        """Ask the service to text this account's number a code that deletes the
        account (and does nothing else); then `delete_account(code)`."""
        return await self.api.request_code(self.account.phone, "delete_account")

    async def delete_account(self, code: str) -> None:
        """Delete this account for good, with the code `request_account_deletion_code`
        had texted, then wipe this profile from this machine.

        The service removes the account and everything it holds for it (devices,
        keys, contacts, media, waiting messages; its groups go on without it), and
        the number may sign up afresh as a new account. Here, the profile's
        directory goes (store, history, keys, downloaded media) with its key in the
        OS keyring, and the client is closed. A wrong code raises
        AuthenticationError (code `invalid_code`) and changes nothing; a deletion
        cut short raises ServiceUnavailable: call again with the same code to finish.
        """
        await self.api.delete_account(code)
        keyring_name = self.store.keyring_name()
        directory = profile_dir(self.profile, self._home)
        await self.close()
        shutil.rmtree(directory, ignore_errors=True)
        ring = system_keyring() if self._keyring == "auto" else self._keyring
        forget = getattr(ring, "delete_password", None)
        if keyring_name is not None and callable(forget):
            with contextlib.suppress(Exception):  # the store it opened is gone anyway
                forget(KEYRING_SERVICE, keyring_name)

    async def last_seen(self, contact: str | Contact) -> dict[str, Any]:
        return await self.api.presence(self.contact(contact).user_id)

    async def set_last_seen_visibility(
        self, who: Literal["nobody", "contacts", "everybody"]
    ) -> None:
        await self.api.set_presence(who)

    # --- internals -----------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise ParleyClientError("the client is not open")
        return self._http

    async def _fetch_bundles(self, user_id: str) -> list[DeviceBundle]:
        return await self.api.bundles(user_id)

    def _flush(self) -> None:
        if self._transport is not None:
            self._transport.flush()

    def _emit(self, event: Event) -> None:
        for queue in self._subscribers:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("an event consumer is too slow; dropped %s", type(event).__name__)

    async def _on_connection(self, connected: bool, reason: str) -> None:
        if connected:
            self._emit(Connected())
        else:
            self._synced.clear()
            self._emit(Disconnected(reason))

    async def _on_protocol_event(self, event: ProtocolEvent) -> None:
        engine = self.engine
        if isinstance(event, IncomingMessage):
            result = engine.receive(event)
            if result.stored:
                self.protocol.message_stored(event)
            else:
                self.protocol.message_dropped(event)
            if result.consumed_prekey:
                self._maintenance_due.set()
            for out in result.events:
                self._emit(out)
            if result.refresh_groups:
                self._refresh_soon(result.refresh_groups)
        elif isinstance(event, IncomingReceipt):
            events = engine.receipt(event)
            self.protocol.receipt_stored(event)
            for out in events:
                self._emit(out)
        elif isinstance(event, SendAccepted):
            sent = engine.sent(event.entry, event.ts)
            if sent is not None:
                self._emit(sent)
            self._outbox_changed.set()
        elif isinstance(event, SendRejected):
            if event.retry_after is None:
                failed = engine.failed(event.entry, event.code, event.message)
                if failed is not None:
                    self._emit(failed)
                if event.entry.is_group and event.code in _NOT_IN_GROUP:
                    # perhaps removed: the service says (a 404 marks the group left)
                    self._refresh_soon([event.entry.to[len(GROUP_PREFIX) :]])
                self._outbox_changed.set()
            else:
                log.info(
                    "send %s waits %.1fs: %s", event.entry.client_id, event.retry_after, event.code
                )
        elif isinstance(event, DevicesMismatched):
            await self._repair(event)
        elif isinstance(event, GroupStale):
            await self._regroup(event)
        elif isinstance(event, SyncComplete):
            self._synced.set()
            self._emit(Synced())
            self._relist_own_devices_soon()
            self._refresh_soon(self.store.stale_groups())
        elif isinstance(event, TypingChanged):
            self._typing_changed(event)
        elif isinstance(event, ServerError):
            log.warning("server error: %s %s", event.code, event.message)

    def _typing_changed(self, event: TypingChanged) -> None:
        if event.group is None:
            contact = self.store.contact(event.sender)
            if contact is not None:  # strangers' typing is not shown
                self._emit(Typing(contact, event.typing))
            return
        group = self.store.group(event.group)
        if group is None or not group.active or event.sender not in group.members:
            return
        if event.sender == self.account.user_id:
            return
        contact = self.store.contact(event.sender) or Contact(event.sender, None, None)
        self._emit(Typing(contact, event.typing, group))

    def _relist_own_devices_soon(self) -> None:
        """After each (re)connect: which devices this account has now, in the background."""
        if self._relisting is not None and not self._relisting.done():
            return

        async def relist() -> None:
            try:
                await self.refresh_own_devices()
            except ParleyClientError as exc:
                log.warning("could not list this account's devices: %s", exc)

        self._relisting = asyncio.create_task(relist(), name="parley-own-devices")
        self._tasks = [task for task in self._tasks if not task.done()]
        self._tasks.append(self._relisting)

    async def _copy_to_own_devices(self, message: Message) -> None:
        """What this device sends goes, as a copy, to this account's other devices."""
        try:
            copy, events = await self.engine.own_copy(message)
        except ParleyClientError as exc:
            log.warning("no copy of %s for our other devices: %s", message.client_id, exc)
            return
        for event in events:
            self._emit(event)
        if copy is not None:
            self.protocol.send(copy)
            self._flush()

    async def _repair(self, event: DevicesMismatched) -> None:
        try:
            payloads, events = await self.engine.repair(event.entry, event.missing, event.extra)
        except ParleyClientError as exc:
            log.warning("could not fetch keys to repair %s: %s", event.entry.client_id, exc)
            payloads, events = None, []
        for out in events:
            self._emit(out)
        if payloads is None:
            self.protocol.cancel(event.entry.client_id)
            failed = self.engine.failed(event.entry, "mismatched_devices", "no usable devices")
            if failed is not None:
                self._emit(failed)
            self._outbox_changed.set()
        else:
            self.protocol.replace_payloads(event.entry.client_id, payloads)
        self._flush()

    async def _regroup(self, event: GroupStale) -> None:
        """The group moved on under a send: read it again, rotate and hand out our
        sender key, re-encrypt, and send again with the same client id."""
        entry = event.entry
        group_id = entry.to[len(GROUP_PREFIX) :]
        group: Group | None = None
        for attempt in range(REGROUP_TRIES):
            try:
                group = await self.refresh_group(group_id)
                break
            except NotAGroupMember:
                break
            except ParleyClientError as exc:
                log.warning("could not read group %s (try %d): %s", group_id, attempt + 1, exc)
                await asyncio.sleep(0.2 * 2**attempt)
        resend: GroupResend | None = None
        events: list[Event] = []
        if group is not None and group.active:
            try:
                resend, events = await self.engine.regroup(entry, group)
            except ParleyClientError as exc:
                log.warning("could not hand out a new sender key for %s: %s", group_id, exc)
        for out in events:
            self._emit(out)
        if resend is None:
            self.protocol.cancel(entry.client_id)
            failed = self.engine.failed(
                entry, "stale_group", "the group changed and could not be caught up with"
            )
            if failed is not None:
                self._emit(failed)
            self._outbox_changed.set()
        else:
            for distribution in resend.distributions:
                self.protocol.send(distribution)
            self.protocol.replace_group_body(
                entry.client_id,
                resend.body,
                resend.version,
                [d.client_id for d in resend.distributions],
            )
        self._flush()

    async def _maintenance(self) -> None:
        """Prekey upkeep: once caught up after connecting, then whenever first
        messages consumed prekeys (at most every MAINTENANCE_INTERVAL_S)."""
        await self._synced.wait()
        while True:
            try:
                result = await self.maintain_keys()
                if result.uploaded or result.rotated:
                    log.info("keys: %s", result)
            except ParleyClientError as exc:
                log.warning("prekey upkeep failed (will retry): %s", exc)
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            await self._maintenance_due.wait()
            self._maintenance_due.clear()


def _conversation_key(target: Contact | Group) -> str:
    return target.conversation if isinstance(target, Group) else target.user_id


def _is_file_of_size(path: Path, size: int) -> bool:
    try:
        return path.is_file() and path.stat().st_size == size
    except OSError:
        return False
