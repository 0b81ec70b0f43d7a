"""Media through the SDK and the CLI on the local stack: Alice sends a
multi-megabyte file and a location, Bob sees them typed, downloads the file
into his profile and gets the very bytes she sent."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from parley import MessageReceived, MessageState
from parley.content import Attachment, Location
from tests.e2e.conftest import LocalStack
from tests.e2e.support import WAIT_S, Cli, acquainted, clients, expect, new_person, until_state

MB = 1024 * 1024


@pytest.mark.asyncio(loop_scope="session")
async def test_a_multi_megabyte_file_and_a_location_reach_bob_who_downloads_the_same_bytes(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    alice_account = await new_person(local_stack, home, "alice")
    bob_account = await new_person(local_stack, home, "bob")
    await acquainted(local_stack, home, {"alice": alice_account, "bob": bob_account})
    original = os.urandom(5 * MB + 4321)
    path = tmp_path / "holiday-video.mp4"
    path.write_bytes(original)
    uploaded: list[tuple[int, int]] = []

    async with clients(local_stack, home, "alice", "bob") as (alice, bob):
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
        await until_state(alice, alice_events, sent.client_id, MessageState.DELIVERED)


def test_the_cli_sends_a_file_and_a_location_and_downloads_with_progress(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    cli = Cli(local_stack, tmp_path / "home")
    alice_phone, bob_phone = cli.signup("alice"), cli.signup("bob")
    cli.run("alice", "contacts", "add", bob_phone, "Bob")
    cli.run("bob", "contacts", "add", alice_phone, "Alice")
    original = os.urandom(2 * MB + 99)
    (tmp_path / "plans.pdf").write_bytes(original)

    sent = cli.call("alice", "send-file", "Bob", str(tmp_path / "plans.pdf"), "--caption", "v2")
    assert re.search(r"^✓ 📎 plans\.pdf \(2\.1 MB\) “v2”$", sent.stdout, re.MULTILINE)
    assert "upload plans.pdf [" in sent.stderr
    assert "100%" in sent.stderr
    where = cli.call("alice", "send-location", "Bob", "-33.8568", "151.2153", "--name", "Opera")
    assert "✓ 📍 Opera https://www.openstreetmap.org/?mlat=-33.8568&mlon=151.2153" in where.stdout

    inbox = cli.call("bob", "inbox").stdout
    line = re.search(r"Alice: 📎 plans\.pdf \(2\.1 MB\) “v2” — parley download (\d+)$", inbox, re.M)
    assert line is not None, inbox
    assert "Alice: 📍 Opera https://www.openstreetmap.org/?mlat=-33.8568&mlon=151.2153" in inbox

    got = cli.call("bob", "download", line[1])
    saved = tmp_path / "home" / "profiles" / "bob" / "media" / "plans.pdf"
    assert f"as {saved}" in got.stdout
    assert "download plans.pdf [" in got.stderr
    assert "100%" in got.stderr
    assert saved.read_bytes() == original
    history = cli.call("bob", "history", "Alice").stdout
    assert f"📎 plans.pdf (2.1 MB) “v2” — saved as {saved}" in history
