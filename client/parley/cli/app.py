"""The `parley` command's entry point: options to command, and errors to exit codes."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO

from parley.cli.chat import chat
from parley.cli.commands import actions
from parley.cli.commands.account import account, signup, whoami
from parley.cli.commands.calls import call, calls
from parley.cli.commands.contacts import contacts, safety_number
from parley.cli.commands.devices import devices
from parley.cli.commands.groups import group
from parley.cli.commands.link import link_command
from parley.cli.commands.media import download, send_file
from parley.cli.commands.messages import history, inbox, send, send_contact, send_location
from parley.cli.commands.payments import pay
from parley.cli.commands.pin import pin
from parley.cli.commands.search import search, star, starred, unstar
from parley.cli.context import Context
from parley.cli.parser import build_parser
from parley.content import MediaError
from parley.errors import ParleyClientError

__all__ = ["COMMANDS", "main", "run_app"]

ExitCodes = Sequence[tuple[type[Exception] | tuple[type[Exception], ...], int]]

COMMANDS: dict[str, Callable[[Context], Coroutine[Any, Any, None]]] = {
    "signup": signup,
    "whoami": whoami,
    "link": link_command,
    "devices": devices,
    "pin": pin,
    "account": account,
    "contacts": contacts,
    "send": send,
    "send-file": send_file,
    "send-location": send_location,
    "send-contact": send_contact,
    "download": download,
    "chat": chat,
    "inbox": inbox,
    "group": group,
    "history": history,
    "pay": pay,
    "search": search,
    "star": star,
    "unstar": unstar,
    "starred": starred,
    "reply": actions.reply,
    "react": actions.react,
    "edit": actions.edit,
    "delete": actions.delete,
    "forward": actions.forward,
    "timer": actions.timer,
    "safety-number": safety_number,
    "call": call,
    "calls": calls,
}


def run_app(
    app: Coroutine[Any, Any, None], exit_codes: ExitCodes, message: Callable[[Exception], str]
) -> int:
    """Run a command-line app's coroutine; its exit code. An error of a kind in
    `exit_codes` (the first that matches) is told on stderr as `message` says and
    exits with its code; Ctrl-C exits with 130; any other error propagates."""
    try:
        asyncio.run(app)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        for kinds, code in exit_codes:
            if isinstance(exc, kinds):
                print(message(exc), file=sys.stderr)
                return code
        raise
    return 0


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", 0) or 0
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx = Context(args, out or sys.stdout)
    return run_app(
        COMMANDS[args.command](ctx),
        [
            (ParleyClientError, 1),
            (ValueError, 2),
            # a transfer that failed or a file that did not verify; nothing was kept
            ((MediaError, OSError), 1),
        ],
        lambda exc: f"parley: {exc}",
    )
