"""Attachment throughput and client memory: encrypt+upload and download+decrypt
on the local stack (`python -m local` in a child process, so the memory traced
here is the client's alone).

One user uploads, another downloads, through the HTTP API's presigned POST and
GET. Each size is transferred once for time and once more under tracemalloc
for memory (tracing slows Python down).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import tempfile
import time
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from bench.report import Figure, print_table
from local.testing import LocalStack, running_local_stack
from parley.attachments.transfer import download_attachment, upload_attachment

__all__ = ["main", "run"]

MB = 1024 * 1024


class _Api:
    """POST /v1/media and GET /v1/media/{id} over the local stack's HTTP API."""

    def __init__(self, stack: LocalStack, http: aiohttp.ClientSession, token: str) -> None:
        self._base = stack.http_url
        self._http = http
        self._auth = {"authorization": f"Bearer {token}"}

    async def create_media(self, size: int) -> Mapping[str, Any]:
        async with self._http.post(
            f"{self._base}/v1/media", json={"size": size}, headers=self._auth
        ) as answer:
            answer.raise_for_status()
            body: dict[str, Any] = await answer.json()
            return body

    async def media_url(self, media_id: str) -> str:
        async with self._http.get(f"{self._base}/v1/media/{media_id}", headers=self._auth) as r:
            r.raise_for_status()
            url: str = (await r.json())["url"]
            return url


async def _sign_up(stack: LocalStack, http: aiohttp.ClientSession) -> str:
    """A new user's access token (the code comes from the local SMS sink)."""
    phone = f"+4479111{secrets.randbelow(10**5):05d}"
    async with http.post(f"{stack.http_url}/v1/auth/otp", json={"phone": phone}) as r:
        r.raise_for_status()
    async with http.get(stack.sms_url) as r:
        texts = [m["message"] for m in await r.json() if m["phone"] == phone]
    code = re.search(r"\b(\d{6})\b", texts[-1])
    if code is None:
        raise RuntimeError("no sign-up code in the SMS sink")
    async with http.post(
        f"{stack.http_url}/v1/auth/verify", json={"phone": phone, "code": code[1]}
    ) as r:
        r.raise_for_status()
        token: str = (await r.json())["access_token"]
        return token


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(MB)
    with open(path, "wb") as out:
        for offset in range(0, size, MB):
            out.write(block[: min(MB, size - offset)])


async def _users(stack: LocalStack) -> tuple[str, str]:
    async with aiohttp.ClientSession() as http:
        return await _sign_up(stack, http), await _sign_up(stack, http)


async def _transfer(
    stack: LocalStack, tokens: tuple[str, str], src: Path, inbox: Path, *, trace: bool
) -> tuple[float, float]:
    """(seconds, seconds) or, when tracing, (peak bytes, peak bytes): upload, download."""
    async with aiohttp.ClientSession() as http:
        sender, receiver = (_Api(stack, http, token) for token in tokens)
        if trace:
            tracemalloc.start()
        try:
            started = time.perf_counter()
            attachment = await upload_attachment(http, sender, src)
            uploaded = time.perf_counter()
            if trace:
                _, up_peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
            out = await download_attachment(http, receiver, attachment, inbox)
            downloaded = time.perf_counter()
            if trace:
                _, down_peak = tracemalloc.get_traced_memory()
        finally:
            if trace:
                tracemalloc.stop()
    out.unlink()
    if trace:
        return float(up_peak), float(down_peak)
    return uploaded - started, downloaded - uploaded


def run(quick: bool = False) -> list[Figure]:
    sizes = [4 * MB, 16 * MB] if quick else [8 * MB, 50 * MB]
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as work:
        folder = Path(work)
        with running_local_stack(folder, "--quiet") as stack:
            tokens = asyncio.run(_users(stack))
            # the first media calls pay the handlers' cold start: keep it out of the figures
            _make_file(folder / "warm-up.bin", 64 * 1024)
            asyncio.run(
                _transfer(stack, tokens, folder / "warm-up.bin", folder / "in", trace=False)
            )
            for size in sizes:
                src = folder / f"plain-{size}.bin"
                _make_file(src, size)
                up_s, down_s = asyncio.run(
                    _transfer(stack, tokens, src, folder / "in", trace=False)
                )
                up_peak, down_peak = asyncio.run(
                    _transfer(stack, tokens, src, folder / "in", trace=True)
                )
                src.unlink()
                label = f"{size // MB} MB file"
                how = "one transfer on the local stack (loopback), 2-core machine"
                figures += [
                    Figure("media", f"encrypt+upload, {label}", size / MB / up_s, "MB/s", how),
                    Figure("media", f"download+decrypt, {label}", size / MB / down_s, "MB/s", how),
                    Figure(
                        "media",
                        f"client peak, upload {label}",
                        up_peak / 1024,
                        "KiB",
                        "tracemalloc peak during upload_attachment",
                    ),
                    Figure(
                        "media",
                        f"client peak, download {label}",
                        down_peak / 1024,
                        "KiB",
                        "tracemalloc peak during download_attachment",
                    ),
                ]
    return figures


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
