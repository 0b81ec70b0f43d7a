"""HTTP media routes: POST /v1/media, GET /v1/media/{media_id} and DELETE
/v1/media/{media_id}.

A Powertools Router that the HttpApi resolver includes: its auth middleware
puts the caller in the context, its validation checks the bodies (models/http.py),
and its exception handler turns ParleyErrors into the wire's error answers.
"""

from __future__ import annotations

import time

import msgspec
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.handlers import _http
from parley_server.handlers._routes import Routes
from parley_server.logic import media
from parley_server.metrics import Metric
from parley_server.models.http import (
    MediaId,
    MediaLinkAnswer,
    MediaUploadAnswer,
    MediaUploadRequest,
)
from parley_server.wiring import adapters

__all__ = ["router"]

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
api = Routes(router)
logger = Logger(child=True)
metrics = Metrics(namespace="Parley", service="parley")

_MEDIA = {404: "unknown, expired or not uploaded yet", 413: "larger than the media limit"}


@api.post(
    "/v1/media",
    summary="Reserve a media id and get a form that uploads exactly that many bytes",
    description=(
        "Each device may ask for a number of forms an hour and declare a number of bytes"
        " a day (429 rate_limited, Retry-After)."
    ),
    **_http.bearer("media", 400, 401, 413, 429, 503, described=_MEDIA),
)
def create_media(request: MediaUploadRequest) -> MediaUploadAnswer:
    caller = _http.caller(router.context)
    deps = adapters()
    limits = deps.config.limits
    size = media.parse_upload_request({"size": request.size}, limits)
    now = time.time()
    media.limit_upload(caller, size, limiter=deps.limiter, limits=limits, now=now)
    upload = media.create_upload(
        deps.media, owner=caller.user_id, size=size, limits=limits, now=int(now)
    )
    logger.info("media upload form issued", extra={"media_id": upload.media_id, "size": size})
    metrics.add_metric(name=Metric.MEDIA_UPLOADS_ISSUED, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=Metric.MEDIA_DECLARED_BYTES, unit=MetricUnit.Bytes, value=size)
    return msgspec.convert(upload, MediaUploadAnswer, from_attributes=True)


@api.get(
    "/v1/media/<media_id>",
    summary="A short-lived download link for an uploaded media object",
    **_http.bearer("media", 400, 401, 404, 503, described=_MEDIA),
)
def get_media(media_id: MediaId) -> MediaLinkAnswer:
    _http.caller(router.context)
    link = media.download_link(adapters().media, media_id=media_id, now=int(time.time()))
    metrics.add_metric(name=Metric.MEDIA_LINKS_ISSUED, unit=MetricUnit.Count, value=1)
    return msgspec.convert(link, MediaLinkAnswer, from_attributes=True)


@api.delete(
    "/v1/media/<media_id>",
    status_code=204,
    summary="Delete a media object you uploaded (a message deleted for everyone)",
    description=(
        "Only its uploader may; anyone else's, an expired one or none answers 404."
        " Messages that still point to it find it gone."
    ),
    **_http.bearer("media", 400, 401, 404, 503, described=_MEDIA, no_store=False),
)
def delete_media(media_id: MediaId) -> None:
    caller = _http.caller(router.context)
    media.delete_media(
        adapters().media, owner=caller.user_id, media_id=media_id, now=int(time.time())
    )
    logger.info("media deleted by its uploader", extra={"media_id": media_id})
    metrics.add_metric(name=Metric.MEDIA_DELETED, unit=MetricUnit.Count, value=1)
