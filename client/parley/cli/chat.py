"""`parley chat NAME`: an interactive chat with a contact or in a group. Messages,
ticks, typing and group changes show as they come; the prompt line keeps what is
being typed; slash commands send files and places, download, reply, react, edit,
delete, forward, set the disappearing timer, and show safety numbers or members."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from parley.cli.commands.actions import parse_timer
from parley.cli.context import Context
from parley.cli.render import (
    group_event_line,
    identity_warning,
    notice_line,
    render_group_message,
    render_message,
    safety_digits,
    ticks,
    warn,
)
from parley.cli.terminal import KeyboardInput, StatusProgress, Terminal
from parley.client import Client, EventStream
from parley.content import MediaError
from parley.conversations.payload import timer_label
from parley.errors import ParleyClientError
from parley.models import (
    AccountMoved,
    CallControl,
    CallEnded,
    CallMissed,
    CallState,
    CallStateChanged,
    Connected,
    Contact,
    Disconnected,
    Event,
    Group,
    GroupUpdated,
    IdentityChanged,
    IncomingCall,
    Message,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    MessageSent,
    PaymentAnswered,
    ReactionChanged,
    ReceiptUpdate,
    SendFailed,
    TimerChanged,
    Typing,
)

__all__ = ["Chat", "chat", "typing_here", "typing_status"]

TYPING_IDLE_S = 4.0
MEDIA_COMMANDS = frozenset({"/file", "/location", "/download"})
ACTION_COMMANDS = frozenset({"/reply", "/react", "/edit", "/delete", "/forward", "/timer"})
CALL_COMMANDS = frozenset({"/call", "/video", "/accept", "/decline", "/hangup"})
CALL_HELP = "/call (or /video) calls; an incoming call: /accept or /decline; /hangup ends it"
ACTION_HELP = (
    "/reply N text, /react N 👍 (no emoji: take it back), /edit N text, /delete N,"
    " /forward N CHAT..., /timer off|24h|7d|90d"
)


def typing_here(event: Typing, conversation: str) -> bool:
    """Typing shown in this chat: the contact's to us, or a member's in this group."""
    if event.group is not None:
        return event.group.conversation == conversation
    return event.contact.user_id == conversation


def typing_status(names: list[str]) -> str:
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    return f"{', '.join(names[:-1])} and {names[-1]} are typing…"


async def chat(ctx: Context) -> None:
    client = await ctx.client(connect=True)
    stream = client.events()
    loop = asyncio.get_running_loop()
    tty = sys.stdin.isatty() and ctx.out.isatty()
    term = Terminal(ctx.out, "> ", tty=tty)
    try:
        target = client.conversation(ctx.args.name)
        await Chat(ctx, client, stream, term, target).run(loop)
    finally:
        stream.close()
        await client.close()
        if tty:
            ctx.out.write("\n")


class Chat:
    """One open chat: what is typed goes out, what comes in is shown, until /quit,
    the end of input or Ctrl-C."""

    def __init__(
        self,
        ctx: Context,
        client: Client,
        stream: EventStream,
        term: Terminal,
        target: Contact | Group,
    ) -> None:
        self.ctx = ctx
        self.client = client
        self.stream = stream
        self.term = term
        self.target = target
        self.group = target if isinstance(target, Group) else None
        self.conversation = target.conversation if isinstance(target, Group) else target.user_id
        self.done = asyncio.Event()
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.shown: dict[str, Message] = {}  # our messages shown in full, by client id
        self.typists: dict[str, str] = {}  # who is typing here now: user id -> name
        self._typing_sent = 0.0
        self.call: CallControl | None = None  # ringing here, or in progress
        self.signed_out = False  # by a re-registration: the status line keeps saying so
        self._typing_tasks: set[asyncio.Future[None]] = set()

    async def run(self, loop: asyncio.AbstractEventLoop) -> None:
        self._greet()
        for message in self.client.history(self.target, 20):
            self.term.show(self._render(message))
        keyboard = KeyboardInput(loop, self.term, self.lines, self._typed)
        keyboard.start()
        await self.client.mark_read(self.target)
        tasks = [asyncio.create_task(self._read_input()), asyncio.create_task(self._show_events())]
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, self.done.set)
        try:
            await self.done.wait()
        finally:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)
            keyboard.stop()
            for task in tasks:
                task.cancel()
            await self._set_typing(False)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    await self.client.wait_outbox_empty()

    def _greet(self) -> None:
        target, color = self.target, self.ctx.color
        if isinstance(target, Group):
            names = ", ".join(self.client.member_name(m) for m in target.members)
            self.term.show(
                f"Chat in {target.display_name} ({names}). Type a message and press Enter; "
                "/quit to leave, /members for who is in it, /file PATH [caption], "
                f"/location LAT LON [name], /download ID; {ACTION_HELP}. N is a message's #N."
            )
            if not target.active:
                self.term.show(warn("you are no longer in this group", color=color))
        else:
            self.term.show(
                f"Chat with {target.display_name}. Type a message and press Enter; "
                "/quit to leave, /safety for the safety number, /file PATH [caption], "
                f"/location LAT LON [name], /download ID; {ACTION_HELP}. N is a message's #N."
            )
            if target.identity_changed:
                self.term.show(identity_warning(target, color=color))

    def _render(self, message: Message, sender: Contact | None = None) -> str:
        if isinstance(self.target, Group):
            return render_group_message(self.client, message, color=self.ctx.color)
        return render_message(
            message,
            sender or self.target,
            color=self.ctx.color,
            find=self.client.store.messages.find,
        )

    # --- typing ----------------------------------------------------------------------------

    async def _set_typing(self, on: bool) -> None:
        if on and time.monotonic() - self._typing_sent < TYPING_IDLE_S / 2:
            return
        self._typing_sent = time.monotonic() if on else 0.0
        with contextlib.suppress(ParleyClientError):
            await self.client.typing(self.target, on)

    def _typed(self) -> None:
        task = asyncio.ensure_future(self._set_typing(True))
        self._typing_tasks.add(task)
        task.add_done_callback(self._typing_tasks.discard)

    # --- what is typed ---------------------------------------------------------------------

    async def _read_input(self) -> None:
        while True:
            line = await self.lines.get()
            if line is None or line.strip() == "/quit":
                self.done.set()
                return
            text = line.strip()
            if text:
                await self._handle(text)

    async def _handle(self, text: str) -> None:
        """One line typed: a slash command, or a message to send."""
        if text == "/safety" and isinstance(self.target, Contact):
            number = await self.client.safety_number(self.target)
            self.term.show(safety_digits(number))
            return
        if text in {"/members", "/safety"} and self.group is not None:
            self._show_members(self.group)
            return
        if text in CALL_COMMANDS:
            try:
                await self._call_command(text)
            except (ParleyClientError, ValueError, OSError) as exc:
                self.term.show(f"not done: {exc}")
            return
        if text.split(maxsplit=1)[0] in ACTION_COMMANDS:
            await self._set_typing(False)
            try:
                await self._action_command(text)
            except (ParleyClientError, ValueError) as exc:
                self.term.show(f"not done: {exc}")
            return
        if text.split(maxsplit=1)[0] in MEDIA_COMMANDS:
            await self._set_typing(False)
            try:
                sent = await self._media_command(text)
            except (ParleyClientError, MediaError, ValueError, OSError) as exc:
                self.term.show(f"not done: {exc}")
                return
            if sent is not None:
                self.shown[sent.client_id] = sent
                self.term.show(self._render(sent))
            return
        await self._set_typing(False)
        try:
            message = await self.client.send(self.target, text)
        except (ParleyClientError, ValueError) as exc:
            self.term.show(f"not sent: {exc}")
            return
        self.shown[message.client_id] = message
        self.term.show(self._render(message))

    async def _action_command(self, text: str) -> None:
        """/reply N text, /react N [emoji], /edit N text, /delete N, /forward N CHAT...,
        /timer off|24h|7d|90d."""
        command, _, rest = text.partition(" ")
        client, term = self.client, self.term
        if command == "/timer":
            seconds = parse_timer(rest)
            await client.set_disappearing(self.target, seconds)
            term.show(f"disappearing messages: {timer_label(seconds)}")
            return
        number, _, rest = rest.strip().partition(" ")
        if not number.lstrip("#").isdigit():
            raise ValueError(f"usage: {command} N ... (N: a message's #N)")
        message = client.message(int(number.lstrip("#")))
        if message.peer != self.conversation:
            raise ValueError(f"#{message.id} is not in this chat")
        rest = rest.strip()
        if command == "/reply":
            if not rest:
                raise ValueError("usage: /reply N text")
            sent = await client.reply(message, rest)
            self.shown[sent.client_id] = sent
            term.show(self._render(sent))
        elif command == "/react":
            await client.react(message, rest)
        elif command == "/edit":
            if not rest:
                raise ValueError("usage: /edit N text")
            await client.edit(message, rest)
        elif command == "/delete":
            await client.delete_for_everyone(message)
        else:  # /forward
            chats = shlex.split(rest)
            if not chats:
                raise ValueError("usage: /forward N CHAT...")
            await client.forward(message, chats)
            term.show(f"forwarded #{message.id} to {', '.join(chats)}")
        if command in {"/react", "/edit", "/delete"}:
            term.show(self._render(client.message(message.id)))

    async def _call_command(self, text: str) -> None:
        """/call, /video, /accept, /decline, /hangup."""
        if text in {"/call", "/video"}:
            if not isinstance(self.target, Contact):
                raise ValueError("group calls are not supported")
            if self.call is not None and self.call.state is not CallState.ENDED:
                raise ValueError("already in a call: /hangup first")
            self.call = await self.client.call(self.target, video=text == "/video", **_devices())
            self.term.show(f"calling {self.target.display_name}…")
            return
        if self.call is None or self.call.state is CallState.ENDED:
            raise ValueError("no call")
        if text == "/accept":
            await self.call.accept(**_devices())
        elif text == "/decline":
            await self.call.decline()
        else:
            await self.call.hangup()

    def _show_call(self, event: Event) -> bool:
        """Show a call event; whether it was one."""
        term = self.term
        if isinstance(event, IncomingCall):
            self.call = event.call
            kind = "video" if event.call.video else "voice"
            name = event.call.contact.display_name
            term.show(f"📞 {name} is calling ({kind}): /accept or /decline")
        elif isinstance(event, CallStateChanged):
            if event.state is CallState.ELSEWHERE:
                term.show(f"a call with {event.call.contact.display_name} on another device")
            else:
                term.show(f"call: {event.state}")
        elif isinstance(event, CallEnded):
            length = f" after {int(event.record.duration)} s" if event.record.duration else ""
            term.show(
                f"call with {event.call.contact.display_name} ended: {event.record.reason}{length}"
            )
        elif isinstance(event, CallMissed):
            term.show(f"missed call from {event.contact.display_name}")
        else:
            return False
        return True

    def _show_members(self, group: Group) -> None:
        current = self.client.group(group)
        for member in current.members:
            role = " (admin)" if current.is_admin(member) else ""
            self.term.show(f"  {self.client.member_name(member)}{role}")
        self.term.show(f"Safety numbers: parley group info {current.group_id}")

    async def _media_command(self, text: str) -> Message | None:
        """/file PATH [caption], /location LAT LON [name], /download ID; the message sent."""
        try:
            command, *rest = shlex.split(text)
        except ValueError as exc:
            raise ValueError(f"cannot read that command: {exc}") from exc
        client, term = self.client, self.term
        try:
            if command == "/file":
                if not rest:
                    raise ValueError("usage: /file PATH [caption]")
                return await client.send_file(
                    self.target,
                    rest[0],
                    caption=" ".join(rest[1:]) or None,
                    progress=StatusProgress(term, f"uploading {Path(rest[0]).name}"),
                )
            if command == "/location":
                if len(rest) < 2:
                    raise ValueError("usage: /location LAT LON [name]")
                name = " ".join(rest[2:]) or None
                return await client.send_location(self.target, float(rest[0]), float(rest[1]), name)
            if len(rest) != 1 or not rest[0].isdigit():
                raise ValueError("usage: /download ID (the number after `parley download`)")
            path = await client.download(int(rest[0]), progress=StatusProgress(term, "downloading"))
            term.set_status("")
            term.show(f"saved as {path}")
            return None
        finally:
            term.set_status("")

    # --- what comes in ---------------------------------------------------------------------

    async def _show_events(self) -> None:
        async for event in self.stream:
            await self._show(event)

    async def _show(self, event: Event) -> None:
        term, color, conversation = self.term, self.ctx.color, self.conversation
        if self._show_call(event):
            return
        if isinstance(event, MessageReceived) and event.message.peer == conversation:
            self.typists.pop(event.contact.user_id, None)  # done typing: it arrived
            term.set_status(typing_status(list(self.typists.values())))
            term.show(self._render(event.message, event.contact))
            await self.client.mark_read(self.target)  # the chat is open: it has been seen
        elif isinstance(event, MessageReceived):
            where = f" in {event.group.display_name}" if event.group else ""
            term.show(f"(new message from {event.contact.display_name}{where})")
        elif (
            isinstance(event, MessageSent)
            and event.message.peer == conversation
            and event.message.client_id not in self.shown
        ):
            # sent from another of this account's devices: the whole line
            self.shown[event.message.client_id] = event.message
            term.show(self._render(event.message))
        elif isinstance(event, MessageSent | ReceiptUpdate | SendFailed):
            updated = event.messages if isinstance(event, ReceiptUpdate) else (event.message,)
            for message in updated:
                if message.peer == conversation:
                    term.show(f"  {ticks(message.state, color=color)}  {message.text}")
        elif (
            isinstance(event, MessageEdited | MessageDeleted | ReactionChanged)
            and event.message.peer == conversation
        ):
            term.show(self._render(event.message))
        elif isinstance(event, PaymentAnswered) and event.request.peer == conversation:
            term.show(self._render(event.request))  # the request, with its status now
        elif isinstance(event, TimerChanged) and event.conversation == conversation:
            who = self.client.member_name(event.set_by)
            term.show(f"{who} set disappearing messages: {timer_label(event.seconds)}")
        elif isinstance(event, Typing) and typing_here(event, conversation):
            if event.typing:
                self.typists[event.contact.user_id] = self.client.member_name(event.contact.user_id)
            else:
                self.typists.pop(event.contact.user_id, None)
            term.set_status(typing_status(list(self.typists.values())))
        elif isinstance(event, GroupUpdated) and event.group.conversation == conversation:
            term.show(group_event_line(self.client, event))
        elif isinstance(event, IdentityChanged):
            term.show(identity_warning(event.contact, color=color))
        elif (notice := notice_line(event, color=color)) is not None:
            # devices linked, unlinked or changed; history imported; signed out
            term.show(notice)
            if isinstance(event, AccountMoved):
                self.signed_out = True
                term.set_status("signed out: your number was registered on another phone")
            elif term.tty:  # the status line keeps it in view (elsewhere the line is enough)
                term.set_status(notice)
        elif isinstance(event, Disconnected) and not self.signed_out:
            term.set_status("offline, reconnecting…")
        elif isinstance(event, Connected) and not self.signed_out:
            term.set_status("")


def _devices() -> dict[str, Any]:
    """The system's microphone and speaker, where `sounddevice` can open them;
    otherwise the call sends silence and drops what it hears."""
    try:
        from parley.calling.audio import Microphone, Speaker

        return {"audio": Microphone(), "sink": Speaker()}
    except (RuntimeError, ImportError, OSError):
        return {}
