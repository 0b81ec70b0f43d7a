"""The `parley` CLI end to end: two people, two profiles, one machine."""

from __future__ import annotations

import itertools
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import LocalStack

WAIT_S = 30.0  # a guard against hanging, not a measurement
_numbers = itertools.count(random.randint(0, 5000))


class Cli:
    def __init__(self, stack: LocalStack, home: Path) -> None:
        self.env = dict(
            os.environ,
            PARLEY_HOME=str(home),
            PARLEY_LOCAL_FILE=str(stack.local_file),
            NO_COLOR="1",
        )
        self.env.pop("PARLEY_PASSPHRASE", None)

    def command(self, profile: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "parley.cli", "--profile", profile, *args]

    def run(self, profile: str, *args: str, ok: bool = True) -> str:
        done = subprocess.run(
            self.command(profile, *args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WAIT_S,
            check=False,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    def signup(self, profile: str) -> str:
        phone = f"+1415557{next(_numbers) % 10000:04d}"
        out = self.run(profile, "signup", phone, "--code-from-local-sms", "--insecure-dev-store")
        assert "Signed up as" in out
        return phone


@pytest.fixture
def cli(local_stack: LocalStack, tmp_path: Path) -> Cli:
    return Cli(local_stack, tmp_path)


def test_signup_contacts_send_inbox_history_and_safety_numbers(cli: Cli) -> None:
    alice_phone = cli.signup("alice")
    bob_phone = cli.signup("bob")

    whoami = cli.run("alice", "whoami")
    assert alice_phone in whoami
    assert "NOT ENCRYPTED (plaintext dev mode)" in whoami
    alice_id = re.search(r"user id\s+([0-9a-f]{32})", whoami)
    assert alice_id is not None

    assert "Added Bob" in cli.run("alice", "contacts", "add", bob_phone, "Bob")
    assert "Added Alice" in cli.run("bob", "contacts", "add", alice_phone, "Alice")
    assert "Bob" in cli.run("alice", "contacts", "list")

    sent = cli.run("alice", "send", "Bob", "Hello from the command line")
    assert "✓ Hello from the command line" in sent

    inbox = cli.run("bob", "inbox")
    assert "Alice: Hello from the command line" in inbox

    # Alice picks up the delivered receipt; her history shows ✓✓
    cli.run("alice", "inbox")
    history = cli.run("alice", "history", "Bob")
    assert re.search(r"you: Hello from the command line  ✓✓$", history, re.MULTILINE)

    numbers = [
        re.findall(r"(?:\d{5} ){11}\d{5}", cli.run(who, "safety-number", other))
        for who, other in (("alice", "Bob"), ("bob", "Alice"))
    ]
    assert numbers[0] == numbers[1]
    assert len(numbers[0]) == 1


def test_chat_shows_incoming_messages_and_sends_what_is_typed(cli: Cli) -> None:
    alice_phone = cli.signup("alice")
    bob_phone = cli.signup("bob")
    cli.run("alice", "contacts", "add", bob_phone, "Bob")
    cli.run("bob", "contacts", "add", alice_phone, "Alice")

    chat = subprocess.Popen(
        cli.command("bob", "chat", "Alice"),
        env=cli.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert chat.stdout is not None
    assert chat.stdin is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in chat.stdout or []])
    reader.start()

    def wait_for(pattern: str) -> str:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if re.search(pattern, line):
                return line
        raise AssertionError(f"chat never printed {pattern!r}")

    try:
        wait_for(r"^Chat with Alice")
        cli.run("alice", "send", "Bob", "Are you in the chat?")
        wait_for(r"Alice: Are you in the chat\?")
        chat.stdin.write("Yes, typing from the chat\n")
        chat.stdin.flush()
        wait_for(r"✓\s+Yes, typing from the chat")  # the server took it
        chat.stdin.write("/quit\n")
        chat.stdin.flush()
        assert chat.wait(timeout=WAIT_S) == 0
    finally:
        if chat.poll() is None:
            chat.kill()
        reader.join(timeout=5)

    assert "Bob: Yes, typing from the chat" in cli.run("alice", "inbox")
    # the chat was open when Alice's message arrived: Bob read it (blue ticks for her)
    assert re.search(r"you: Are you in the chat\?  ✓✓ read", cli.run("alice", "history", "Bob"))


def test_commands_fail_clearly_without_an_account_or_a_contact(cli: Cli) -> None:
    missing = cli.run("nobody", "history", "Bob", ok=False)
    assert "sign up first" in missing
    cli.signup("carol")
    assert "no contact 'Dave'" in cli.run("carol", "send", "Dave", "hi", ok=False)
