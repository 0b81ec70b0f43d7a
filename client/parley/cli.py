"""`parley`: the command-line app. One profile per person, so two people can
chat on one machine:

    parley --profile alice signup +15551230001 --code-from-local-sms
    parley --profile alice contacts add +15551230002 Bob
    parley --profile alice send Bob "hi"
    parley --profile alice send-file Bob photo.jpg --caption "the view"
    parley --profile bob inbox            # 📎 photo.jpg (2.1 MB) — parley download 7
    parley --profile bob download 7
    parley --profile alice chat Bob
    parley --profile alice group create Climbing Bob Carol
    parley --profile alice send Climbing "Saturday?"     # a group works like a contact
    parley --profile alice group info Climbing          # members, admins, safety numbers

Endpoints come from the local stack's file (~/.parley/local.json, or
PARLEY_LOCAL_FILE) unless `--aws [cdk-outputs.json]` names deploy outputs.
A new profile's secrets are protected by the OS keyring when there is one,
else by a passphrase (asked for, or PARLEY_PASSPHRASE); `--insecure-dev-store`
keeps them unencrypted, for development only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from parley.client import Client, request_code, sign_up
from parley.endpoints import Endpoints
from parley.errors import (
    ConfigurationError,
    ParleyClientError,
    PassphraseRequired,
    RateLimited,
    ServiceUnavailable,
)
from parley.local_sms import code_from_local_sms, sms_count
from parley.media import Attachment, Location, MediaError
from parley.media import Contact as ContactCard
from parley.models import (
    Connected,
    Contact,
    Disconnected,
    Group,
    GroupUpdated,
    IdentityChanged,
    Message,
    MessageReceived,
    MessageSent,
    MessageState,
    ReceiptUpdate,
    SendFailed,
    Typing,
)
from parley.profiles import profile_dir
from parley.vault import Protection

__all__ = [
    "ProgressBar",
    "human_size",
    "main",
    "render_content",
    "render_group_message",
    "render_message",
    "ticks",
]

BLUE = "\x1b[34m"
DIM = "\x1b[2m"
YELLOW = "\x1b[33m"
RESET = "\x1b[0m"
SEND_WAIT_S = 15.0
TYPING_IDLE_S = 4.0


# --- rendering --------------------------------------------------------------------------


def ticks(state: MessageState, *, color: bool) -> str:
    """✓ sent, ✓✓ delivered, blue ✓✓ read (or "✓✓ read" without colour)."""
    if state is MessageState.READ:
        return f"{BLUE}✓✓{RESET}" if color else "✓✓ read"
    if state is MessageState.FAILED:
        return "✗ not sent"
    return state.ticks


def render_message(message: Message, contact: Contact, *, color: bool) -> str:
    when = datetime.fromtimestamp(message.ts / 1000).strftime("%Y-%m-%d %H:%M")
    body = render_content(message)
    if message.outgoing:
        return f"{when}  you: {body}  {ticks(message.state, color=color)}".rstrip()
    return f"{when}  {contact.display_name}: {body}"


def render_group_message(client: Client, message: Message, *, color: bool) -> str:
    """A group message: who said it, and for ours how far it got among the members."""
    sender = client.store.contact(message.sender) or Contact(message.sender, None, None)
    line = render_message(message, sender, color=color)
    if message.outgoing and message.state in {MessageState.SENT, MessageState.DELIVERED}:
        detail = client.group_ticks(message)
        if detail:
            read = sum(1 for member in detail if member.read)
            line += f"  (read by {read} of {len(detail)})"
    return line


def _typing_here(event: Typing, conversation: str) -> bool:
    """Typing shown in this chat: the contact's to us, or a member's in this group."""
    if event.group is not None:
        return event.group.conversation == conversation
    return event.contact.user_id == conversation


def _typing_status(names: list[str]) -> str:
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    return f"{', '.join(names[:-1])} and {names[-1]} are typing…"


def _group_event_line(client: Client, event: GroupUpdated) -> str:
    group = event.group
    if not group.active:
        return f"You are no longer in {group.display_name}."
    if event.previous is None:
        return f"You are in {group.display_name} ({len(group.members)} members)."
    parts = [f"{client.member_name(m)} joined" for m in event.added]
    parts += [f"{client.member_name(m)} left" for m in event.removed]
    if group.name != event.previous.name:
        parts.append(f"now called {group.name}")
    return f"{group.display_name}: {', '.join(parts) or 'changed'}."


def render_content(message: Message) -> str:
    """A message as one line: its text, a file with how to get it, a map link, a card."""
    content = message.content
    if isinstance(content, Attachment):
        line = f"📎 {content.name} ({human_size(content.size)})"
        if content.caption:
            line += f" “{content.caption}”"
        if message.file is not None:
            return f"{line} — saved as {message.file}"
        if message.outgoing:
            return line
        return f"{line} — parley download {message.id}"
    if isinstance(content, Location):
        return f"📍 {content.name or 'Location'} {content.map_url()}"
    if isinstance(content, ContactCard):
        return f"👤 {content.name} {', '.join(content.phones)}"
    return message.text


def human_size(size: int) -> str:
    """Bytes as people read them: 900 B, 14 KB, 2.1 MB, 1.3 GB (powers of 1000)."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


class ProgressBar:
    """A transfer's progress as a plain text bar on stderr, e.g.

        upload photo.jpg [############------------]  50%  1.0 MB / 2.1 MB

    Redrawn in place on a terminal; elsewhere (a log, a pipe) one line per quarter.
    Call it with (done, total); `close()` ends the line.
    """

    WIDTH = 24

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self._shown = -1
        self._open = False

    def __call__(self, done: int, total: int) -> None:
        percent = 100 if total <= 0 else max(0, min(100, done * 100 // total))
        step = percent if self.tty else percent // 25 * 25
        if step == self._shown:
            return
        self._shown = step
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        line = f"{self.label} [{bar}] {percent:3d}%  {human_size(done)} / {human_size(total)}"
        if self.tty:
            self.stream.write(f"\r{line}\x1b[K")
            self._open = percent < 100
            if not self._open:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def _warn(text: str, *, color: bool) -> str:
    return f"{YELLOW}⚠ {text}{RESET}" if color else f"⚠ {text}"


# --- options ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profile",
        default=argparse.SUPPRESS,
        help="profile name (one per person/device); default: $PARLEY_PROFILE or 'default'",
    )
    common.add_argument(
        "--aws",
        nargs="?",
        const="cdk-outputs.json",
        default=argparse.SUPPRESS,
        metavar="CDK_OUTPUTS",
        help="use the deployed stack (cdk deploy outputs file, default cdk-outputs.json)",
    )
    common.add_argument(
        "--local-file",
        default=argparse.SUPPRESS,
        help="the local stack's endpoints file (default ~/.parley/local.json)",
    )
    common.add_argument(
        "--insecure-dev-store",
        action="store_true",
        default=argparse.SUPPRESS,
        help="create the profile WITHOUT encryption at rest (development only)",
    )
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="parley", description="End-to-end encrypted messaging.", parents=[common]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    signup = commands.add_parser("signup", parents=[common], help="create an account")
    signup.add_argument("phone", help="your phone number, E.164 (+15551234567)")
    code = signup.add_mutually_exclusive_group()
    code.add_argument("--code", help="the 6-digit code (asked for if not given)")
    code.add_argument(
        "--code-from-local-sms",
        action="store_true",
        help="local mode: read the code from the local stack's SMS sink",
    )

    commands.add_parser("whoami", parents=[common], help="this profile's account")

    devices = commands.add_parser(
        "devices", parents=[common], help="your signed-in devices (sign out a lost one)"
    )
    device_commands = devices.add_subparsers(dest="devices_command")
    device_commands.add_parser("list", parents=[common], help="list them (the default)")
    sign_out = device_commands.add_parser(
        "remove", parents=[common], help="sign a device out for good"
    )
    sign_out.add_argument("device_id", metavar="DEVICE_ID")

    account = commands.add_parser("account", parents=[common], help="your account")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    account_commands.add_parser(
        "code", parents=[common], help="text a code for deleting the account (for --code)"
    )
    delete = account_commands.add_parser(
        "delete",
        parents=[common],
        help="delete your account for good, and this profile with it",
    )
    delete.add_argument(
        "--yes", action="store_true", help="do not ask to type the phone number (scripts)"
    )
    delete_code = delete.add_mutually_exclusive_group()
    delete_code.add_argument(
        "--code", help="a code texted before by `parley account code` (else one is sent now)"
    )
    delete_code.add_argument(
        "--code-from-local-sms",
        action="store_true",
        help="local mode: read the code from the local stack's SMS sink",
    )

    contacts = commands.add_parser("contacts", parents=[common], help="manage contacts")
    contact_commands = contacts.add_subparsers(dest="contacts_command", required=True)
    add = contact_commands.add_parser("add", parents=[common], help="add a contact by phone")
    add.add_argument("phone")
    add.add_argument("name")
    contact_commands.add_parser("list", parents=[common], help="list contacts")

    send = commands.add_parser("send", parents=[common], help="send one message")
    send.add_argument("name", help="contact name, phone or user id, or a group")
    send.add_argument("text")

    send_file = commands.add_parser(
        "send-file", parents=[common], help="send a photo, video, audio or document"
    )
    send_file.add_argument("name", help="contact name, phone or user id")
    send_file.add_argument("path", help="the file to send")
    send_file.add_argument("--caption", help="a line of text shown with the file")
    send_file.add_argument("--mime", help="its MIME type (default: guessed from the name)")

    location = commands.add_parser(
        "send-location", parents=[common], help="share a point on the map"
    )
    location.add_argument("name", help="contact name, phone or user id")
    location.add_argument("lat", type=float, help="latitude in degrees (-90..90)")
    location.add_argument("lon", type=float, help="longitude in degrees (-180..180)")
    location.add_argument("--name", dest="place", metavar="PLACE", help="what is there")

    card = commands.add_parser("send-contact", parents=[common], help="share a contact card")
    card.add_argument("name", help="contact name, phone or user id (who gets the card)")
    card.add_argument("card_name", help="the name on the card")
    card.add_argument("phones", nargs="+", metavar="PHONE", help="its phone numbers")

    download = commands.add_parser(
        "download", parents=[common], help="download a received file into the profile"
    )
    download.add_argument("message_id", type=int, help="the number `history` shows")

    chat = commands.add_parser("chat", parents=[common], help="chat interactively")
    chat.add_argument("name", help="a contact or a group")

    commands.add_parser("inbox", parents=[common], help="receive what is waiting, then exit")

    group = commands.add_parser("group", parents=[common], help="group chats")
    group_commands = group.add_subparsers(dest="group_command", required=True)
    create = group_commands.add_parser("create", parents=[common], help="start a group")
    create.add_argument("group_name", metavar="NAME")
    create.add_argument("members", nargs="*", metavar="CONTACT", help="contacts to add")
    for name, about in (
        ("add", "add contacts to a group (admins only)"),
        ("remove", "remove members from a group (admins only)"),
        ("promote", "make members admins (admins only)"),
    ):
        change = group_commands.add_parser(name, parents=[common], help=about)
        change.add_argument("group", metavar="GROUP", help="group name or id")
        change.add_argument("members", nargs="+", metavar="CONTACT")
    leave = group_commands.add_parser("leave", parents=[common], help="leave a group")
    leave.add_argument("group", metavar="GROUP")
    info = group_commands.add_parser(
        "info", parents=[common], help="members, admins and your safety number with each"
    )
    info.add_argument("group", metavar="GROUP")
    group_commands.add_parser("list", parents=[common], help="your groups")

    history = commands.add_parser("history", parents=[common], help="show a conversation")
    history.add_argument("name", help="a contact or a group")
    history.add_argument("-n", "--limit", type=int, default=50)

    safety = commands.add_parser(
        "safety-number", parents=[common], help="show the safety number with a contact"
    )
    safety.add_argument("name")
    safety.add_argument(
        "--mark-verified",
        action="store_true",
        help="you compared the numbers and they match (clears a key-change warning)",
    )
    return parser


class _Context:
    """What every command needs: parsed options, endpoints and profile settings."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.color = out.isatty() and not os.environ.get("NO_COLOR")
        self.profile: str = getattr(args, "profile", None) or os.environ.get(
            "PARLEY_PROFILE", "default"
        )
        self.insecure: bool = getattr(args, "insecure_dev_store", False)
        self.passphrase: str | None = os.environ.get("PARLEY_PASSPHRASE") or None

    def endpoints(self) -> Endpoints:
        aws = getattr(self.args, "aws", None)
        if aws is not None:
            return Endpoints.from_cdk_outputs(Path(aws))
        local = getattr(self.args, "local_file", None)
        return Endpoints.local(Path(local) if local else None)

    def endpoints_if_known(self) -> Endpoints | None:
        """For commands that work offline: None when no endpoints are configured."""
        try:
            return self.endpoints()
        except ConfigurationError:
            return None

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ask_passphrase(self, *, confirm: bool) -> str:
        if not sys.stdin.isatty():
            raise PassphraseRequired(
                "this profile needs a passphrase: set PARLEY_PASSPHRASE"
                " (or create it with --insecure-dev-store, for development only)"
            )
        first = getpass.getpass(f"Passphrase for profile {self.profile!r}: ")
        if confirm and getpass.getpass("Repeat it: ") != first:
            raise PassphraseRequired("the passphrases differ")
        return first

    async def client(self, *, connect: bool, online: bool = False) -> Client:
        """An open client, asking for the passphrase if the profile needs one.
        `online`: the HTTP API is needed even without the WebSocket."""
        endpoints = self.endpoints() if connect or online else self.endpoints_if_known()
        for attempt in range(2):
            client = Client(
                self.profile,
                endpoints=endpoints,
                passphrase=self.passphrase,
                allow_plaintext=self.insecure,
                connect=connect,
            )
            try:
                await client.open()
                return client
            except PassphraseRequired:
                await client.close()
                if attempt or self.passphrase:
                    raise
                self.passphrase = self.ask_passphrase(confirm=False)
        raise AssertionError("unreachable")


# --- commands ------------------------------------------------------------------------------


async def _signup(ctx: _Context) -> None:
    args = ctx.args
    endpoints = ctx.endpoints()
    phone: str = args.phone
    before = 0
    if args.code_from_local_sms:
        if not endpoints.sms_url:
            raise ParleyClientError("--code-from-local-sms works only against the local stack")
        before = await sms_count(endpoints.sms_url, phone)
    try:
        answer = await request_code(phone, endpoints=endpoints)
        ctx.print(f"A code was sent to {phone} (valid {answer.get('expires_in', 300)} s).")
    except RateLimited as exc:
        if not (args.code or args.code_from_local_sms):
            raise
        ctx.print(f"(a code was sent moments ago; retry in {exc.retry_after:.0f} s if needed)")
    if args.code:
        code = args.code
    elif args.code_from_local_sms:
        assert endpoints.sms_url is not None
        code = await code_from_local_sms(endpoints.sms_url, phone, after=before)
        ctx.print("Read the code from the local SMS sink.")
    else:
        code = (await asyncio.to_thread(input, "Code: ")).strip()
    passphrase = ctx.passphrase
    for attempt in range(2):
        try:
            account = await sign_up(
                ctx.profile,
                phone,
                code,
                endpoints=endpoints,
                passphrase=passphrase,
                allow_plaintext=ctx.insecure,
            )
            break
        except PassphraseRequired:
            if attempt or passphrase:
                raise
            ctx.print("No OS keyring here: choose a passphrase to protect this profile.")
            passphrase = ctx.ask_passphrase(confirm=True)
    ctx.print(f"Signed up as {account.phone}: user {account.user_id}, device {account.device_id}")
    ctx.print(f"Profile {ctx.profile!r} is in {profile_dir(ctx.profile)}")


async def _whoami(ctx: _Context) -> None:
    client = await ctx.client(connect=False)
    try:
        account = client.account
        store = client.store
        ctx.print(f"profile    {ctx.profile}  ({store.path.parent})")
        ctx.print(f"phone      {account.phone}")
        ctx.print(f"user id    {account.user_id}")
        ctx.print(f"device id  {account.device_id}")
        identity = store.identity().public_key.hex()
        ctx.print(f"identity   {identity[:16]}…")
        protection = store.protection
        label = {
            Protection.KEYRING: "encrypted, key in the OS keyring",
            Protection.PASSPHRASE: "encrypted with a passphrase (Argon2id)",
            Protection.PLAINTEXT_DEV: "NOT ENCRYPTED (plaintext dev mode)",
        }[protection]
        ctx.print(f"store      {label}")
        ctx.print(f"prekeys    {store.one_time_prekey_count()} one-time prekeys held locally")
    finally:
        await client.close()


async def _devices(ctx: _Context) -> None:
    client = await ctx.client(connect=False, online=True)
    try:
        if ctx.args.devices_command == "remove":
            device_id = ctx.args.device_id
            await client.sign_out_device(device_id)
            if device_id == client.account.device_id:
                ctx.print("This device is signed out. Its history stays in this profile;")
                ctx.print("to use Parley here again, sign up into a new profile.")
            else:
                ctx.print(f"Signed out {device_id}: it can no longer send or receive.")
            return
        for device in await client.devices():
            since = datetime.fromtimestamp(device.created_at).strftime("%Y-%m-%d %H:%M")
            notes = ["this device" if device.current else ""]
            notes.append("" if device.ready else "keys not uploaded yet")
            notes.append(f"push: {device.push}" if device.push else "")
            shown = ", ".join(n for n in notes if n)
            ctx.print(f"{device.device_id}  signed in {since}  {shown}".rstrip())
    finally:
        await client.close()


def _digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


async def _account(ctx: _Context) -> None:
    args = ctx.args
    client = await ctx.client(connect=False, online=True)
    try:
        phone = client.account.phone
        if args.account_command == "code":
            await client.request_account_deletion_code()
            ctx.print(f"A code for deleting the account was sent to {phone}.")
            return
        if not args.yes:
            ctx.print(f"This deletes the Parley account of {phone} for good: its contacts,")
            ctx.print("groups and waiting messages on the service, and this profile here.")
            try:
                typed = await asyncio.to_thread(input, "Type the phone number to confirm: ")
            except EOFError:
                typed = ""  # no terminal, no answer: not confirmed (--yes is for scripts)
            if _digits(typed) != _digits(phone):
                raise ParleyClientError("that is not this account's number: nothing was deleted")
        code = args.code
        if code is None:
            sms_url = ctx.endpoints().sms_url if args.code_from_local_sms else None
            if args.code_from_local_sms and not sms_url:
                raise ParleyClientError("--code-from-local-sms works only against the local stack")
            before = await sms_count(sms_url, phone) if sms_url else 0
            await client.request_account_deletion_code()
            ctx.print(f"A code for deleting the account was sent to {phone}.")
            if sms_url:
                code = await code_from_local_sms(sms_url, phone, after=before)
                ctx.print("Read the code from the local SMS sink.")
            else:
                code = (await asyncio.to_thread(input, "Code: ")).strip()
        user_id = client.account.user_id
        directory = profile_dir(ctx.profile)
        await client.delete_account(code)
        ctx.print(f"Deleted the account of {phone} (user {user_id}).")
        ctx.print(f"Profile {ctx.profile!r} was removed from {directory}.")
    finally:
        await client.close()


async def _contacts(ctx: _Context) -> None:
    if ctx.args.contacts_command == "add":
        client = await ctx.client(connect=False)
        try:
            contact = await client.add_contact(ctx.args.phone, ctx.args.name)
            ctx.print(f"Added {contact.name} ({contact.phone}, user {contact.user_id}).")
        finally:
            await client.close()
        return
    client = await ctx.client(connect=False)
    try:
        contacts = client.contacts()
        if not contacts:
            ctx.print("No contacts yet: parley contacts add PHONE NAME")
        for contact in contacts:
            flags = []
            if contact.identity_changed:
                flags.append(_warn("identity key changed", color=ctx.color))
            if contact.verified:
                flags.append("verified")
            name = contact.name or "(unnamed)"
            phone = contact.phone or "-"
            ctx.print(f"{name:<16} {phone:<16} {contact.user_id}  {' '.join(flags)}".rstrip())
    finally:
        await client.close()


async def _send(ctx: _Context) -> None:
    await _send_one(ctx, lambda client, contact: client.send(contact, ctx.args.text))


async def _send_file(ctx: _Context) -> None:
    args = ctx.args
    bar = ProgressBar(f"upload {Path(args.path).name}")

    async def send(client: Client, contact: Contact | Group) -> Message:
        try:
            return await client.send_file(
                contact, args.path, caption=args.caption, progress=bar, mime=args.mime
            )
        finally:
            bar.close()

    await _send_one(ctx, send)


async def _send_location(ctx: _Context) -> None:
    args = ctx.args
    await _send_one(
        ctx, lambda client, contact: client.send_location(contact, args.lat, args.lon, args.place)
    )


async def _send_contact(ctx: _Context) -> None:
    args = ctx.args
    await _send_one(
        ctx, lambda client, contact: client.send_contact(contact, args.card_name, args.phones)
    )


async def _send_one(
    ctx: _Context, send: Callable[[Client, Contact | Group], Coroutine[Any, Any, Message]]
) -> None:
    """Send one message of any kind, wait (a while) for the server, show its ticks."""
    client = await ctx.client(connect=True)
    try:
        target = client.conversation(ctx.args.name)
        if isinstance(target, Contact) and target.identity_changed:
            ctx.print(_warn(f"{target.display_name}'s identity key changed", color=ctx.color))
        message = await send(client, target)
        try:
            async with asyncio.timeout(SEND_WAIT_S):
                await client.wait_outbox_empty()
        except TimeoutError:
            ctx.print("Queued: no connection to the service; it goes out next time.")
            return
        final = client.store.message(message.sender, message.client_id) or message
        ctx.print(f"{ticks(final.state, color=ctx.color)} {render_content(final)}")
    finally:
        await client.close()


async def _download(ctx: _Context) -> None:
    client = await ctx.client(connect=False, online=True)
    try:
        message = client.message(ctx.args.message_id)
        attachment = message.attachment
        if attachment is None:
            raise ParleyClientError(f"message {message.id} carries no file ({message.kind})")
        bar = ProgressBar(f"download {attachment.name}")
        try:
            path = await client.download(message, progress=bar)
        finally:
            bar.close()
        ctx.print(f"Saved {attachment.name} ({human_size(attachment.size)}) as {path}")
    finally:
        await client.close()


async def _inbox(ctx: _Context) -> None:
    client = await ctx.client(connect=True)
    stream = client.events()
    shown = 0
    try:
        async with asyncio.timeout(SEND_WAIT_S):
            await client.wait_synced()
            await client.wait_groups_read()  # so a new group shows by its name
        # events are handled before `synced` is, so all of them are queued by now
        for event in stream.drain():
            if isinstance(event, MessageReceived):
                shown += 1
                line = render_message(event.message, event.contact, color=ctx.color)
                if event.message.group_id is not None:
                    line = f"[{_group_label(client, event.message.group_id)}] {line}"
                ctx.print(line)
            elif isinstance(event, ReceiptUpdate):
                to = (event.group or event.contact).display_name
                for message in event.messages:
                    shown += 1
                    ctx.print(f"{ticks(event.state, color=ctx.color)} to {to}: {message.text}")
            elif isinstance(event, GroupUpdated):
                shown += 1
                ctx.print(_group_event_line(client, event))
            elif isinstance(event, IdentityChanged):
                shown += 1
                ctx.print(_identity_warning(event, color=ctx.color))
        if not shown:
            ctx.print("Nothing new.")
    except TimeoutError:
        ctx.print("Could not reach the service.")
    finally:
        stream.close()
        await client.close()


async def _history(ctx: _Context) -> None:
    client = await ctx.client(connect=False)
    try:
        target = client.conversation(ctx.args.name)
        if isinstance(target, Group):
            _print_group_history(ctx, client, target)
            return
        contact = target
        if contact.identity_changed:
            ctx.print(_identity_warning_text(contact, color=ctx.color))
        messages = client.history(contact, ctx.args.limit)
        if not messages:
            ctx.print(f"No messages with {contact.display_name} yet.")
        for message in messages:
            ctx.print(render_message(message, contact, color=ctx.color))
    finally:
        await client.close()


def _print_group_history(ctx: _Context, client: Client, group: Group) -> None:
    state = "" if group.active else " — you are no longer in it"
    ctx.print(f"Group {group.display_name} ({len(group.members)} members){state}")
    messages = client.history(group, ctx.args.limit)
    if not messages:
        ctx.print("No messages in this group yet.")
    for message in messages:
        ctx.print(render_group_message(client, message, color=ctx.color))


def _group_label(client: Client, group_id: str) -> str:
    group = client.store.group(group_id)
    return group.display_name if group is not None and group.name else f"group {group_id[:8]}"


# --- groups ---------------------------------------------------------------------------------


async def _group(ctx: _Context) -> None:
    command = ctx.args.group_command
    client = await ctx.client(connect=False, online=command != "list")
    try:
        await _GROUP_COMMANDS[command](ctx, client)
    finally:
        await client.close()


async def _group_create(ctx: _Context, client: Client) -> None:
    group = await client.create_group(ctx.args.group_name, ctx.args.members)
    names = ", ".join(client.member_name(m) for m in group.members)
    ctx.print(f"Created {group.display_name} (group {group.group_id}): {names}.")


async def _group_add(ctx: _Context, client: Client) -> None:
    group = await client.add_members(ctx.args.group, ctx.args.members)
    ctx.print(f"{group.display_name} now has {len(group.members)} members.")


async def _group_remove(ctx: _Context, client: Client) -> None:
    group = await client.remove_members(ctx.args.group, ctx.args.members)
    ctx.print(f"{group.display_name} now has {len(group.members)} members.")
    ctx.print("Your next message to it goes with a new key they do not get.")


async def _group_promote(ctx: _Context, client: Client) -> None:
    group = client.group(ctx.args.group)
    for member in ctx.args.members:
        group = await client.promote(group, member)
    admins = ", ".join(client.member_name(a) for a in group.admins)
    ctx.print(f"Admins of {group.display_name}: {admins}.")


async def _group_leave(ctx: _Context, client: Client) -> None:
    group = await client.leave(ctx.args.group)
    ctx.print(f"You left {group.display_name}. Its history stays here.")


async def _group_list(ctx: _Context, client: Client) -> None:
    if client.endpoints is not None:
        with contextlib.suppress(ServiceUnavailable):
            await client.refresh_groups()
    groups = client.groups()
    if not groups:
        ctx.print("No groups yet: parley group create NAME CONTACT...")
    me = client.account.user_id
    for group in groups:
        role = "admin" if group.is_admin(me) else ""
        ctx.print(f"{group.display_name:<24} {len(group.members):>4} members  {role}".rstrip())


async def _group_info(ctx: _Context, client: Client) -> None:
    group = client.group(ctx.args.group)
    if group.active:
        try:
            group = await client.refresh_group(group)
        except ServiceUnavailable:
            ctx.print("(the service is out of reach: this is the group as last seen)")
    ctx.print(f"{group.display_name}   group {group.group_id}, version {group.version}")
    if not group.active:
        ctx.print("You are no longer in this group.")
        return
    ctx.print(f"{len(group.members)} members, {len(group.admins)} admin(s):")
    me = client.account.user_id
    for member in group.members:
        role = "admin" if group.is_admin(member) else "member"
        if member == me:
            ctx.print(f"  {'you':<24} {role}")
            continue
        contact = client.store.contact(member) or Contact(member, None, None)
        flags = ""
        if contact.identity_changed:
            flags = "  " + _warn("identity key changed", color=ctx.color)
        elif contact.verified:
            flags = "  verified"
        ctx.print(f"  {contact.display_name:<24} {role}{flags}")
        try:
            numbers = await client.safety_numbers(contact)
        except ParleyClientError as exc:
            ctx.print(f"      safety number unknown ({exc})")
            continue
        for device, number in sorted(numbers.items()):
            digits = " ".join(number[i : i + 5] for i in range(0, 60, 5))
            suffix = f"   (device {device})" if len(numbers) > 1 else ""
            ctx.print(f"      {digits}{suffix}")
    ctx.print("Compare each safety number with that member in person or on a call.")


_GROUP_COMMANDS: dict[str, Callable[[_Context, Client], Coroutine[Any, Any, None]]] = {
    "create": _group_create,
    "add": _group_add,
    "remove": _group_remove,
    "promote": _group_promote,
    "leave": _group_leave,
    "list": _group_list,
    "info": _group_info,
}


async def _safety_number(ctx: _Context) -> None:
    client = await ctx.client(connect=False)
    try:
        contact = client.contact(ctx.args.name)
        numbers = await client.safety_numbers(contact)
        ctx.print(f"Safety number with {contact.display_name}:")
        for device, number in sorted(numbers.items()):
            groups = " ".join(number[i : i + 5] for i in range(0, 60, 5))
            suffix = f"   (device {device})" if len(numbers) > 1 else ""
            ctx.print(f"  {groups}{suffix}")
        ctx.print("Compare it with theirs in person or on a call: the same digits on both")
        ctx.print("phones mean nobody is in the middle.")
        if ctx.args.mark_verified:
            client.mark_verified(contact)
            ctx.print(f"Marked {contact.display_name} as verified.")
        elif contact.identity_changed:
            ctx.print(_identity_warning_text(contact, color=ctx.color))
    finally:
        await client.close()


def _identity_warning(event: IdentityChanged, *, color: bool) -> str:
    return _identity_warning_text(event.contact, color=color)


def _identity_warning_text(contact: Contact, *, color: bool) -> str:
    return _warn(
        f"{contact.display_name}'s identity key changed (new phone or reinstall?). "
        f"Check `parley safety-number {contact.name or contact.user_id}` with them.",
        color=color,
    )


# --- chat ---------------------------------------------------------------------------------------


class _Terminal:
    """A prompt line that survives asynchronous output (cbreak mode on a TTY)."""

    def __init__(self, out: TextIO, prompt: str, *, tty: bool) -> None:
        self.out = out
        self.prompt = prompt
        self.tty = tty
        self.buffer = ""
        self.status = ""

    def show(self, line: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[K" + line + "\n")
            self._redraw()
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def set_status(self, status: str) -> None:
        self.status = status
        if self.tty:
            self._redraw()
            self.out.flush()
        elif status:
            self.show(status)

    def _redraw(self) -> None:
        status = f"{DIM}{self.status}{RESET} " if self.status else ""
        self.out.write("\r\x1b[K" + status + self.prompt + self.buffer)


async def _chat(ctx: _Context) -> None:
    client = await ctx.client(connect=True)
    stream = client.events()
    loop = asyncio.get_running_loop()
    tty = sys.stdin.isatty() and ctx.out.isatty()
    term = _Terminal(ctx.out, "> ", tty=tty)
    done = asyncio.Event()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    try:
        target = client.conversation(ctx.args.name)
        group = target if isinstance(target, Group) else None
        conversation = target.conversation if isinstance(target, Group) else target.user_id
        if group is not None:
            names = ", ".join(client.member_name(m) for m in group.members)
            term.show(
                f"Chat in {group.display_name} ({names}). Type a message and press Enter; "
                "/quit to leave, /members for who is in it, /file PATH [caption], "
                "/location LAT LON [name], /download ID."
            )
            if not group.active:
                term.show(_warn("you are no longer in this group", color=ctx.color))
        elif isinstance(target, Contact):
            term.show(
                f"Chat with {target.display_name}. Type a message and press Enter; "
                "/quit to leave, /safety for the safety number, /file PATH [caption], "
                "/location LAT LON [name], /download ID."
            )
            if target.identity_changed:
                term.show(_identity_warning_text(target, color=ctx.color))

        def render(message: Message, sender: Contact | None = None) -> str:
            if isinstance(target, Group):
                return render_group_message(client, message, color=ctx.color)
            return render_message(message, sender or target, color=ctx.color)

        for message in client.history(target, 20):
            term.show(render(message))
        shown: dict[str, Message] = {}
        typing_sent = 0.0

        async def set_typing(on: bool) -> None:
            nonlocal typing_sent
            if on and time.monotonic() - typing_sent < TYPING_IDLE_S / 2:
                return
            typing_sent = time.monotonic() if on else 0.0
            with contextlib.suppress(ParleyClientError):
                await client.typing(target, on)

        typing_tasks: set[asyncio.Future[None]] = set()

        def typed() -> None:
            task = asyncio.ensure_future(set_typing(True))
            typing_tasks.add(task)
            task.add_done_callback(typing_tasks.discard)

        restore = _start_input(loop, term, lines, tty, typed)

        async def read_input() -> None:
            while True:
                line = await lines.get()
                if line is None or line.strip() == "/quit":
                    done.set()
                    return
                text = line.strip()
                if not text:
                    continue
                if text == "/safety" and isinstance(target, Contact):
                    number = await client.safety_number(target)
                    term.show(" ".join(number[i : i + 5] for i in range(0, 60, 5)))
                    continue
                if text in {"/members", "/safety"} and group is not None:
                    current = client.group(group)
                    for member in current.members:
                        role = " (admin)" if current.is_admin(member) else ""
                        term.show(f"  {client.member_name(member)}{role}")
                    term.show(f"Safety numbers: parley group info {current.group_id}")
                    continue
                if text.split(maxsplit=1)[0] in _CHAT_MEDIA_COMMANDS:
                    await set_typing(False)
                    try:
                        sent = await _chat_media_command(client, target, term, text)
                    except (ParleyClientError, MediaError, ValueError, OSError) as exc:
                        term.show(f"not done: {exc}")
                        continue
                    if sent is not None:
                        shown[sent.client_id] = sent
                        term.show(render(sent))
                    continue
                await set_typing(False)
                try:
                    message = await client.send(target, text)
                except (ParleyClientError, ValueError) as exc:
                    term.show(f"not sent: {exc}")
                    continue
                shown[message.client_id] = message
                term.show(render(message))

        typists: dict[str, str] = {}  # who is typing here now: user id -> name

        async def show_events() -> None:
            async for event in stream:
                if isinstance(event, MessageReceived) and event.message.peer == conversation:
                    typists.pop(event.contact.user_id, None)  # done typing: it arrived
                    term.set_status(_typing_status(list(typists.values())))
                    term.show(render(event.message, event.contact))
                    await client.mark_read(target)  # the chat is open: it has been seen
                elif isinstance(event, MessageReceived):
                    where = f" in {event.group.display_name}" if event.group else ""
                    term.show(f"(new message from {event.contact.display_name}{where})")
                elif (
                    isinstance(event, MessageSent)
                    and event.message.peer == conversation
                    and event.message.client_id not in shown
                ):
                    # sent from another of this account's devices: the whole line
                    shown[event.message.client_id] = event.message
                    term.show(render(event.message))
                elif isinstance(event, MessageSent | ReceiptUpdate | SendFailed):
                    updated = (
                        event.messages if isinstance(event, ReceiptUpdate) else (event.message,)
                    )
                    for message in updated:
                        if message.peer == conversation:
                            term.show(f"  {ticks(message.state, color=ctx.color)}  {message.text}")
                elif isinstance(event, Typing) and _typing_here(event, conversation):
                    if event.typing:
                        typists[event.contact.user_id] = client.member_name(event.contact.user_id)
                    else:
                        typists.pop(event.contact.user_id, None)
                    term.set_status(_typing_status(list(typists.values())))
                elif isinstance(event, GroupUpdated) and event.group.conversation == conversation:
                    term.show(_group_event_line(client, event))
                elif isinstance(event, IdentityChanged):
                    term.show(_identity_warning(event, color=ctx.color))
                elif isinstance(event, Disconnected):
                    term.set_status("offline, reconnecting…")
                elif isinstance(event, Connected):
                    term.set_status("")

        await client.mark_read(target)
        tasks = [asyncio.create_task(read_input()), asyncio.create_task(show_events())]
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, done.set)
        try:
            await done.wait()
        finally:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)
            restore()
            for task in tasks:
                task.cancel()
            await set_typing(False)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    await client.wait_outbox_empty()
    finally:
        stream.close()
        await client.close()
        if tty:
            ctx.out.write("\n")


_CHAT_MEDIA_COMMANDS = frozenset({"/file", "/location", "/download"})


async def _chat_media_command(
    client: Client, contact: Contact | Group, term: _Terminal, text: str
) -> Message | None:
    """/file PATH [caption], /location LAT LON [name], /download ID; the message sent."""
    try:
        command, *rest = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot read that command: {exc}") from exc
    try:
        if command == "/file":
            if not rest:
                raise ValueError("usage: /file PATH [caption]")
            return await client.send_file(
                contact,
                rest[0],
                caption=" ".join(rest[1:]) or None,
                progress=_status_progress(term, f"uploading {Path(rest[0]).name}"),
            )
        if command == "/location":
            if len(rest) < 2:
                raise ValueError("usage: /location LAT LON [name]")
            name = " ".join(rest[2:]) or None
            return await client.send_location(contact, float(rest[0]), float(rest[1]), name)
        if len(rest) != 1 or not rest[0].isdigit():
            raise ValueError("usage: /download ID (the number after `parley download`)")
        path = await client.download(int(rest[0]), progress=_status_progress(term, "downloading"))
        term.set_status("")
        term.show(f"saved as {path}")
        return None
    finally:
        term.set_status("")


def _status_progress(term: _Terminal, label: str) -> Callable[[int, int], None]:
    """A transfer's progress in the chat's status line (each quarter off a terminal)."""
    shown = -1

    def update(done: int, total: int) -> None:
        nonlocal shown
        percent = 100 if total <= 0 else max(0, min(100, done * 100 // total))
        step = percent if term.tty else percent // 25 * 25
        if step != shown:
            shown = step
            term.set_status(f"{label} {percent}%")

    return update


def _start_input(
    loop: asyncio.AbstractEventLoop,
    term: _Terminal,
    lines: asyncio.Queue[str | None],
    tty: bool,
    on_typing: Callable[[], Any],
) -> Callable[[], None]:
    """Feed stdin into `lines`; on a TTY, key by key (to show typing). Returns a restorer."""
    fd = sys.stdin.fileno()
    if not tty:

        def read_line() -> None:
            line = sys.stdin.readline()
            lines.put_nowait(line if line else None)
            if not line:
                loop.remove_reader(fd)

        loop.add_reader(fd, read_line)

        def stop_reading() -> None:
            loop.remove_reader(fd)

        return stop_reading

    import termios
    import tty as tty_mod

    saved = termios.tcgetattr(fd)
    tty_mod.setcbreak(fd)
    term.set_status("")

    def read_key() -> None:
        data = os.read(fd, 1024).decode(errors="ignore")
        for char in data:
            if char in "\r\n":
                line, term.buffer = term.buffer, ""
                term.out.write("\r\x1b[K")
                term.set_status(term.status)
                lines.put_nowait(line)
            elif char == "\x04":  # Ctrl-D
                lines.put_nowait(None)
            elif char in "\x7f\x08":
                term.buffer = term.buffer[:-1]
                term.set_status(term.status)
            elif char.isprintable():
                term.buffer += char
                term.set_status(term.status)
                on_typing()

    loop.add_reader(fd, read_key)

    def restore() -> None:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    return restore


# --- entry point ------------------------------------------------------------------------------

_COMMANDS: dict[str, Callable[[_Context], Coroutine[Any, Any, None]]] = {
    "signup": _signup,
    "whoami": _whoami,
    "devices": _devices,
    "account": _account,
    "contacts": _contacts,
    "send": _send,
    "send-file": _send_file,
    "send-location": _send_location,
    "send-contact": _send_contact,
    "download": _download,
    "chat": _chat,
    "inbox": _inbox,
    "group": _group,
    "history": _history,
    "safety-number": _safety_number,
}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    verbose = getattr(args, "verbose", 0) or 0
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx = _Context(args, out or sys.stdout)
    try:
        asyncio.run(_COMMANDS[args.command](ctx))
    except ParleyClientError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    except (MediaError, OSError) as exc:
        # a transfer that failed or a file that did not verify; nothing was kept
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
