"""Media use cases over the real store (moto in-process)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from parley_server.config import Limits
from parley_server.logic import media
from parley_server.models.errors import BadRequest, NotFound, PayloadTooLarge
from tests.unit.conftest import Ports

OWNER = "a" * 32
NOW = 1_800_000_000


def _policy(fields: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return decoded


def test_upload_request_needs_a_positive_integer_size() -> None:
    limits = Limits()
    for body in ({}, {"size": "10"}, {"size": 1.5}, {"size": True}, {"size": 0}, [], "x", None):
        with pytest.raises(BadRequest) as refused:
            media.parse_upload_request(body, limits)
        assert refused.value.status == 400
    assert media.parse_upload_request({"size": 1}, limits) == 1


def test_upload_request_larger_than_the_limit_is_payload_too_large() -> None:
    limits = Limits(media_max_bytes=1000)
    assert media.parse_upload_request({"size": 1000}, limits) == 1000
    with pytest.raises(PayloadTooLarge) as refused:
        media.parse_upload_request({"size": 1001}, limits)
    assert refused.value.status == 413
    assert refused.value.code == "payload_too_large"
    assert refused.value.to_dict()["max_bytes"] == 1000


def test_media_id_from_a_path_must_be_32_lowercase_hex() -> None:
    assert media.parse_media_id("0" * 32) == "0" * 32
    for bad in ("0" * 31, "0" * 33, "G" * 32, "A" * 32, "../" + "0" * 29, "", None):
        with pytest.raises(BadRequest):
            media.parse_media_id(bad)


def test_upload_form_is_bound_to_the_uploaders_key_and_the_exact_size(ports: Ports) -> None:
    answer = ports.call(media.create_upload, owner=OWNER, size=12345, limits=Limits(), now=NOW)

    media_id = answer.media_id
    assert len(media_id) == 32
    assert int(media_id, 16) >= 0
    assert answer.expires_in == media.UPLOAD_EXPIRES_S
    fields = answer.upload.fields
    assert fields["key"] == f"m/{OWNER}/{media_id}"
    conditions = _policy(fields)["conditions"]
    assert ["content-length-range", 12345, 12345] in conditions
    assert {"key": f"m/{OWNER}/{media_id}"} in conditions
    assert {"Content-Type": "application/octet-stream"} in conditions
    # signed with SigV4 (SigV2 is refused by newer buckets and by SSE-KMS)
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"


def test_upload_form_expires_within_minutes(ports: Ports) -> None:
    from datetime import UTC, datetime

    before = datetime.now(UTC)
    answer = ports.call(media.create_upload, owner=OWNER, size=10, limits=Limits(), now=NOW)
    expiration = datetime.fromisoformat(
        _policy(answer.upload.fields)["expiration"].replace("Z", "+00:00")
    )
    seconds = (expiration - before).total_seconds()
    assert media.UPLOAD_EXPIRES_S - 5 <= seconds <= media.UPLOAD_EXPIRES_S + 5


def test_each_upload_gets_a_fresh_id_whose_record_expires_with_the_mailbox(ports: Ports) -> None:
    limits = Limits()
    first = ports.call(media.create_upload, owner=OWNER, size=10, limits=limits, now=NOW)
    second = ports.call(media.create_upload, owner=OWNER, size=10, limits=limits, now=NOW)
    assert first.media_id != second.media_id
    record = ports.media.get_record(first.media_id)
    assert record is not None
    assert record.owner == OWNER
    assert record.size == 10
    assert record.key == f"m/{OWNER}/{first.media_id}"
    assert record.expires_at == NOW + limits.mailbox_ttl_s


def test_download_of_an_unknown_id_is_not_found(ports: Ports) -> None:
    with pytest.raises(NotFound):
        ports.call(media.download_link, media_id="f" * 32, now=NOW)


def test_download_before_the_upload_is_not_found(ports: Ports) -> None:
    answer = ports.call(media.create_upload, owner=OWNER, size=10, limits=Limits(), now=NOW)
    with pytest.raises(NotFound):
        ports.call(media.download_link, media_id=answer.media_id, now=NOW)


def test_uploaded_media_downloads_through_the_presigned_links(ports: Ports) -> None:
    blob = bytes(range(256)) * 40
    answer = ports.call(media.create_upload, owner=OWNER, size=len(blob), limits=Limits(), now=NOW)
    upload = answer.upload
    posted = requests.post(
        upload.url, data=upload.fields, files={"file": ("blob", blob)}, timeout=10
    )
    assert posted.status_code == 204

    link = ports.call(media.download_link, media_id=answer.media_id, now=NOW + 1)

    assert link.size == len(blob)
    assert link.expires_in == media.DOWNLOAD_EXPIRES_S
    assert "X-Amz-Signature=" in link.url
    assert requests.get(link.url, timeout=10).content == blob


def test_expired_media_is_not_found_even_before_ttl_deletion(ports: Ports) -> None:
    limits = Limits(mailbox_ttl_s=60)
    answer = ports.call(media.create_upload, owner=OWNER, size=3, limits=limits, now=NOW)
    upload = answer.upload
    requests.post(upload.url, data=upload.fields, files={"file": ("b", b"abc")}, timeout=10)
    assert ports.call(media.download_link, media_id=answer.media_id, now=NOW + 59).size == 3
    with pytest.raises(NotFound):
        ports.call(media.download_link, media_id=answer.media_id, now=NOW + 60)


# -- budgets per device -------------------------------------------------------------


def test_upload_forms_past_a_devices_hourly_budget_are_refused(ports: Ports) -> None:
    from parley_server.logic.ports import Caller
    from parley_server.models.errors import RateLimited

    phone, laptop = Caller(OWNER, "1" * 16), Caller(OWNER, "2" * 16)
    limits = Limits(media_uploads_per_hour=2)
    for _ in range(2):
        ports.call(media.limit_upload, phone, 10, limits=limits, now=NOW)

    with pytest.raises(RateLimited) as refused:
        ports.call(media.limit_upload, phone, 10, limits=limits, now=NOW)

    assert (refused.value.code, refused.value.retry_after) == ("rate_limited", 3600)
    ports.call(media.limit_upload, laptop, 10, limits=limits, now=NOW)
    ports.call(media.limit_upload, phone, 10, limits=limits, now=NOW + 3600)


def test_declared_bytes_past_a_devices_daily_budget_are_refused(ports: Ports) -> None:
    from parley_server.logic.ports import Caller
    from parley_server.models.errors import RateLimited

    phone = Caller(OWNER, "1" * 16)
    limits = Limits(media_bytes_per_day=1000)
    ports.call(media.limit_upload, phone, 600, limits=limits, now=NOW)
    with pytest.raises(RateLimited) as refused:
        ports.call(media.limit_upload, phone, 401, limits=limits, now=NOW)
    # the UTC day ends at 1_800_057_600
    assert refused.value.retry_after == 57_600
    ports.call(media.limit_upload, phone, 400, limits=limits, now=NOW)
    with pytest.raises(RateLimited):
        ports.call(media.limit_upload, phone, 1, limits=limits, now=NOW)
    ports.call(media.limit_upload, phone, 1000, limits=limits, now=NOW + 57_600)
