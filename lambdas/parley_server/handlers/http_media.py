"""HTTP media routes: POST /v1/media and GET /v1/media/{media_id}.

A Powertools Router the HttpApi resolver includes. Wiring only: read the
caller and the input, call logic.media, answer. Errors are ParleyErrors; the
resolver maps them to HTTP answers.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.config import load_config
from parley_server.logic import media
from parley_server.models.errors import BadRequest, Unauthorized
from parley_server.store.aws import client
from parley_server.store.media import MediaStore, s3_client

__all__ = ["router"]

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]
logger = Logger(child=True)
metrics = Metrics()
tracer = Tracer()


def _caller() -> str:
    """The authenticated user id, put in the context by the resolver's auth middleware."""
    user_id = router.context.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise Unauthorized("authentication required")
    return user_id


def _json_body() -> Any:
    raw = router.current_event.decoded_body
    if not raw:
        raise BadRequest("a JSON body is required")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("body is not valid JSON") from exc


def _store() -> MediaStore:
    config = load_config()
    return MediaStore(
        s3_client(),
        client("dynamodb"),
        bucket=config.media_bucket,
        table=config.users_table,
    )


@router.post("/v1/media")
@tracer.capture_method
def create_media() -> dict[str, Any]:
    owner = _caller()
    config = load_config()
    size = media.parse_upload_request(_json_body(), config.limits)
    answer = media.create_upload(
        _store(), owner=owner, size=size, limits=config.limits, now=int(time.time())
    )
    logger.info("media upload form issued", extra={"media_id": answer["media_id"], "size": size})
    metrics.add_metric(name="MediaUploadsIssued", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="MediaDeclaredBytes", unit=MetricUnit.Bytes, value=size)
    return answer


@router.get("/v1/media/<media_id>")
@tracer.capture_method
def get_media(media_id: str) -> dict[str, Any]:
    _caller()
    answer = media.download_link(
        _store(), media_id=media.parse_media_id(media_id), now=int(time.time())
    )
    metrics.add_metric(name="MediaDownloadsIssued", unit=MetricUnit.Count, value=1)
    return answer
