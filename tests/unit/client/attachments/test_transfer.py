"""Attachment upload and download over real HTTP: aiohttp against moto's S3
server, with the server's media use cases standing in for the HTTP API."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import msgspec
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from parley.attachments.crypto import IntegrityError
from parley.attachments.transfer import TransferError, download_attachment, upload_attachment
from parley.content import Attachment, encode_content, parse_content
from parley_server.config import Limits
from parley_server.logic import media
from parley_server.store.aws import s3_client
from parley_server.store.media import MediaStore
from parley_server.store.schema import create_table_kwargs, table

BUCKET = "parley-transfer-media"
USERS = "parley-transfer-users"
OWNER = "c" * 32


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        boto3.client("dynamodb").create_table(**create_table_kwargs(table("Users"), USERS))
        try:
            yield endpoint
        finally:
            server.stop()


class InProcessApi:
    """The two media calls, answered by the server's use cases directly."""

    def __init__(self) -> None:
        self.store = MediaStore(s3_client(), boto3.client("dynamodb"), bucket=BUCKET, table=USERS)
        self.url_calls = 0
        self.bad_urls = 0

    async def create_media(self, size: int) -> Mapping[str, Any]:
        limits = Limits()
        declared = media.parse_upload_request({"size": size}, limits)
        upload = await asyncio.to_thread(
            media.create_upload,
            self.store,
            owner=OWNER,
            size=declared,
            limits=limits,
            now=int(time.time()),
        )
        answer: Mapping[str, Any] = msgspec.to_builtins(upload)  # as the route answers
        return answer

    async def media_url(self, media_id: str) -> str:
        self.url_calls += 1
        link = await asyncio.to_thread(
            media.download_link, self.store, media_id=media_id, now=int(time.time())
        )
        url: str = link.url
        if self.bad_urls:
            self.bad_urls -= 1
            return url.split("?", 1)[0]  # unsigned: S3 answers 403 as for an expired link
        return url


@pytest.fixture
def api(s3_server: str) -> InProcessApi:
    return InProcessApi()


def _object(attachment: Attachment) -> bytes:
    body: bytes = (
        boto3.client("s3")
        .get_object(Bucket=BUCKET, Key=media.object_key(OWNER, attachment.media_id))["Body"]
        .read()
    )
    return body


def _replace_object(attachment: Attachment, data: bytes) -> None:
    key = media.object_key(OWNER, attachment.media_id)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=data)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_multi_megabyte_file_round_trips_and_storage_sees_only_ciphertext(
    api: InProcessApi, tmp_path: Path
) -> None:
    phrase = b"meet me at the old mill at noon. "
    plain = (phrase * 200_000)[: 6 * 1024 * 1024]
    (tmp_path / "minutes.txt").write_bytes(plain)
    inbox = tmp_path / "inbox"
    sent: list[tuple[int, int]] = []
    got: list[tuple[int, int]] = []

    async with aiohttp.ClientSession() as session:
        attachment = await upload_attachment(
            session, api, tmp_path / "minutes.txt", progress=lambda d, t: sent.append((d, t))
        )
        # what travels inside the end-to-end message
        received = parse_content(encode_content(attachment))
        assert isinstance(received, Attachment)
        path = await download_attachment(
            session, api, received, inbox, progress=lambda d, t: got.append((d, t))
        )

    assert path == inbox / "minutes.txt"
    assert path.read_bytes() == plain
    assert _files(inbox) == ["minutes.txt"]
    assert attachment.kind == "document"
    assert attachment.mime == "text/plain"
    assert attachment.size == len(plain)
    stored = _object(attachment)
    assert len(stored) == attachment.encrypted_size
    assert hashlib.sha256(stored).hexdigest() == attachment.sha256
    assert stored != plain
    assert phrase not in stored
    for progress in (sent, got):
        done = [d for d, _ in progress]
        assert done == sorted(done)
        assert progress[-1] == (attachment.encrypted_size, attachment.encrypted_size)
    assert len(sent) > 1


async def test_image_attachment_carries_a_thumbnail_and_its_dimensions(
    api: InProcessApi, tmp_path: Path
) -> None:
    Image.effect_noise((1200, 800), 40).convert("RGB").save(tmp_path / "cat.jpg", quality=90)
    async with aiohttp.ClientSession() as session:
        attachment = await upload_attachment(session, api, tmp_path / "cat.jpg", caption="cat")
    assert attachment.kind == "image"
    assert attachment.mime == "image/jpeg"
    assert attachment.thumbnail is not None
    assert attachment.thumbnail.startswith(b"\xff\xd8\xff")
    assert (attachment.width, attachment.height) == (1200, 800)
    assert attachment.caption == "cat"


async def test_a_tampered_object_is_refused_and_nothing_is_left_behind(
    api: InProcessApi, tmp_path: Path
) -> None:
    (tmp_path / "a.bin").write_bytes(os.urandom(300_000))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    async with aiohttp.ClientSession() as session:
        attachment = await upload_attachment(session, api, tmp_path / "a.bin")
        stored = bytearray(_object(attachment))
        stored[1000] ^= 0xFF
        _replace_object(attachment, bytes(stored))
        with pytest.raises(IntegrityError):
            await download_attachment(session, api, attachment, inbox)
    assert _files(inbox) == []


async def test_a_truncated_object_is_refused_and_nothing_is_left_behind(
    api: InProcessApi, tmp_path: Path
) -> None:
    (tmp_path / "a.bin").write_bytes(os.urandom(300_000))
    inbox = tmp_path / "inbox"
    async with aiohttp.ClientSession() as session:
        attachment = await upload_attachment(session, api, tmp_path / "a.bin")
        _replace_object(attachment, _object(attachment)[:-100])
        with pytest.raises(IntegrityError, match="truncated"):
            await download_attachment(session, api, attachment, inbox)
    assert _files(inbox) == []


async def test_an_oversized_object_stops_the_download(api: InProcessApi, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(os.urandom(1000))
    inbox = tmp_path / "inbox"
    async with aiohttp.ClientSession() as session:
        attachment = await upload_attachment(session, api, tmp_path / "a.bin")
        _replace_object(attachment, os.urandom(5_000_000))
        with pytest.raises(IntegrityError, match="larger"):
            await download_attachment(session, api, attachment, inbox)
    assert _files(inbox) == []


async def test_a_refused_link_is_asked_for_again_once(api: InProcessApi, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_bytes(b"hello")
    async with aiohttp.ClientSession() as session:
        attachment = await upload_attachment(session, api, tmp_path / "note.txt")
        api.bad_urls = 1
        path = await download_attachment(session, api, attachment, tmp_path / "in")
        assert path.read_bytes() == b"hello"
        assert api.url_calls == 2

        api.bad_urls = 2
        with pytest.raises(TransferError) as refused:
            await download_attachment(session, api, attachment, tmp_path / "in2")
        assert refused.value.status == 403
    assert _files(tmp_path / "in2") == []


async def test_a_second_download_of_the_same_name_never_overwrites(
    api: InProcessApi, tmp_path: Path
) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 first")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "report.pdf").write_bytes(b"mine")
    async with aiohttp.ClientSession() as session:
        attachment = await upload_attachment(session, api, tmp_path / "report.pdf")
        first = await download_attachment(session, api, attachment, inbox)
        second = await download_attachment(session, api, attachment, inbox)
    assert attachment.mime == "application/pdf"
    assert (first.name, second.name) == ("report (2).pdf", "report (3).pdf")
    assert (inbox / "report.pdf").read_bytes() == b"mine"
    assert first.read_bytes() == second.read_bytes() == b"%PDF-1.4 first"


async def test_a_malformed_upload_form_is_a_transfer_error(tmp_path: Path) -> None:
    class Broken:
        async def create_media(self, size: int) -> Mapping[str, Any]:
            return {"media_id": "x", "upload": {"url": 5}}

        async def media_url(self, media_id: str) -> str:
            raise AssertionError("not reached")

    (tmp_path / "a.txt").write_bytes(b"hi")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransferError):
            await upload_attachment(session, Broken(), tmp_path / "a.txt", workdir=tmp_path)
    assert _files(tmp_path) == ["a.txt"]
