"""Local mode only: read a sign-up code from the local stack's SMS sink.

The sink (GET sms_url) answers a JSON list of the SMS the service sent,
oldest first: {"id", "phone", "message": "Your Parley code is 123456", "at"}.
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp

from parley.errors import ConfigurationError

__all__ = ["code_from_local_sms", "sms_count"]

_CODE = re.compile(r"\b(\d{6})\b")


async def _messages(http: aiohttp.ClientSession, sms_url: str) -> list[dict[str, object]]:
    async with http.get(sms_url) as response:
        response.raise_for_status()
        raw = await response.json()
    if not isinstance(raw, list):
        raise ConfigurationError(f"{sms_url} did not answer a list of SMS")
    return [m for m in raw if isinstance(m, dict)]


async def sms_count(sms_url: str, phone: str) -> int:
    """How many SMS the sink holds for `phone` (to tell a new one from older ones)."""
    async with aiohttp.ClientSession() as http:
        return sum(1 for m in await _messages(http, sms_url) if m.get("phone") == phone)


async def code_from_local_sms(
    sms_url: str, phone: str, *, after: int = 0, wait_s: float = 10.0
) -> str:
    """The code in the newest SMS to `phone`, once the sink holds more than `after` of them."""
    deadline = time.monotonic() + wait_s
    async with aiohttp.ClientSession() as http:
        while True:
            mine = [m for m in await _messages(http, sms_url) if m.get("phone") == phone]
            if len(mine) > after:
                match = _CODE.search(str(mine[-1].get("message", "")))
                if match:
                    return match.group(1)
            if time.monotonic() >= deadline:
                raise ConfigurationError(f"no sign-up code for {phone} arrived at {sms_url}")
            await asyncio.sleep(0.2)
