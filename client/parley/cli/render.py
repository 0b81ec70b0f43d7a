"""How the `parley` command shows things: ticks, message lines, warnings, file sizes,
progress bars, and the rows of the contact, device and group lists."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from parley.cli.payments_view import payment_lines
from parley.client import Client
from parley.content import (
    FORWARDED_MANY,
    Attachment,
    ContactCard,
    Location,
    Quote,
    Target,
    excerpt_of,
)
from parley.conversations.payload import timer_label
from parley.models import (
    AccountMoved,
    Contact,
    DeviceLinked,
    DevicesChanged,
    DeviceUnlinked,
    Event,
    Group,
    GroupMembersUnverified,
    GroupUpdated,
    HistoryImported,
    LinkedDevice,
    Message,
    MessageState,
)

__all__ = [
    "DIM",
    "RESET",
    "ProgressBar",
    "contact_row",
    "device_row",
    "group_event_line",
    "group_label",
    "group_row",
    "human_size",
    "identity_warning",
    "notice_line",
    "render_content",
    "render_group_message",
    "render_message",
    "safety_digits",
    "ticks",
    "warn",
]

BLUE = "\x1b[34m"
DIM = "\x1b[2m"
YELLOW = "\x1b[33m"
RESET = "\x1b[0m"


def ticks(state: MessageState, *, color: bool) -> str:
    """✓ sent, ✓✓ delivered, blue ✓✓ read (or "✓✓ read" without colour)."""
    if state is MessageState.READ:
        return f"{BLUE}✓✓{RESET}" if color else "✓✓ read"
    if state is MessageState.FAILED:
        return "✗ not sent"
    return state.ticks


def render_message(
    message: Message,
    contact: Contact,
    *,
    color: bool,
    names: Callable[[str], str] | None = None,
    after: str = "",
    find: Callable[[Target], Message | None] | None = None,
) -> str:
    """A message as `history` and `chat` show it: its number (for `/reply N`,
    `parley react N` ...), time, who, what, ticks; the message it replies to on a
    line above, and reactions on a line below. `names` says how to show a user id
    (default: the contact's name, else "you"); `after` ends the message's own line;
    `find` looks up the quoted message on this device (`Messages.find`): what it
    says is shown, not the excerpt the replier wrote."""
    name = names or (lambda uid: contact.display_name if uid == contact.user_id else "you")
    when = datetime.fromtimestamp(message.ts / 1000).strftime("%Y-%m-%d %H:%M")
    number = f"#{message.id}"
    body = _marked(message, render_content(message))
    if message.outgoing:
        line = f"{number} {when}  you: {body}  {ticks(message.state, color=color)}".rstrip()
    else:
        line = f"{number} {when}  {contact.display_name}: {body}"
    line += after
    pad = " " * (len(number) + 1 + len(when) + 2)
    lines = []
    if message.reply_to is not None:
        lines.append(f"{pad}┌ {_quoted(message, message.reply_to, name, find)}")
    # a text's own lines are indented: a line break cannot pass for another message
    lines.append(line.replace("\n", "\n" + pad + "  "))
    lines += [f"{pad}  {extra}" for extra in payment_lines(message, color=color)]
    if message.reactions:
        shown = "  ".join(f"{emoji} {name(uid)}" for uid, emoji in message.reactions)
        lines.append(f"{pad}  {shown}")
    return "\n".join(lines)


def _quoted(
    message: Message,
    quote: Quote,
    name: Callable[[str], str],
    find: Callable[[Target], Message | None] | None,
) -> str:
    """The line above a reply: the quoted message as this device has it (its text now,
    or that it was deleted); the replier's excerpt only when it is not here, marked so."""
    original = find(quote.target) if find is not None else None
    if original is not None and original.peer == message.peer:
        said = "🚫 deleted" if original.deleted is not None else excerpt_of(original.text)
        return f"{name(original.sender)}: “{said}”"
    return f"{name(quote.target.author)}: “{quote.excerpt}” (as quoted; not on this device)"


def _marked(message: Message, body: str) -> str:
    """Forwarded, edited and disappearing, said around the body."""
    if message.deleted is not None:
        return f"🚫 {message.text}"
    if message.forwarded >= FORWARDED_MANY:
        body = f"[Forwarded many times] {body}"
    elif message.forwarded:
        body = f"[Forwarded] {body}"
    if message.edited:
        body += " (edited)"
    if message.timer:
        body += f" ⏱{timer_label(message.timer)}"
    return body


def render_group_message(client: Client, message: Message, *, color: bool) -> str:
    """A group message: who said it, and for ours how far it got among the members."""
    sender = client.store.contacts.get(message.sender) or Contact(message.sender, None, None)
    progress = ""
    if message.outgoing and message.state in {MessageState.SENT, MessageState.DELIVERED}:
        detail = client.group_ticks(message)
        if detail:
            read = sum(1 for member in detail if member.read)
            progress = f"  (read by {read} of {len(detail)})"
    return render_message(
        message,
        sender,
        color=color,
        names=client.member_name,
        after=progress,
        find=client.store.messages.find,
    )


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


def warn(text: str, *, color: bool) -> str:
    return f"{YELLOW}⚠ {text}{RESET}" if color else f"⚠ {text}"


def identity_warning(contact: Contact, *, color: bool) -> str:
    """The warning for a contact whose identity key changed."""
    return warn(
        f"{contact.display_name}'s identity key changed (new phone or reinstall?). "
        f"Check `parley safety-number {contact.name or contact.user_id}` with them.",
        color=color,
    )


def safety_digits(number: str) -> str:
    """A 60-digit safety number in twelve groups of five."""
    return " ".join(number[i : i + 5] for i in range(0, 60, 5))


def group_event_line(client: Client, event: GroupUpdated) -> str:
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


def group_label(client: Client, group_id: str) -> str:
    group = client.store.groups.get(group_id)
    return group.display_name if group is not None and group.name else f"group {group_id[:8]}"


def contact_row(contact: Contact, *, color: bool) -> str:
    """A line of `parley contacts list`: name, phone, user id, warnings."""
    flags = []
    if contact.identity_changed:
        flags.append(warn("identity key changed", color=color))
    if contact.verified:
        flags.append("verified")
    if not contact.accepted:
        flags.append("request")
    name = contact.name or "(unnamed)"
    phone = contact.phone or "-"
    return f"{name:<16} {phone:<16} {contact.user_id}  {' '.join(flags)}".rstrip()


def device_row(device: LinkedDevice) -> str:
    """A line of `parley devices`: id, role and key index, when it signed in, what to
    know about it."""
    since = datetime.fromtimestamp(device.created_at).strftime("%Y-%m-%d %H:%M")
    role = device.role or "device"
    if device.key_index is not None:
        role += f" #{device.key_index}"
    notes = ["this device" if device.current else ""]
    notes.append("NOT on the signed device list" if device.listed is False else "")
    notes.append("" if device.ready else "keys not uploaded yet")
    notes.append(f"push: {device.push}" if device.push else "")
    shown = ", ".join(n for n in notes if n)
    return f"{device.device_id}  {role:<12} signed in {since}  {shown}".rstrip()


def notice_line(event: Event, *, color: bool) -> str | None:
    """The line for a notice about devices or the account (None for other events):
    a contact's devices changed, one of ours was linked or unlinked, this device was
    signed out by a re-registration, history was imported."""
    if isinstance(event, DevicesChanged):
        if event.contact.name == "you":
            return "your devices changed"
        return f"{event.contact.display_name}'s devices changed"
    if isinstance(event, DeviceLinked):
        return f"a new device was linked to your account: {event.device_id}"
    if isinstance(event, DeviceUnlinked):
        return f"a device was unlinked from your account: {event.device_id}"
    if isinstance(event, AccountMoved):
        return warn(
            "this device was signed out: your number was registered on another phone",
            color=color,
        )
    if isinstance(event, GroupMembersUnverified):
        who = ", ".join(f"user {uid[:8]}" for uid in event.user_ids[:5])
        more = f" and {len(event.user_ids) - 5} more" if len(event.user_ids) > 5 else ""
        return warn(
            f"{event.group.display_name}: no admin signed in {who}{more}; they get none of"
            f" your group keys. Check `parley group info {event.group.group_id}`; an admin"
            " can vouch with `parley group vouch`",
            color=color,
        )
    if isinstance(event, HistoryImported):
        return (
            f"imported {_count(event.messages, 'message')} in "
            f"{_count(event.conversations, 'conversation')} from your primary device"
        )
    return None


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def group_row(group: Group, me: str) -> str:
    """A line of `parley group list`: name, size, and whether you are an admin."""
    role = "admin" if group.is_admin(me) else ""
    return f"{group.display_name:<24} {len(group.members):>4} members  {role}".rstrip()
