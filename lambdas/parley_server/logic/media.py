"""Media use cases: hand out a size-bound upload form, a short-lived download link,
and delete an object its uploader no longer wants kept (a message deleted for everyone).

The server never sees media plaintext: clients encrypt before uploading and
send the key inside the end-to-end encrypted message. So anyone authenticated
who holds a media id may download its ciphertext; only the uploader, through
the presigned form bound to one key and one exact size, can create it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from parley_server.ids import is_media_id, new_media_id
from parley_server.models.errors import BadRequest, NotFound, PayloadTooLarge

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.logic.ports import Caller, LimiterPort
    from parley_server.store.media import MediaRecord, PresignedPost

__all__ = [
    "DOWNLOAD_EXPIRES_S",
    "UPLOAD_EXPIRES_S",
    "DownloadLink",
    "MediaRepository",
    "Upload",
    "create_upload",
    "delete_media",
    "download_link",
    "limit_upload",
    "object_key",
    "parse_media_id",
    "parse_upload_request",
]

# Short: a form or link that leaks is useless a few minutes later. S3 checks
# expiry when a request starts, so a slow transfer that started in time finishes.
UPLOAD_EXPIRES_S = 300
DOWNLOAD_EXPIRES_S = 300


class Upload(msgspec.Struct, frozen=True):
    """A reserved media id and the presigned form that uploads its ciphertext."""

    media_id: str
    upload: PresignedPost
    expires_in: int


class DownloadLink(msgspec.Struct, frozen=True):
    """A short-lived GET link for an uploaded media object of `size` bytes."""

    url: str
    expires_in: int
    size: int


class MediaRepository(Protocol):
    """What the use cases need from storage (store.media.MediaStore)."""

    def put_record(
        self, *, media_id: str, key: str, owner: str, size: int, expires_at: int, now: int
    ) -> None: ...

    def get_record(self, media_id: str) -> MediaRecord | None: ...

    def object_size(self, key: str) -> int | None: ...

    def presign_upload(self, key: str, *, size: int, expires_in: int) -> PresignedPost: ...

    def presign_download(self, key: str, *, expires_in: int) -> str: ...

    def delete_object(self, key: str) -> None: ...

    def forget(self, owner: str, media_id: str) -> None: ...


def object_key(owner: str, media_id: str) -> str:
    """S3 key of a media object: one prefix per uploader."""
    return f"m/{owner}/{media_id}"


def parse_upload_request(body: Any, limits: Limits) -> int:
    """The declared encrypted size from a POST /v1/media body."""
    if not isinstance(body, Mapping):
        raise BadRequest('body must be a JSON object: {"size": <bytes>}')
    size = body.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        raise BadRequest("size must be an integer number of bytes")
    if size < 1:
        raise BadRequest("size must be at least 1 byte")
    if size > limits.media_max_bytes:
        raise PayloadTooLarge(
            f"media may be at most {limits.media_max_bytes} bytes",
            max_bytes=limits.media_max_bytes,
        )
    return size


def parse_media_id(raw: object) -> str:
    """A media id from a path: 32 lowercase hex characters."""
    if not is_media_id(raw):
        raise BadRequest("media id must be 32 lowercase hex characters")
    return raw


def limit_upload(
    caller: Caller, size: int, *, limiter: LimiterPort, limits: Limits, now: float
) -> None:
    """Count one upload form of `size` bytes for the caller's device: forms per hour
    and declared bytes per UTC day (RateLimited past either)."""
    device = f"{caller.user_id}#{caller.device_id}"
    limiter.hit("media-forms", device, limit=limits.media_uploads_per_hour, window_s=3600, now=now)
    limiter.hit(
        "media-bytes",
        device,
        limit=limits.media_bytes_per_day,
        window_s=24 * 3600,
        now=now,
        cost=size,
    )


def create_upload(
    repo: MediaRepository,
    *,
    owner: str,
    size: int,
    limits: Limits,
    now: int,
    new_id: Callable[[], str] = new_media_id,
) -> Upload:
    """Reserve a media id for `owner` and answer with the form that uploads it."""
    media_id = new_id()
    key = object_key(owner, media_id)
    # The record lives as long as a message that points to it can wait in a
    # mailbox; the bucket's lifecycle rule expires the object on the same scale.
    repo.put_record(
        media_id=media_id,
        key=key,
        owner=owner,
        size=size,
        expires_at=now + limits.mailbox_ttl_s,
        now=now,
    )
    post = repo.presign_upload(key, size=size, expires_in=UPLOAD_EXPIRES_S)
    return Upload(media_id=media_id, upload=post, expires_in=UPLOAD_EXPIRES_S)


def download_link(repo: MediaRepository, *, media_id: str, now: int) -> DownloadLink:
    """A short-lived GET link for an uploaded media object; NotFound otherwise."""
    record = repo.get_record(parse_media_id(media_id))
    # TTL deletion is lazy: an expired record is as gone as a deleted one.
    if record is None or record.expires_at <= now:
        raise NotFound("no such media")
    size = repo.object_size(record.key)
    if size is None:
        raise NotFound("media has not been uploaded")
    return DownloadLink(
        url=repo.presign_download(record.key, expires_in=DOWNLOAD_EXPIRES_S),
        expires_in=DOWNLOAD_EXPIRES_S,
        size=size,
    )


def delete_media(repo: MediaRepository, *, owner: str, media_id: str, now: int) -> None:
    """Delete an uploaded object and its id for good: its uploader's call only (an
    object of someone else's, or none, is the same NotFound). Whoever still holds a
    message pointing to it finds it gone."""
    record = repo.get_record(parse_media_id(media_id))
    if record is None or record.expires_at <= now or record.owner != owner:
        raise NotFound("no such media of yours")
    repo.delete_object(record.key)
    repo.forget(owner, media_id)
