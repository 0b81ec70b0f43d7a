"""Push tokens on the local stack, through the SDK: the challenge travels as a real
push (GroupFanout publishes it, the push sink records it), the app sends it back,
and only then do wake-ups go to the token. Someone who registers Alice's token
never sees her challenge, so her wake-ups go on."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import aiohttp
import pytest

from parley.errors import ApiError
from parley.push import challenge_from_local_push, push_count
from tests.e2e.conftest import LocalStack
from tests.e2e.support import WAIT_S, acquainted, client, new_person

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _wakes(stack: LocalStack, token: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(stack.push_url) as r:
        pushed = await r.json()
    return sum(
        1
        for p in pushed
        if p["token"] == token
        and json.loads(json.loads(p["message"])["default"]) == {"type": "wake"}
    )


async def _until_woken(stack: LocalStack, token: str, before: int) -> None:
    async with asyncio.timeout(WAIT_S):
        while await _wakes(stack, token) <= before:  # noqa: ASYNC110 (the sink is polled)
            await asyncio.sleep(0.1)


async def test_a_hijacked_token_keeps_waking_its_owner(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    alice = await new_person(local_stack, tmp_path, "alice")
    mallory = await new_person(local_stack, tmp_path, "mallory")
    await acquainted(local_stack, tmp_path, {"alice": alice, "mallory": mallory})
    token = f"alice-phone-{secrets.token_hex(8)}"

    async with client(local_stack, tmp_path, "alice", connect=False) as app:
        before = await push_count(local_stack.push_url, token)
        registered = await app.register_push("fcm", token)
        assert registered.challenge_sent is True
        # the app's push handler: the challenge arrives as a push to its token
        challenge = await challenge_from_local_push(local_stack.push_url, token, after=before)
        await app.verify_push(challenge)

    async with client(local_stack, tmp_path, "mallory", connect=False) as app:
        await app.register_push("fcm", token)  # Alice's token: her phone gets the challenge
        with pytest.raises(ApiError) as refused:
            await app.verify_push("a-guess-at-the-challenge")
        assert refused.value.code == "invalid_push_challenge"
        await app.register_push("fcm", f"mallory-phone-{secrets.token_hex(8)}")

    # Alice is offline: Mallory's message wakes her phone
    woken = await _wakes(local_stack, token)
    async with client(local_stack, tmp_path, "mallory") as app:
        await app.send(alice.phone, "are you there?")
        async with asyncio.timeout(WAIT_S):
            await app.wait_outbox_empty()
    await _until_woken(local_stack, token, woken)
