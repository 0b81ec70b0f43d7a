"""The local stack keeps its state across restarts (local/state.py): a clean stop
and a crash after the last save lose nothing; --fresh forgets on purpose, and a
profile of the forgotten stack says so; a state that cannot be loaded, or one
another stack holds, is refused in plain words."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from local.state import STATE_FILE, read_state
from local.testing import stack_environment
from parley import Client, MessageReceived, MessageState
from parley.content import Attachment
from parley.errors import AccountGone
from parley.local_sms import sms_count
from tests.e2e.conftest import ROOT, LocalStack, start_local_stack, stop
from tests.e2e.support import (
    WAIT_S,
    Cli,
    acquainted,
    client,
    clients,
    expect,
    new_person,
    until_state,
)


def _started(tmp_path: Path, name: str, state: Path, *args: str) -> Any:
    directory = tmp_path / name
    directory.mkdir()
    return start_local_stack(directory, "--state-dir", str(state), *args)


async def _saved(state: Path, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The saved state once `done` holds of it (each save replaces the file whole)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        saved = read_state(state)
        if saved is not None and done(saved):
            return saved
        if time.monotonic() > deadline:
            raise AssertionError(f"the state in {state} never got there: {saved}")
        await asyncio.sleep(0.1)


def _refused(url: str) -> None:
    """Return once nothing listens at `url` any more (AssertionError after WAIT_S)."""
    address = urlsplit(url)
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            socket.create_connection((address.hostname, address.port), timeout=1.0).close()
        except ConnectionRefusedError:
            return
        assert time.monotonic() < deadline, f"{url} still answers"
        time.sleep(0.05)


def _mailbox_keys(items: list[dict[str, Any]], device: str) -> set[str]:
    return {item["sk"]["S"] for item in items if item["device"]["S"] == device}


async def _receive(bob: Client, count: int) -> list[MessageReceived]:
    events = bob.events()
    got = [await expect(events, MessageReceived) for _ in range(count)]
    await asyncio.wait_for(bob.wait_synced(), WAIT_S)
    return got


async def _until_mailbox_empty(stack: LocalStack, user_id: str, device_id: str) -> None:
    """An ack deletes after it answers: the mailbox empties soon after the receipt."""
    deadline = time.monotonic() + WAIT_S
    while stack.mailbox(user_id, device_id):
        assert time.monotonic() < deadline, stack.mailbox(user_id, device_id)
        await asyncio.sleep(0.05)


def _second_stack(state: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    directory.mkdir()
    return subprocess.run(
        [sys.executable, "-m", "local", "--port", "0", "--state-dir", str(state)],
        cwd=ROOT,
        env=stack_environment(directory / "local.json", {"PYTHONUNBUFFERED": "1"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_accounts_messages_and_files_survive_a_clean_stop_and_a_crash(
    tmp_path: Path,
) -> None:
    state, home = tmp_path / "state", tmp_path / "home"
    photo = os.urandom(200_000)
    (tmp_path / "boat.jpg").write_bytes(photo)

    # 1. Alice writes to Bob, who is offline, and sends a file; the stack stops cleanly
    with _started(tmp_path, "first", state) as first:
        alice_account = await new_person(first, home, "alice")
        bob_account = await new_person(first, home, "bob")
        await acquainted(first, home, {"alice": alice_account, "bob": bob_account})
        async with clients(first, home, "alice") as (alice,):
            events = alice.events()
            await alice.add_contact(bob_account.phone, "Bob")
            text = await alice.send("Bob", "written before the restart")
            filed = await alice.send_file("Bob", tmp_path / "boat.jpg", caption="the boat")
            for sent in (text, filed):
                await until_state(alice, events, sent.client_id, MessageState.SENT)
            alice_phone = alice.account.phone
        assert stop(first.process) == 0

    # 2. On the same state: Bob gets both and the file; the old tokens still work
    with _started(tmp_path, "second", state) as second:
        printed = second.output()
        assert "Restored local state" in printed, printed
        assert "2 accounts" in printed, printed
        assert "2 envelopes waiting in mailboxes" in printed, printed
        assert "1 media objects" in printed, printed
        assert await sms_count(second.sms_url, alice_phone) == 1  # the sink's history too
        # a second stack on this state is refused, naming the one that holds it
        refused = _second_stack(state, tmp_path / "intruder")
        assert refused.returncode == 1
        assert f"in use by another local stack (pid {second.process.pid})" in refused.stderr
        assert "--state-dir" in refused.stderr
        assert "Traceback" not in refused.stdout + refused.stderr

        async with clients(second, home, "bob") as (bob,):
            got = await _receive(bob, 2)
            by_id = {event.message.client_id: event for event in got}
            assert by_id[text.client_id].message.text == "written before the restart"
            attachment = by_id[filed.client_id].content
            assert isinstance(attachment, Attachment)
            saved = await bob.download(by_id[filed.client_id].message)
            assert saved.read_bytes() == photo
            # the refresh token issued before the restart trades for a new pair
            await bob.api.refresh()
        await _until_mailbox_empty(second, bob_account.user_id, bob_account.device_id)

        # 3. Bob is offline again; Alice writes; once that is saved, the stack is killed
        async with clients(second, home, "alice") as (alice,):
            events = alice.events()
            for sent in (text, filed):  # receipts reach Alice over her old session
                await until_state(alice, events, sent.client_id, MessageState.DELIVERED)
            late = await alice.send("Bob", "written before the crash")
            await until_state(alice, events, late.client_id, MessageState.SENT)
        bob_device = f"{bob_account.user_id}#{bob_account.device_id}"
        waiting = {i["sk"]["S"] for i in second.mailbox(bob_account.user_id, bob_account.device_id)}
        assert waiting
        await _saved(state, lambda s: _mailbox_keys(s["tables"]["Mailbox"], bob_device) == waiting)
        second.process.kill()
        second.process.wait()
        # moto's own process (local/moto_process.py) goes with the stack it served
        await asyncio.to_thread(_refused, second.aws_endpoint_url)

    # 4. After the crash: what was saved is there
    with _started(tmp_path, "third", state) as third:
        async with clients(third, home, "bob") as (bob,):
            (crashed,) = await _receive(bob, 1)
            assert crashed.message.text == "written before the crash"
            assert crashed.message.client_id == late.client_id
        assert stop(third.process) == 0

    # 5. --fresh forgets: nothing is restored and Alice's profile says why it is useless
    with _started(tmp_path, "fourth", state, "--fresh") as fourth:
        assert "Restored" not in fourth.output()
        assert fourth.mailbox(bob_account.user_id, bob_account.device_id) == []
        with pytest.raises(AccountGone, match="--fresh") as gone:
            await client(fourth, home, "alice").open()
        assert gone.value.reason == "forgotten"
        cli = Cli(fourth, home)
        out = cli.run("alice", "send", "Bob", "hello?", ok=False)
        assert "data has since been discarded" in out, out
        assert "parley --profile alice signup" in out, out
        # no status code; the path it names lies under pytest's numbered temporary directory
        assert "401" not in out.replace(str(tmp_path), "<tmp>"), out
        # what the profile holds stays readable offline
        assert "written before the crash" in cli.run("alice", "history", "Bob")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"format": 1, "stack_id": "0011", "tables": {"Users": [{"pk"', id="half"),
        pytest.param(b"\x00\x17garbage", id="garbage"),
    ],
)
def test_a_state_that_cannot_be_loaded_is_refused_in_plain_words(
    tmp_path: Path, content: bytes
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / STATE_FILE).write_bytes(content)
    done = _second_stack(state, tmp_path / "stack")
    assert done.returncode == 1
    assert "cannot load the local state" in done.stderr, done.stderr
    assert f"python -m local --fresh --state-dir {state}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "stack" / "local.json").exists()
    assert (state / STATE_FILE).read_bytes() == content  # refused, not overwritten


@pytest.mark.asyncio(loop_scope="session")
async def test_a_signed_out_device_is_told_so_and_how_to_link_it_again(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    laptop = await new_person(local_stack, home, "laptop")
    async with clients(local_stack, home, "laptop") as (signed_in,):
        # as the owner does from another device: the laptop keeps its tokens
        await signed_in.api.remove_device(laptop.device_id)
        with pytest.raises(AccountGone) as gone:
            await signed_in.api.refresh()
    assert gone.value.reason == "signed_out"
    assert gone.value.code == "device_signed_out"
    out = Cli(local_stack, home).run("laptop", "devices", ok=False)
    assert "has been signed out" in out, out
    assert "link this device again" in out, out
    assert "parley --profile laptop signup <phone>" in out, out


async def test_an_ephemeral_stack_keeps_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with _started(tmp_path, "first", state, "--ephemeral") as stack:
        person = await new_person(stack, tmp_path / "home", "alice")
        assert person.user_id
        assert stop(stack.process) == 0
    # no directory, no lock, no save: the next stack there starts empty
    assert not state.exists()
