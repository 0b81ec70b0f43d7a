"""Deleting an account from the SDK and the CLI, against the whole local stack: the
account is gone for the people it talked to, and its profile is gone from the
machine."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from parley import MessageReceived, SendFailed
from parley.errors import AuthenticationError, NotFound
from parley.local_sms import code_from_local_sms, sms_count
from parley.profiles import profile_dir
from tests.e2e.conftest import LocalStack
from tests.e2e.support import WAIT_S, Cli, client, expect, new_person


async def test_alice_deletes_her_account_and_bob_can_no_longer_reach_it(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    alice = await new_person(local_stack, tmp_path, "alice")
    bob = await new_person(local_stack, tmp_path, "bob")
    async with client(local_stack, tmp_path, "bob") as bobs:
        bob_events = bobs.events()
        async with client(local_stack, tmp_path, "alice") as alices:
            await asyncio.wait_for(alices.wait_synced(), WAIT_S)
            await bobs.add_contact(alice.phone, "Alice")
            await bobs.send("Alice", "hi")
            await expect(alices.events(), MessageReceived)

            # a wrong code is refused and changes nothing
            before = await sms_count(local_stack.sms_url, alice.phone)
            await alices.request_account_deletion_code()
            code = await code_from_local_sms(local_stack.sms_url, alice.phone, after=before)
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            with pytest.raises(AuthenticationError) as refused:
                await alices.delete_account(wrong)
            assert refused.value.code == "invalid_code"
            assert [d.device_id for d in await alices.devices()] == [alice.device_id]

            await alices.delete_account(code)

        # the profile is gone from this machine
        assert not profile_dir("alice", tmp_path).exists()
        # and the account from the service: Bob's next message to her is refused
        await bobs.send("Alice", "are you there?")
        failed = await expect(bob_events, SendFailed)
        assert failed.code == "unknown_user"
        with pytest.raises(NotFound):
            await bobs.api.lookup(alice.phone)
        with pytest.raises(NotFound):
            await bobs.api.bundles(alice.user_id)
    assert bob.user_id != alice.user_id


def test_the_cli_asks_for_the_number_and_then_deletes_the_account(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    cli = Cli(local_stack, tmp_path)
    phone = cli.signup("carol")
    other = cli.signup("dan")
    cli.run("dan", "contacts", "add", phone, "Carol")

    # the wrong number typed at the prompt: nothing is deleted
    refused = subprocess.run(
        cli.command("carol", "account", "delete", "--code-from-local-sms"),
        input="+1 555 000 0000\n",
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=WAIT_S * 2,
        check=False,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "nothing was deleted" in refused.stderr
    assert phone in cli.run("carol", "whoami")

    # the right number, typed as people type it
    typed = f"{phone[:2]} {phone[2:5]}-{phone[5:]}\n"
    done = subprocess.run(
        cli.command("carol", "account", "delete", "--code-from-local-sms"),
        input=typed,
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=WAIT_S * 2,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Deleted the account of {phone}" in done.stdout
    assert not profile_dir("carol", tmp_path).exists()
    # Carol's number belongs to nobody now; Dan, who has her as a contact, sees that
    gone = cli.call("dan", "contacts", "add", phone, "Carol again", ok=False)
    assert gone.returncode == 1, gone.stdout + gone.stderr
    # and it signs up afresh, as a new account, with --yes for the script's sake
    again = cli.run("carol", "signup", phone, "--code-from-local-sms", "--insecure-dev-store")
    assert "Signed up as" in again
    assert other != phone
    cli.run("carol", "account", "delete", "--yes", "--code-from-local-sms")
    assert not profile_dir("carol", tmp_path).exists()
