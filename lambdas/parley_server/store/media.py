"""Media: encrypted blobs in S3, reached through presigned POST/GET, and the
small record that maps a media id to its object.

Record (users table): pk=MEDIA#<media id>, sk=MEDIA with the object key, the
uploader, the declared size and `expires_at` (TTL). The id alone says nothing
about the uploader; the record is the only way from id to key, so no listing
or Scan is ever needed. The uploader's partition lists their ids
(pk=USER#<uid>, sk=MEDIA#<media id>, same TTL), so deleting the account finds
and deletes every object they own.

Presigned URLs are signed by the same client that talks to S3, so they point
wherever that client points: AWS, or moto's server behind AWS_ENDPOINT_URL.
On AWS they name the bucket's regional virtual-hosted endpoint,
https://<bucket>.s3.<region>.amazonaws.com/: the global name
(<bucket>.s3.amazonaws.com) answers a bucket created outside us-east-1 with
307 redirects for up to a day, which a browser's form POST and a streamed
upload do not follow.
"""

from __future__ import annotations

from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from parley_server.models.errors import Conflict, DependencyUnavailable

__all__ = ["CIPHERTEXT_TYPE", "MediaRecord", "MediaStore", "PresignedPost"]

# Every object is ciphertext; a fixed type means S3 never serves one as
# something a browser would render.
CIPHERTEXT_TYPE = "application/octet-stream"

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


class PresignedPost(msgspec.Struct, frozen=True):
    """Where and how to POST one object: the form fields go before the file."""

    url: str
    fields: dict[str, str]


class MediaRecord(msgspec.Struct, frozen=True):
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
        """Store a new record (after listing it under its owner); an id that already
        exists is a Conflict."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"USER#{owner}"},
                    "sk": {"S": f"MEDIA#{media_id}"},
                    "expires_at": {"N": str(expires_at)},
                },
            )
        except ClientError as exc:
            raise DependencyUnavailable("media records unavailable") from exc
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

    def delete_record(self, media_id: str) -> None:
        """Forget a media id (no error if it is gone already)."""
        try:
            self._ddb.delete_item(
                TableName=self._table,
                Key={"pk": {"S": f"MEDIA#{media_id}"}, "sk": {"S": "MEDIA"}},
            )
        except ClientError as exc:
            raise DependencyUnavailable("media records unavailable") from exc

    def forget(self, owner: str, media_id: str) -> None:
        """Forget a media id and its listing under its owner (no error if gone)."""
        for key in (
            {"pk": {"S": f"MEDIA#{media_id}"}, "sk": {"S": "MEDIA"}},
            {"pk": {"S": f"USER#{owner}"}, "sk": {"S": f"MEDIA#{media_id}"}},
        ):
            try:
                self._ddb.delete_item(TableName=self._table, Key=key)
            except ClientError as exc:
                raise DependencyUnavailable("media records unavailable") from exc

    # -- objects ---------------------------------------------------------

    def delete_object(self, key: str) -> None:
        """Delete a stored object (S3 answers the same whether or not it was there)."""
        try:
            self._s3.delete_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("media storage unavailable") from exc

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
