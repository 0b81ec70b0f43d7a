"""The chat's terminal: a prompt line that survives output printed while one types, a
status line, and the keyboard read key by key on a TTY (line by line elsewhere)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from parley.cli.render import DIM, RESET

__all__ = ["KeyboardInput", "StatusProgress", "Terminal"]


class Terminal:
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


class KeyboardInput:
    """Stdin fed into `lines` (None at its end); on a TTY key by key, edited in the
    terminal's prompt, with `on_typing` called for each character typed."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        term: Terminal,
        lines: asyncio.Queue[str | None],
        on_typing: Callable[[], Any],
    ) -> None:
        self.loop = loop
        self.term = term
        self.lines = lines
        self.on_typing = on_typing
        self.fd = sys.stdin.fileno()
        self._saved: list[Any] | None = None

    def start(self) -> None:
        if not self.term.tty:
            self.loop.add_reader(self.fd, self._read_line)
            return
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self.term.set_status("")
        self.loop.add_reader(self.fd, self._read_key)

    def stop(self) -> None:
        """Stop reading, and give the terminal back its settings."""
        self.loop.remove_reader(self.fd)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def _read_line(self) -> None:
        line = sys.stdin.readline()
        self.lines.put_nowait(line if line else None)
        if not line:
            self.loop.remove_reader(self.fd)

    def _read_key(self) -> None:
        term = self.term
        data = os.read(self.fd, 1024).decode(errors="ignore")
        for char in data:
            if char in "\r\n":
                line, term.buffer = term.buffer, ""
                term.out.write("\r\x1b[K")
                term.set_status(term.status)
                self.lines.put_nowait(line)
            elif char == "\x04":  # Ctrl-D
                self.lines.put_nowait(None)
            elif char in "\x7f\x08":
                term.buffer = term.buffer[:-1]
                term.set_status(term.status)
            elif char.isprintable():
                term.buffer += char
                term.set_status(term.status)
                self.on_typing()


class StatusProgress:
    """A transfer's progress in the chat's status line (each quarter off a terminal)."""

    def __init__(self, term: Terminal, label: str) -> None:
        self.term = term
        self.label = label
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 if total <= 0 else max(0, min(100, done * 100 // total))
        step = percent if self.term.tty else percent // 25 * 25
        if step != self._shown:
            self._shown = step
            self.term.set_status(f"{self.label} {percent}%")
