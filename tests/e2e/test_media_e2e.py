"""Media on the local stack: a real client encrypts, uploads through the
presigned POST the HTTP API hands out, and another user downloads and opens it.

moto's S3 server does not evaluate presigned POST policies (it stores whatever
is posted), so "an oversize upload is refused by S3" is checked here on the
policy the running service signs (content-length-range = the declared size,
exactly); AWS S3 enforces that condition.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from parley.attachments.crypto import IntegrityError
from parley.attachments.transfer import download_attachment, upload_attachment
from parley.content import Attachment, encode_content, parse_content
from tests.e2e.conftest import LocalStack
from tests.e2e.support import Device, sign_in

MB = 1024 * 1024


class HttpMediaApi:
    """The two media calls over the local stack's HTTP API, with a bearer token."""

    def __init__(self, stack: LocalStack, http: aiohttp.ClientSession, user: Device) -> None:
        self._base = stack.http_url
        self._http = http
        self._auth = {"authorization": f"Bearer {user.token}"}

    async def create_media(self, size: int) -> Mapping[str, Any]:
        async with self._http.post(
            f"{self._base}/v1/media", json={"size": size}, headers=self._auth
        ) as answer:
            assert answer.status == 200, await answer.text()
            body: dict[str, Any] = await answer.json()
            return body

    async def media_url(self, media_id: str) -> str:
        async with self._http.get(f"{self._base}/v1/media/{media_id}", headers=self._auth) as r:
            assert r.status == 200, await r.text()
            url: str = (await r.json())["url"]
            return url


def _stored(stack: LocalStack, owner: str, media_id: str) -> tuple[str, bytes]:
    """The one object the media id names (found under the uploader's prefix)."""
    s3 = stack.moto("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        key = f"m/{owner}/{media_id}"
        listed = s3.list_objects_v2(Bucket=bucket["Name"], Prefix=key)
        if listed.get("KeyCount"):
            return bucket["Name"], s3.get_object(Bucket=bucket["Name"], Key=key)["Body"].read()
    raise AssertionError(f"no object for media {media_id}")


def _write_document(path: Path, size: int) -> bytes:
    line = b"Quarterly minutes: the budget stays confidential until Friday.\n"
    data = (line * (size // len(line) + 1))[:size]
    path.write_bytes(data)
    return line


async def test_a_multi_megabyte_attachment_goes_from_alice_to_bob_as_ciphertext_only(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    line = _write_document(tmp_path / "minutes.txt", 6 * MB)
    async with aiohttp.ClientSession() as http:
        alice = await sign_in(local_stack, http, keys=False)
        bob = await sign_in(local_stack, http, keys=False)
        sent = await upload_attachment(
            http, HttpMediaApi(local_stack, http, alice), tmp_path / "minutes.txt"
        )
        # the descriptor travels inside the end-to-end encrypted message
        received = parse_content(encode_content(sent))
        assert isinstance(received, Attachment)
        opened = await download_attachment(
            http, HttpMediaApi(local_stack, http, bob), received, tmp_path / "bob-media"
        )

    assert opened.read_bytes() == (tmp_path / "minutes.txt").read_bytes()
    assert sorted(p.name for p in opened.parent.iterdir()) == ["minutes.txt"]
    _, stored = _stored(local_stack, alice.user_id, sent.media_id)
    assert len(stored) == sent.encrypted_size > 6 * MB
    assert stored != (tmp_path / "minutes.txt").read_bytes()
    assert line not in stored
    assert b"confidential" not in stored


async def test_a_tampered_object_is_refused_and_leaves_nothing_in_the_media_folder(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    (tmp_path / "photo.bin").write_bytes(secrets.token_bytes(400_000))
    async with aiohttp.ClientSession() as http:
        alice = await sign_in(local_stack, http, keys=False)
        bob = await sign_in(local_stack, http, keys=False)
        sent = await upload_attachment(
            http, HttpMediaApi(local_stack, http, alice), tmp_path / "photo.bin"
        )
        bucket, stored = _stored(local_stack, alice.user_id, sent.media_id)
        altered = bytearray(stored)
        altered[len(altered) // 2] ^= 0x40
        local_stack.moto("s3").put_object(
            Bucket=bucket, Key=f"m/{alice.user_id}/{sent.media_id}", Body=bytes(altered)
        )
        media_dir = tmp_path / "bob-media"
        with pytest.raises(IntegrityError):
            await download_attachment(http, HttpMediaApi(local_stack, http, bob), sent, media_dir)
    assert list(media_dir.iterdir()) == []


async def test_the_signed_upload_policy_admits_exactly_the_declared_size(
    local_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        alice = await sign_in(local_stack, http, keys=False)
        created = await HttpMediaApi(local_stack, http, alice).create_media(12_345)
    fields = created["upload"]["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 12_345, 12_345] in policy["conditions"]
    assert {"key": f"m/{alice.user_id}/{created['media_id']}"} in policy["conditions"]
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert created["upload"]["url"].startswith(local_stack.aws_endpoint_url)


async def test_oversize_declarations_and_unknown_ids_get_clear_errors(
    local_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        alice = await sign_in(local_stack, http, keys=False)
        auth = {"authorization": f"Bearer {alice.token}"}
        async with http.post(
            f"{local_stack.http_url}/v1/media", json={"size": 100 * MB + 1}, headers=auth
        ) as r:
            assert r.status == 413
            assert (await r.json())["error"]["code"] == "payload_too_large"
        async with http.get(f"{local_stack.http_url}/v1/media/{'0' * 32}", headers=auth) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "not_found"
        async with http.get(f"{local_stack.http_url}/v1/media/nope", headers=auth) as r:
            assert r.status == 400
