"""The local HTTP API behaves as API Gateway's: route matching, payload format
2.0 events, the answer mapping, and API Gateway's own error answers."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from local.gateway import Gateway, GatewayOptions
from local.http_api import HttpCors
from local.testing import FakeFunctions, running_gateway


@asynccontextmanager
async def serving(
    functions: FakeFunctions, options: GatewayOptions | None = None
) -> AsyncIterator[tuple[Gateway, aiohttp.ClientSession]]:
    async with running_gateway(functions, options) as gateway, aiohttp.ClientSession() as http:
        yield gateway, http


async def test_unknown_routes_are_404_not_found_without_invoking() -> None:
    functions = FakeFunctions()
    async with serving(functions) as (gateway, http):
        for method, path in [("GET", "/nope"), ("POST", "/v1/keys/count"), ("GET", "/v1/keys/")]:
            async with http.request(method, gateway.http_url + path) as response:
                assert response.status == 404
                assert await response.text() == '{"message":"Not Found"}'
    assert functions.events_of("HttpApi") == []


async def test_a_route_is_invoked_with_a_payload_format_2_event() -> None:
    functions = FakeFunctions()
    async with serving(functions) as (gateway, http):
        url = f"{gateway.http_url}/v1/keys/{'c' * 32}?a=1&a=2"
        async with http.get(
            url, headers={"Authorization": "Bearer t", "Cookie": "s=1"}
        ) as response:
            assert response.status == 200
    event = functions.events_of("HttpApi")[0]
    model = APIGatewayProxyEventV2Model.model_validate(event)
    assert model.routeKey == "GET /v1/keys/{user_id}"
    assert model.pathParameters == {"user_id": "c" * 32}
    assert model.queryStringParameters == {"a": "1,2"}
    assert model.rawQueryString == "a=1&a=2"
    assert model.headers["authorization"] == "Bearer t"
    assert model.cookies == ["s=1"]
    assert model.requestContext.http.method == "GET"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert model.body is None


async def test_every_catalogue_route_reaches_the_http_function() -> None:
    from parley_server.catalogue import HTTP_ROUTES

    functions = FakeFunctions()
    async with serving(functions) as (gateway, http):
        for key in HTTP_ROUTES:
            method, path = key.split(" ", 1)
            path = path.replace("{user_id}", "0" * 32).replace("{media_id}", "m1")
            async with http.request(method, gateway.http_url + path, json={}) as response:
                assert response.status == 200, key
    assert [e["routeKey"] for e in functions.events_of("HttpApi")] == list(HTTP_ROUTES)


async def test_the_answer_becomes_the_response() -> None:
    def answer(event: dict[str, Any]) -> Any:
        return {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-Thing": "1"},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": json.dumps({"echo": json.loads(event["body"])}),
        }

    async with (
        serving(FakeFunctions({"HttpApi": answer})) as (gateway, http),
        http.post(gateway.http_url + "/v1/auth/otp", json={"phone": "+15550001"}) as response,
    ):
        assert response.status == 201
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["X-Thing"] == "1"
        assert response.headers["apigw-requestid"]
        assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2"]
        assert await response.json() == {"echo": {"phone": "+15550001"}}


async def test_binary_bodies_travel_base64_both_ways() -> None:
    payload = bytes(range(256))

    def answer(event: dict[str, Any]) -> Any:
        assert event["isBase64Encoded"] is True
        received = base64.b64decode(event["body"])
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "isBase64Encoded": True,
            "body": base64.b64encode(received[::-1]).decode(),
        }

    async with (
        serving(FakeFunctions({"HttpApi": answer})) as (gateway, http),
        http.post(
            gateway.http_url + "/v1/media",
            data=payload,
            headers={"Content-Type": "application/octet-stream"},
        ) as response,
    ):
        assert response.status == 200
        assert await response.read() == payload[::-1]


async def test_an_answer_without_status_code_is_json_with_200() -> None:
    functions = FakeFunctions({"HttpApi": lambda event: {"user_id": "abc"}})
    async with serving(functions) as (gateway, http):
        response = await http.get(gateway.http_url + "/v1/users?phone=%2B15550001")
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == {"user_id": "abc"}
    assert functions.events_of("HttpApi")[0]["queryStringParameters"] == {"phone": "+15550001"}


def raises(event: dict[str, Any]) -> Any:
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    "behaviour",
    [
        raises,
        lambda event: {"statusCode": 200, "body": Decimal("1.5")},  # JSON cannot carry it
        lambda event: {"statusCode": "200"},
        lambda event: {"statusCode": 200, "body": {"not": "a string"}},
    ],
)
async def test_handler_failures_are_500_internal_server_error(behaviour: Any) -> None:
    async with serving(FakeFunctions({"HttpApi": behaviour})) as (gateway, http):
        async with http.get(gateway.http_url + "/v1/keys/count") as response:
            assert response.status == 500
            assert await response.text() == '{"message":"Internal Server Error"}'
        # the gateway is unharmed
        async with http.get(gateway.http_url + "/nope") as response:
            assert response.status == 404


async def test_a_body_over_the_limit_is_413_without_invoking() -> None:
    functions = FakeFunctions()
    options = GatewayOptions(http_max_body_bytes=1024)
    async with serving(functions, options) as (gateway, http):
        async with http.post(gateway.http_url + "/v1/media", data=b"x" * 1025) as response:
            assert response.status == 413
            assert await response.json() == {"message": "Request Entity Too Large"}
        async with http.post(gateway.http_url + "/v1/media", data=b"x" * 1024) as response:
            assert response.status == 200
    assert len(functions.events_of("HttpApi")) == 1


async def test_sinks_are_not_served_without_a_local_sns() -> None:
    async with serving(FakeFunctions()) as (gateway, http):
        response = await http.get(gateway.sms_url)
        assert response.status == 404


CORS = HttpCors(
    origins=("https://app.example",),
    methods=("GET", "POST", "PUT"),
    headers=("authorization", "content-type"),
    expose=("retry-after",),
    max_age_s=3600,
)


async def test_cors_preflight_is_answered_by_the_gateway() -> None:
    functions = FakeFunctions()
    async with serving(functions, GatewayOptions(http_cors=CORS)) as (gateway, http):
        response = await http.options(
            gateway.http_url + "/v1/keys",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"},
        )
        assert response.status == 204
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert response.headers["access-control-allow-methods"] == "GET,POST,PUT"
        assert response.headers["access-control-allow-headers"] == "authorization,content-type"
        assert response.headers["access-control-max-age"] == "3600"
        stranger = await http.options(
            gateway.http_url + "/v1/keys",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
        )
        assert "access-control-allow-origin" not in stranger.headers
    assert functions.events_of("HttpApi") == []


async def test_cors_headers_are_the_gateways_on_every_answer() -> None:
    functions = FakeFunctions(
        {
            "HttpApi": lambda event: {
                "statusCode": 429,
                "headers": {"Access-Control-Allow-Origin": "https://wrong.example"},
                "body": "{}",
            }
        }
    )
    async with serving(functions, GatewayOptions(http_cors=CORS)) as (gateway, http):
        response = await http.get(
            gateway.http_url + "/v1/keys/count", headers={"Origin": "https://app.example"}
        )
        assert response.status == 429
        assert response.headers.getall("access-control-allow-origin") == ["https://app.example"]
        assert response.headers["access-control-expose-headers"] == "retry-after"
        missing = await http.get(
            gateway.http_url + "/nope", headers={"Origin": "https://x.example"}
        )
        assert missing.status == 404
        assert "access-control-allow-origin" not in missing.headers
