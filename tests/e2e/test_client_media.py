"""Media through the SDK and the CLI on the local stack: Alice sends a
multi-megabyte file and a location, Bob sees them typed, downloads the file
into his profile and gets the very bytes she sent."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from parley import Client, Endpoints, Event, EventStream, MessageReceived, MessageState, sign_up
from parley.client import request_code
from parley.local_sms import code_from_local_sms, sms_count
from parley.media import Attachment, Location
from parley.models import Account
from tests.e2e.conftest import LocalStack

WAIT_S = 30.0  # a guard against hanging, not a measurement
MB = 1024 * 1024
E = TypeVar("E", bound=Event)
_numbers = itertools.count(random.randint(0, 5000))


def phone() -> str:
    return f"+1415558{next(_numbers) % 10000:04d}"


async def new_person(stack: LocalStack, home: Path, profile: str) -> Account:
    number = phone()
    endpoints = Endpoints.local(stack.local_file)
    before = await sms_count(stack.sms_url, number)
    await request_code(number, endpoints=endpoints)
    code = await code_from_local_sms(stack.sms_url, number, after=before)
    return await sign_up(
        profile, number, code, endpoints=endpoints, home=home, allow_plaintext=True
    )


def client(stack: LocalStack, home: Path, profile: str) -> Client:
    return Client(profile, endpoints=Endpoints.local(stack.local_file), home=home, keyring=None)


async def expect(
    stream: EventStream, kind: type[E], match: Callable[[E], bool] = lambda _e: True
) -> E:
    async with asyncio.timeout(WAIT_S):
        async for event in stream:
            if isinstance(event, kind) and match(event):
                return event
    raise AssertionError("the stream ended")


@pytest.mark.asyncio(loop_scope="session")
async def test_a_multi_megabyte_file_and_a_location_reach_bob_who_downloads_the_same_bytes(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    await new_person(local_stack, home, "alice")
    bob_account = await new_person(local_stack, home, "bob")
    original = os.urandom(5 * MB + 4321)
    path = tmp_path / "holiday-video.mp4"
    path.write_bytes(original)
    uploaded: list[tuple[int, int]] = []

    async with client(local_stack, home, "alice") as alice, client(local_stack, home, "bob") as bob:
        alice_events, bob_events = alice.events(), bob.events()
        await asyncio.wait_for(bob.wait_synced(), WAIT_S)
        await alice.add_contact(bob_account.phone, "Bob")

        sent = await alice.send_file(
            "Bob", path, caption="from the boat", progress=lambda d, t: uploaded.append((d, t))
        )
        where = await alice.send_location("Bob", 43.7384, 7.4246, "Monaco harbour")

        got_file = await expect(bob_events, MessageReceived)
        got_place = await expect(bob_events, MessageReceived)
        video = got_file.content
        assert isinstance(video, Attachment)
        assert (video.kind, video.name, video.size, video.caption) == (
            "video",
            "holiday-video.mp4",
            len(original),
            "from the boat",
        )
        assert got_file.message.client_id == sent.client_id
        assert got_place.content == Location(43.7384, 7.4246, "Monaco harbour")
        assert got_place.message.client_id == where.client_id
        assert got_place.message.text == "📍 Monaco harbour"
        assert uploaded[-1][0] == uploaded[-1][1] > len(original)  # the ciphertext went up

        downloaded: list[int] = []
        saved = await bob.download(got_file.message, progress=lambda d, _t: downloaded.append(d))

        assert saved == home / "profiles" / "bob" / "media" / "holiday-video.mp4"
        assert saved.read_bytes() == original
        assert downloaded[-1] == uploaded[-1][1]
        assert [p.name for p in saved.parent.iterdir()] == ["holiday-video.mp4"]
        # Bob's history keeps both, typed, and remembers the download
        history = bob.history(alice.account.user_id)
        assert [m.kind for m in history] == ["video", "location"]
        assert history[0].file == saved
        # and Alice's file got its double tick (the store changes before each event)
        async with asyncio.timeout(WAIT_S):
            while (mine := alice.store.message(sent.sender, sent.client_id)) is None or (
                mine.state.rank < MessageState.DELIVERED.rank
            ):
                await anext(alice_events)


class Cli:
    def __init__(self, stack: LocalStack, home: Path) -> None:
        self.home = home
        self.env = dict(
            os.environ, PARLEY_HOME=str(home), PARLEY_LOCAL_FILE=str(stack.local_file), NO_COLOR="1"
        )
        self.env.pop("PARLEY_PASSPHRASE", None)

    def run(self, profile: str, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "parley.cli", "--profile", profile, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WAIT_S * 2,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def signup(self, profile: str) -> str:
        number = phone()
        self.run(profile, "signup", number, "--code-from-local-sms", "--insecure-dev-store")
        return number


def test_the_cli_sends_a_file_and_a_location_and_downloads_with_progress(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    cli = Cli(local_stack, tmp_path / "home")
    alice_phone, bob_phone = cli.signup("alice"), cli.signup("bob")
    cli.run("alice", "contacts", "add", bob_phone, "Bob")
    cli.run("bob", "contacts", "add", alice_phone, "Alice")
    original = os.urandom(2 * MB + 99)
    (tmp_path / "plans.pdf").write_bytes(original)

    sent = cli.run("alice", "send-file", "Bob", str(tmp_path / "plans.pdf"), "--caption", "v2")
    assert re.search(r"^✓ 📎 plans\.pdf \(2\.1 MB\) “v2”$", sent.stdout, re.MULTILINE)
    assert "upload plans.pdf [" in sent.stderr
    assert "100%" in sent.stderr
    where = cli.run("alice", "send-location", "Bob", "-33.8568", "151.2153", "--name", "Opera")
    assert "✓ 📍 Opera https://www.openstreetmap.org/?mlat=-33.8568&mlon=151.2153" in where.stdout

    inbox = cli.run("bob", "inbox").stdout
    line = re.search(r"Alice: 📎 plans\.pdf \(2\.1 MB\) “v2” — parley download (\d+)$", inbox, re.M)
    assert line is not None, inbox
    assert "Alice: 📍 Opera https://www.openstreetmap.org/?mlat=-33.8568&mlon=151.2153" in inbox

    got = cli.run("bob", "download", line[1])
    saved = tmp_path / "home" / "profiles" / "bob" / "media" / "plans.pdf"
    assert f"as {saved}" in got.stdout
    assert "download plans.pdf [" in got.stderr
    assert "100%" in got.stderr
    assert saved.read_bytes() == original
    history = cli.run("bob", "history", "Alice").stdout
    assert f"📎 plans.pdf (2.1 MB) “v2” — saved as {saved}" in history
