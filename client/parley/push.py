"""Push notifications as the app sees them.

The service sends three kinds of push, all content-free:

    {"type": "wake"}                                   something waits: connect and sync
    {"type": "call"}                                   a call rings: connect and sync now
    {"type": "push_challenge", "challenge": "<text>"}  the token was just registered

The first two are data-only; a call push is high priority and, on iOS, an alert
(docs/PROTOCOL.md, "Ephemeral sends").

`challenge_of` tells a challenge from a wake-up; the app passes it to
`Client.verify_push`, and only then does the service use the token.

Local mode only: the local stack's push sink (GET push_url) answers the pushes
published so far, oldest first: {"id", "platform", "token", "endpoint_arn",
"message", "type", "at"}, where "message" is SNS's JSON (its "default" key holds the
data) and "type" is the data's type ("wake", "call", "push_challenge").
`challenge_from_local_push` plays the phone: it reads the challenge sent to a token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from parley.errors import ConfigurationError

__all__ = ["challenge_from_local_push", "challenge_of", "push_count"]

_MAX_CHALLENGE = 128


def challenge_of(data: Mapping[str, Any]) -> str | None:
    """The challenge a push's data carries; None for a wake-up or anything else."""
    challenge = data.get("challenge")
    if (
        data.get("type") == "push_challenge"
        and isinstance(challenge, str)
        and 0 < len(challenge) <= _MAX_CHALLENGE
    ):
        return challenge
    return None


def _data(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A sink record's push data (SNS's per-platform JSON, its "default" body)."""
    try:
        outer = json.loads(str(record.get("message", "")))
        inner = json.loads(outer["default"]) if isinstance(outer, dict) else None
    except (ValueError, KeyError, TypeError):
        return {}
    return inner if isinstance(inner, dict) else {}


async def _pushes(
    http: aiohttp.ClientSession, push_url: str, token: str
) -> list[Mapping[str, Any]]:
    async with http.get(push_url) as response:
        response.raise_for_status()
        raw = await response.json()
    if not isinstance(raw, list):
        raise ConfigurationError(f"{push_url} did not answer a list of pushes")
    return [_data(p) for p in raw if isinstance(p, dict) and p.get("token") == token]


async def push_count(push_url: str, token: str) -> int:
    """How many pushes the sink holds for `token` (to tell a new one from older ones)."""
    async with aiohttp.ClientSession() as http:
        return len(await _pushes(http, push_url, token))


async def challenge_from_local_push(
    push_url: str, token: str, *, after: int = 0, wait_s: float = 10.0
) -> str:
    """The challenge in the newest challenge push to `token`, once the sink holds more
    than `after` pushes for it."""
    deadline = time.monotonic() + wait_s
    async with aiohttp.ClientSession() as http:
        while True:
            mine = await _pushes(http, push_url, token)
            if len(mine) > after:
                found = [c for c in map(challenge_of, mine[after:]) if c is not None]
                if found:
                    return found[-1]
            if time.monotonic() >= deadline:
                raise ConfigurationError(f"no push challenge for {token} arrived at {push_url}")
            await asyncio.sleep(0.2)
