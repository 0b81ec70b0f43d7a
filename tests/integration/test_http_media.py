"""The media routes through the HttpApi handler, with the function's exact
environment and real bearer tokens, against moto in-process."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from parley_server.catalogue import HTTP_ROUTES, Setting
from parley_server.config import reset_config
from tests.conftest import FakeAws
from tests.integration.test_http_harness import ALICE, BOB, Device, call, sign_up

MAX = 100 * 1024 * 1024


pytestmark = pytest.mark.usefixtures("http_env")


@pytest.fixture
def alice() -> Device:
    return sign_up(ALICE)


def _policy(upload: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(upload["fields"]["policy"]))
    return decoded


def test_the_media_routes_are_in_the_catalogue() -> None:
    assert "POST /v1/media" in HTTP_ROUTES
    assert "GET /v1/media/{media_id}" in HTTP_ROUTES
    assert "DELETE /v1/media/{media_id}" in HTTP_ROUTES


def test_post_media_answers_a_presigned_post_bound_to_key_and_exact_size(
    alice: Device, aws: FakeAws
) -> None:
    answer = call("POST", "/v1/media", body={"size": 4096}, token=alice.access_token)

    assert answer.status == 200
    media_id = answer.body["media_id"]
    upload = answer.body["upload"]
    assert answer.body["expires_in"] == 300
    assert answer.headers["cache-control"] == "no-store"
    key = f"m/{alice.user_id}/{media_id}"
    assert upload["fields"]["key"] == key
    conditions = _policy(upload)["conditions"]
    assert ["content-length-range", 4096, 4096] in conditions
    assert {"key": key} in conditions
    assert {"bucket": aws.settings[Setting.MEDIA_BUCKET]} in conditions


def test_uploaded_media_is_downloadable_by_another_user_holding_the_id(alice: Device) -> None:
    bob = sign_up(BOB)
    blob = b"\x00ciphertext\xff" * 100
    created = call("POST", "/v1/media", body={"size": len(blob)}, token=alice.access_token)
    upload = created.body["upload"]
    posted = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("blob", blob)}, timeout=10
    )
    assert posted.status_code == 204

    link = call("GET", f"/v1/media/{created.body['media_id']}", token=bob.access_token)

    assert link.status == 200
    assert link.body["size"] == len(blob)
    assert link.body["expires_in"] == 300
    assert requests.get(link.body["url"], timeout=10).content == blob


def test_only_its_uploader_deletes_an_object_and_then_nobody_gets_it(
    alice: Device, aws: FakeAws
) -> None:
    bob = sign_up(BOB)
    blob = b"ciphertext" * 10
    created = call("POST", "/v1/media", body={"size": len(blob)}, token=alice.access_token)
    upload = created.body["upload"]
    requests.post(upload["url"], data=upload["fields"], files={"file": ("b", blob)}, timeout=10)
    path = f"/v1/media/{created.body['media_id']}"

    # someone else's: the same answer as none at all, and nothing changes
    refused = call("DELETE", path, token=bob.access_token)
    assert (refused.status, refused.code) == (404, "not_found")
    assert call("GET", path, token=bob.access_token).status == 200

    deleted = call("DELETE", path, token=alice.access_token)

    assert deleted.status == 204
    assert call("GET", path, token=bob.access_token).status == 404
    bucket = aws.settings[Setting.MEDIA_BUCKET]
    assert aws.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    again = call("DELETE", path, token=alice.access_token)
    assert (again.status, again.code) == (404, "not_found")
    assert call("DELETE", "/v1/media/not-an-id", token=alice.access_token).status == 400
    assert call("DELETE", path).status == 401


def test_get_before_the_upload_is_404(alice: Device) -> None:
    created = call("POST", "/v1/media", body={"size": 10}, token=alice.access_token)
    answer = call("GET", f"/v1/media/{created.body['media_id']}", token=alice.access_token)
    assert (answer.status, answer.code) == (404, "not_found")


def test_get_of_an_unknown_media_id_is_404(alice: Device) -> None:
    answer = call("GET", f"/v1/media/{'e' * 32}", token=alice.access_token)
    assert (answer.status, answer.code) == (404, "not_found")


def test_get_of_a_malformed_media_id_is_400(alice: Device) -> None:
    answer = call("GET", "/v1/media/not-an-id", token=alice.access_token)
    assert (answer.status, answer.code) == (400, "invalid_request")


def test_oversize_declaration_is_413(alice: Device) -> None:
    answer = call("POST", "/v1/media", body={"size": MAX + 1}, token=alice.access_token)
    assert (answer.status, answer.code) == (413, "payload_too_large")
    assert answer.body["error"]["max_bytes"] == MAX
    assert call("POST", "/v1/media", body={"size": MAX}, token=alice.access_token).status == 200


def test_media_limit_follows_the_configured_limits(
    alice: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(Setting.LIMITS.value, json.dumps({"media_max_bytes": 1000}))
    reset_config()
    assert call("POST", "/v1/media", body={"size": 1000}, token=alice.access_token).status == 200
    assert call("POST", "/v1/media", body={"size": 1001}, token=alice.access_token).status == 413


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        (None, "{not json"),
        ({"size": "12"}, None),
        ({"size": True}, None),
        ({"size": 1.5}, None),
        ({"size": 0}, None),
        ({"size": -5}, None),
        ({"bytes": 12}, None),
        ({"size": 12, "extra": 1}, None),
        ([12], None),
    ],
)
def test_bad_post_bodies_are_400(alice: Device, body: Any, raw: str | None) -> None:
    answer = call("POST", "/v1/media", body=body, raw=raw, token=alice.access_token)
    assert (answer.status, answer.code) == (400, "invalid_request")


def test_media_routes_need_a_bearer_token() -> None:
    assert call("POST", "/v1/media", body={"size": 10}).status == 401
    assert call("GET", f"/v1/media/{'e' * 32}").status == 401
    forged = call("POST", "/v1/media", body={"size": 10}, token="not.a.token")
    assert forged.status == 401


def test_the_media_routes_are_in_the_openapi_document() -> None:
    document = call("GET", "/v1/openapi.json").body
    assert "post" in document["paths"]["/v1/media"]
    assert "get" in document["paths"]["/v1/media/{media_id}"]
    assert "delete" in document["paths"]["/v1/media/{media_id}"]
