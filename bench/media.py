"""Attachment throughput and client memory: encrypt+upload and download+decrypt.

S3 is moto's server in a child process (as in the local stack), so the peak
memory traced here is the client's alone. The two HTTP API calls are answered
by the server's media use cases in-process: they are two small JSON requests
and do not move the figures. Each size is transferred once for time and once
more under tracemalloc for memory (tracing slows Python down).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import boto3

from bench.report import Figure, print_table
from parley.attachments import download_attachment, upload_attachment
from parley.media import Attachment
from parley_server.config import Limits
from parley_server.logic import media
from parley_server.store.media import MediaStore, s3_client
from parley_server.store.schema import create_table_kwargs, table

__all__ = ["main", "run"]

MB = 1024 * 1024
_BUCKET = "parley-bench-media"
_TABLE = "parley-bench-users"
_OWNER = "b" * 32
_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _s3_server() -> Iterator[None]:
    """moto's server in a child process; the AWS variables point at it meanwhile."""
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved = {k: os.environ.get(k) for k in [*_ENV, "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"]}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        os.environ.update(_ENV, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
        os.environ.pop("AWS_SESSION_TOKEN", None)
        yield
    finally:
        child.terminate()
        child.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _Api:
    """POST /v1/media and GET /v1/media/{id}, answered by the use cases directly."""

    def __init__(self) -> None:
        self._store = MediaStore(
            s3_client(), boto3.client("dynamodb"), bucket=_BUCKET, table=_TABLE
        )
        self._limits = Limits()

    async def create_media(self, size: int) -> Mapping[str, Any]:
        return await asyncio.to_thread(
            media.create_upload,
            self._store,
            owner=_OWNER,
            size=media.parse_upload_request({"size": size}, self._limits),
            limits=self._limits,
            now=int(time.time()),
        )

    async def media_url(self, media_id: str) -> str:
        link = await asyncio.to_thread(
            media.download_link, self._store, media_id=media_id, now=int(time.time())
        )
        url: str = link["url"]
        return url


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(MB)
    with open(path, "wb") as out:
        for offset in range(0, size, MB):
            out.write(block[: min(MB, size - offset)])


async def _round_trip(api: _Api, src: Path, inbox: Path) -> tuple[float, float]:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        attachment: Attachment = await upload_attachment(session, api, src)
        uploaded = time.perf_counter()
        out = await download_attachment(session, api, attachment, inbox)
        downloaded = time.perf_counter()
    out.unlink()
    return uploaded - started, downloaded - uploaded


async def _peaks(api: _Api, src: Path, inbox: Path) -> tuple[int, int]:
    async with aiohttp.ClientSession() as session:
        tracemalloc.start()
        try:
            attachment = await upload_attachment(session, api, src)
            _, up_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            out = await download_attachment(session, api, attachment, inbox)
            _, down_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    out.unlink()
    return up_peak, down_peak


def run(quick: bool = False) -> list[Figure]:
    sizes = [4 * MB, 16 * MB] if quick else [8 * MB, 50 * MB]
    figures: list[Figure] = []
    with _s3_server(), tempfile.TemporaryDirectory(prefix="parley-bench-") as work:
        boto3.client("s3").create_bucket(Bucket=_BUCKET)
        boto3.client("dynamodb").create_table(**create_table_kwargs(table("Users"), _TABLE))
        api = _Api()
        folder = Path(work)
        for size in sizes:
            src = folder / f"plain-{size}.bin"
            _make_file(src, size)
            up_s, down_s = asyncio.run(_round_trip(api, src, folder / "inbox"))
            up_peak, down_peak = asyncio.run(_peaks(api, src, folder / "inbox"))
            src.unlink()
            label = f"{size // MB} MB file"
            how = "one transfer, moto S3 server on loopback, 2-core machine"
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
