"""HTTP media routes: POST /v1/media and GET /v1/media/{media_id}.

A Powertools Router that the HttpApi resolver includes: its auth middleware
puts the caller in the context, its validation checks the bodies below, and
its exception handler turns ParleyErrors into the wire's error answers.
Wiring only: read the caller and the input, call logic.media, answer.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from parley_server.config import load_config
from parley_server.logic import media
from parley_server.models.errors import Unauthorized
from parley_server.models.http import ErrorAnswer
from parley_server.store.aws import client
from parley_server.store.media import MediaStore, s3_client

__all__ = ["MediaLinkAnswer", "MediaUploadAnswer", "MediaUploadRequest", "UploadForm", "router"]

MEDIA_ID_PATTERN = r"^[0-9a-f]{32}$"
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_DESCRIBED = {
    400: "invalid input",
    401: "missing, invalid or expired credentials",
    404: "unknown, expired or not uploaded yet",
    413: "larger than the media limit",
    503: "a dependency is unavailable; retry",
}


def _responses(*statuses: int) -> dict[int, Any]:
    return {
        status: {
            "description": _DESCRIBED[status],
            "content": {"application/json": {"model": ErrorAnswer}},
        }
        for status in statuses
    }


router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
logger = Logger(child=True)
metrics = Metrics(namespace="Parley", service="parley")


class MediaUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: "12" or true are not sizes; the upper bound is a tunable, checked by
    # the service so that it answers 413
    size: StrictInt = Field(description="bytes of the encrypted object, exactly")


class UploadForm(BaseModel):
    url: str
    fields: dict[str, str] = Field(description="form fields to send before the file, as given")


class MediaUploadAnswer(BaseModel):
    media_id: str
    upload: UploadForm = Field(description="a presigned S3 POST bound to one key and size")
    expires_in: int = Field(description="seconds the upload form stays valid")


class MediaLinkAnswer(BaseModel):
    url: str = Field(description="a presigned S3 GET of the encrypted object")
    expires_in: int = Field(description="seconds the link stays valid")
    size: int = Field(description="bytes of the encrypted object")


def _caller() -> str:
    """The authenticated user id, as the resolver's auth middleware put it in the context."""
    user_id = router.context.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise Unauthorized("authentication required")
    return user_id


def _store() -> MediaStore:
    config = load_config()
    return MediaStore(
        s3_client(), client("dynamodb"), bucket=config.media_bucket, table=config.users_table
    )


@router.post(
    "/v1/media",
    summary="Reserve a media id and get a form that uploads exactly that many bytes",
    tags=["media"],
    security=_BEARER,
    cache_control="no-store",
    responses=_responses(400, 401, 413, 503),
)
def create_media(request: MediaUploadRequest) -> MediaUploadAnswer:
    owner = _caller()
    limits = load_config().limits
    size = media.parse_upload_request({"size": request.size}, limits)
    answer: dict[str, Any] = media.create_upload(
        _store(), owner=owner, size=size, limits=limits, now=int(time.time())
    )
    logger.info("media upload form issued", extra={"media_id": answer["media_id"], "size": size})
    metrics.add_metric(name="MediaUploadsIssued", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="MediaDeclaredBytes", unit=MetricUnit.Bytes, value=size)
    return MediaUploadAnswer(
        media_id=answer["media_id"],
        upload=UploadForm(**answer["upload"]),
        expires_in=answer["expires_in"],
    )


@router.get(
    "/v1/media/<media_id>",
    summary="A short-lived download link for an uploaded media object",
    tags=["media"],
    security=_BEARER,
    cache_control="no-store",
    responses=_responses(400, 401, 404, 503),
)
def get_media(media_id: Annotated[str, Path(pattern=MEDIA_ID_PATTERN)]) -> MediaLinkAnswer:
    _caller()
    link = media.download_link(_store(), media_id=media_id, now=int(time.time()))
    metrics.add_metric(name="MediaLinksIssued", unit=MetricUnit.Count, value=1)
    return MediaLinkAnswer(**link)
