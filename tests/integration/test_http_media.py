"""The media routes through a Powertools HTTP resolver, with the HttpApi
function's exact environment, against moto in-process."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from parley_server.catalogue import HTTP_ROUTES, Setting
from parley_server.handlers.http_media import router
from parley_server.models.errors import ParleyError
from tests.conftest import FakeAws

ALICE = "a" * 32
BOB = "b" * 32
DEVICE = "d" * 16

Call = Callable[..., tuple[int, dict[str, Any]]]


def _resolver() -> APIGatewayHttpResolver:
    """The routes as the HttpApi function serves them: the caller comes from the
    auth layer into the context, ParleyErrors become `{"error": ...}` answers."""
    app = APIGatewayHttpResolver()

    def authenticate(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        caller = app.current_event.headers.get("x-test-caller")
        if caller:
            app.append_context(user_id=caller, device_id=DEVICE)
        return next_middleware(app)

    @app.exception_handler(ParleyError)
    def parley_error(error: ParleyError) -> Response[str]:
        return Response(
            status_code=error.status,
            content_type="application/json",
            body=json.dumps({"error": error.to_dict()}),
        )

    app.use([authenticate])
    app.include_router(router)
    return app


@pytest.fixture
def call(function_env: Any) -> Call:
    function_env("HttpApi")
    app = _resolver()

    def invoke(
        method: str, path: str, body: Any = None, *, caller: str | None = ALICE, raw: str = ""
    ) -> tuple[int, dict[str, Any]]:
        headers = {"content-type": "application/json"}
        if caller:
            headers["x-test-caller"] = caller
        route = "POST /v1/media" if method == "POST" else "GET /v1/media/{media_id}"
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route,
            "rawPath": path,
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
                "requestId": "test",
                "routeKey": route,
                "stage": "$default",
            },
            "isBase64Encoded": False,
        }
        if route.endswith("{media_id}"):
            event["pathParameters"] = {"media_id": path.rsplit("/", 1)[-1]}
        if body is not None or raw:
            event["body"] = raw or json.dumps(body)
        answer = app.resolve(event, None)
        app.clear_context()
        return answer["statusCode"], json.loads(answer["body"] or "null")

    return invoke


def test_the_media_routes_are_in_the_catalogue() -> None:
    assert "POST /v1/media" in HTTP_ROUTES
    assert "GET /v1/media/{media_id}" in HTTP_ROUTES


def test_post_media_answers_a_presigned_post_bound_to_key_and_exact_size(
    call: Call, aws: FakeAws
) -> None:
    status, answer = call("POST", "/v1/media", {"size": 4096})

    assert status == 200
    media_id = answer["media_id"]
    upload = answer["upload"]
    assert answer["expires_in"] == 300
    assert upload["fields"]["key"] == f"m/{ALICE}/{media_id}"
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    assert ["content-length-range", 4096, 4096] in policy["conditions"]
    assert {"key": f"m/{ALICE}/{media_id}"} in policy["conditions"]
    assert {"bucket": aws.settings[Setting.MEDIA_BUCKET]} in policy["conditions"]


def test_uploaded_media_is_downloadable_by_another_user_holding_the_id(call: Call) -> None:
    blob = b"\x00ciphertext\xff" * 100
    _, answer = call("POST", "/v1/media", {"size": len(blob)})
    upload = answer["upload"]
    posted = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("blob", blob)}, timeout=10
    )
    assert posted.status_code == 204

    status, link = call("GET", f"/v1/media/{answer['media_id']}", caller=BOB)

    assert status == 200
    assert link["size"] == len(blob)
    assert link["expires_in"] == 300
    assert requests.get(link["url"], timeout=10).content == blob


def test_get_of_an_unknown_media_id_is_404(call: Call) -> None:
    status, answer = call("GET", f"/v1/media/{'e' * 32}")
    assert status == 404
    assert answer["error"]["code"] == "not_found"


def test_get_of_a_malformed_media_id_is_400(call: Call) -> None:
    status, answer = call("GET", "/v1/media/not-an-id")
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"


def test_oversize_declaration_is_413(call: Call) -> None:
    status, answer = call("POST", "/v1/media", {"size": 100 * 1024 * 1024 + 1})
    assert status == 413
    assert answer["error"]["code"] == "payload_too_large"
    assert answer["error"]["max_bytes"] == 100 * 1024 * 1024


def test_media_limit_follows_the_configured_limits(
    call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley_server.config import reset_config

    monkeypatch.setenv(Setting.LIMITS.value, json.dumps({"media_max_bytes": 1000}))
    reset_config()
    assert call("POST", "/v1/media", {"size": 1000})[0] == 200
    assert call("POST", "/v1/media", {"size": 1001})[0] == 413


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        (None, "{not json"),
        ({"size": "12"}, ""),
        ({"size": 0}, ""),
        ({"size": -5}, ""),
        ({"bytes": 12}, ""),
        ([12], ""),
    ],
)
def test_bad_post_bodies_are_400(call: Call, body: Any, raw: str) -> None:
    status, answer = call("POST", "/v1/media", body, raw=raw)
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"


def test_media_routes_need_an_authenticated_caller(call: Call) -> None:
    assert call("POST", "/v1/media", {"size": 10}, caller=None)[0] == 401
    assert call("GET", f"/v1/media/{'e' * 32}", caller=None)[0] == 401
