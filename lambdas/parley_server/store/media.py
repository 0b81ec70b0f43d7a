"""Media: encrypted blobs in S3, reached through presigned POST/GET, and the
small record that maps a media id to its object.

Record (users table): pk=MEDIA#<media id>, sk=MEDIA with the object key, the
uploader, the declared size and `expires_at` (TTL). The id alone says nothing
about the uploader; the record is the only way from id to key, so no listing
or Scan is ever needed.

Presigned URLs are signed by the same client that talks to S3, so they point
wherever that client points: AWS, or moto's server behind AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from parley_server.models.errors import Conflict, DependencyUnavailable

__all__ = ["CIPHERTEXT_TYPE", "MediaRecord", "MediaStore", "PresignedPost", "s3_client"]

# Every object is ciphertext; a fixed type means S3 never serves one as
# something a browser would render.
CIPHERTEXT_TYPE = "application/octet-stream"

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})

# SigV4 must be explicit: for presigning, botocore otherwise falls back to
# SigV2 in older regions, which S3 refuses for newer buckets and for SSE-KMS.
_S3_CONFIG = BotoConfig(
    signature_version="s3v4",
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)
_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str | None, str | None], Any] = {}


def s3_client() -> Any:
    """A SigV4 S3 client for this process, made once per endpoint and region.

    Endpoint and region come from the standard AWS variables, exactly as for
    every other client (`store.aws`); the key follows them so a process that
    switches endpoints (tests, the local stack) gets a client for each.
    """
    key = (
        os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    )
    with _LOCK:
        found = _CLIENTS.get(key)
        if found is None:
            found = boto3.session.Session().client("s3", config=_S3_CONFIG)
            _CLIENTS[key] = found
        return found


@dataclass(frozen=True)
class PresignedPost:
    """Where and how to POST one object: the form fields go before the file."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class MediaRecord:
    media_id: str
    key: str
    owner: str
    size: int
    expires_at: int


class MediaStore:
    """S3 objects and their id records. Takes its clients; owns every call."""

    def __init__(self, s3: Any, dynamodb: Any, *, bucket: str, table: str) -> None:
        self._s3 = s3
        self._ddb = dynamodb
        self._bucket = bucket
        self._table = table

    # -- records ---------------------------------------------------------

    def put_record(
        self, *, media_id: str, key: str, owner: str, size: int, expires_at: int, now: int
    ) -> None:
        """Store a new record; an id that already exists is a Conflict."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"MEDIA#{media_id}"},
                    "sk": {"S": "MEDIA"},
                    "key": {"S": key},
                    "owner": {"S": owner},
                    "size": {"N": str(size)},
                    "created_at": {"N": str(now)},
                    "expires_at": {"N": str(expires_at)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Conflict("media id already in use") from exc
            raise DependencyUnavailable("media records unavailable") from exc

    def get_record(self, media_id: str) -> MediaRecord | None:
        """The record of `media_id`, or None (expiry is the caller's to judge)."""
        try:
            answer = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": {"S": f"MEDIA#{media_id}"}, "sk": {"S": "MEDIA"}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise DependencyUnavailable("media records unavailable") from exc
        item = answer.get("Item")
        if item is None:
            return None
        return MediaRecord(
            media_id=media_id,
            key=item["key"]["S"],
            owner=item["owner"]["S"],
            size=int(item["size"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
        )

    # -- objects ---------------------------------------------------------

    def object_size(self, key: str) -> int | None:
        """The stored object's size in bytes, or None when it is not there (yet)."""
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _NOT_FOUND:
                return None
            raise DependencyUnavailable("media storage unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("media storage unavailable") from exc
        return int(head["ContentLength"])

    def presign_upload(self, key: str, *, size: int, expires_in: int) -> PresignedPost:
        """A POST form that can create exactly `key`, exactly `size` bytes, for `expires_in` s."""
        try:
            post = self._s3.generate_presigned_post(
                Bucket=self._bucket,
                Key=key,
                Fields={"Content-Type": CIPHERTEXT_TYPE},
                Conditions=[
                    {"Content-Type": CIPHERTEXT_TYPE},
                    ["content-length-range", size, size],
                ],
                ExpiresIn=expires_in,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("media storage unavailable") from exc
        return PresignedPost(url=post["url"], fields=dict(post["fields"]))

    def presign_download(self, key: str, *, expires_in: int) -> str:
        """A GET URL for `key`, valid for `expires_in` seconds."""
        try:
            url: str = self._s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": key},
                ExpiresIn=expires_in,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("media storage unavailable") from exc
        return url
