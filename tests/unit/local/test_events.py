"""The event shapes the local gateway builds, checked against Powertools' models,
and how it reads handler answers (API Gateway's rules)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketConnectEventRequestContext,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

from local.events import (
    BadIntegrationResponse,
    HttpRequestFacts,
    WsFacts,
    clf_time,
    http_answer,
    http_event,
    new_connection_id,
    ws_authorizer_event,
    ws_connect_event,
    ws_disconnect_event,
    ws_message_event,
)

NOW_MS = 1_707_502_303_420
AUTHORIZER = {"user_id": "a" * 32, "device_id": "b" * 16, "principalId": "a" * 32}
ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/local/$connect"


def facts(**changes: object) -> WsFacts:
    base: dict[str, object] = {
        "connection_id": "L0SM9cOFvHcCIhw=",
        "connected_at_ms": NOW_MS - 1000,
        "source_ip": "127.0.0.1",
        "user_agent": "parley-test/1",
        "domain_name": "127.0.0.1:8787",
        "stage": "local",
        "api_id": "abcdef1234",
        "headers": (("Host", "127.0.0.1:8787"), ("Sec-WebSocket-Version", "13")),
        "query": (("token", "t0k"),),
        "authorizer": AUTHORIZER,
        "port": 8787,
    }
    base.update(changes)
    return WsFacts(**base)  # type: ignore[arg-type]


def test_connect_event_validates_and_carries_headers_query_and_authorizer() -> None:
    event = ws_connect_event(facts(), NOW_MS)
    model = APIGatewayWebSocketConnectEventModel.model_validate(event)
    assert model.request_context.connection_id == "L0SM9cOFvHcCIhw="
    assert model.request_context.stage == "local"
    assert event["queryStringParameters"] == {"token": "t0k"}
    assert event["multiValueQueryStringParameters"] == {"token": ["t0k"]}
    assert event["headers"]["Sec-WebSocket-Version"] == "13"
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["requestContext"]["authorizer"] == AUTHORIZER
    assert event["requestContext"]["identity"] == {
        "sourceIp": "127.0.0.1",
        "userAgent": "parley-test/1",
    }


def test_message_event_validates_with_route_body_and_authorizer() -> None:
    event = ws_message_event(facts(), "send", '{"action":"send"}', NOW_MS)
    model = APIGatewayWebSocketMessageEventModel.model_validate(event)
    assert model.request_context.route_key == "send"
    assert model.request_context.event_type == "MESSAGE"
    assert model.request_context.message_id
    assert model.body == '{"action":"send"}'
    assert event["requestContext"]["authorizer"] == AUTHORIZER
    assert event["requestContext"]["requestTimeEpoch"] == NOW_MS


def test_disconnect_event_validates_with_code_reason_and_authorizer() -> None:
    event = ws_disconnect_event(facts(), 1001, "Going away", NOW_MS)
    model = APIGatewayWebSocketDisconnectEventModel.model_validate(event)
    assert model.request_context.disconnect_status_code == 1001
    assert model.request_context.disconnect_reason == "Going away"
    assert event["requestContext"]["authorizer"] == AUTHORIZER
    assert "queryStringParameters" not in event


def test_authorizer_event_has_method_arn_query_and_no_authorizer_yet() -> None:
    event = ws_authorizer_event(facts(), ARN, NOW_MS)
    wrapped = APIGatewayAuthorizerRequestEvent(event)
    assert wrapped.get_type == "REQUEST"
    assert wrapped.method_arn == ARN
    assert wrapped.parsed_arn.api_id == "abcdef1234"
    assert wrapped.parsed_arn.stage == "local"
    assert wrapped.query_string_parameters == {"token": "t0k"}
    assert wrapped.headers["host"] == "127.0.0.1:8787"
    context = APIGatewayWebSocketConnectEventRequestContext.model_validate(event["requestContext"])
    assert context.route_key == "$connect"
    assert "authorizer" not in event["requestContext"]


def test_request_time_is_in_common_log_format() -> None:
    assert clf_time(1_707_502_303.42) == "09/Feb/2024:18:11:43 +0000"


def test_connection_ids_look_like_api_gateways() -> None:
    ids = {new_connection_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9]{15}=", i) for i in ids)


def http_facts(**changes: object) -> HttpRequestFacts:
    base: dict[str, object] = {
        "method": "GET",
        "raw_path": "/v1/keys/abc%20def",
        "raw_query": "a=1&a=2&b=x%20y",
        "headers": (
            ("Host", "127.0.0.1:8787"),
            ("User-Agent", "curl/8"),
            ("Cookie", "s=1; t=2"),
            ("X-Dup", "1"),
            ("X-Dup", "2"),
        ),
        "body": b"",
        "source_ip": "127.0.0.1",
        "domain_name": "127.0.0.1:8787",
        "api_id": "abcdef1234",
        "account_id": "123456789012",
        "port": 8787,
        "path_parameters": {"user_id": "abc def"},
    }
    base.update(changes)
    return HttpRequestFacts(**base)  # type: ignore[arg-type]


def test_http_event_validates_as_payload_format_2() -> None:
    event = http_event(http_facts(), "GET /v1/keys/{user_id}", NOW_MS)
    model = APIGatewayProxyEventV2Model.model_validate(event)
    assert model.version == "2.0"
    assert model.routeKey == "GET /v1/keys/{user_id}"
    assert model.rawPath == "/v1/keys/abc%20def"
    assert model.requestContext.http.path == "/v1/keys/abc def"
    assert model.requestContext.stage == "$default"
    assert model.pathParameters == {"user_id": "abc def"}
    # duplicates are comma-joined, names lowercased, cookies moved out of the headers
    assert model.queryStringParameters == {"a": "1,2", "b": "x y"}
    assert model.headers["x-dup"] == "1,2"
    assert "cookie" not in model.headers
    assert model.cookies == ["s=1", "t=2"]
    assert "body" not in event
    assert event["isBase64Encoded"] is False
    assert APIGatewayProxyEventV2(event).request_context.http.user_agent == "curl/8"


def test_http_event_passes_json_as_text_and_other_bodies_as_base64() -> None:
    text = http_event(
        http_facts(
            method="POST",
            headers=(("Content-Type", "application/json; charset=utf-8"),),
            body=b'{"phone":"+15550001"}',
        ),
        "POST /v1/auth/otp",
        NOW_MS,
    )
    assert text["body"] == '{"phone":"+15550001"}'
    assert text["isBase64Encoded"] is False
    binary = http_event(
        http_facts(
            method="POST",
            headers=(("Content-Type", "application/octet-stream"),),
            body=b"\x00\xff",
        ),
        "POST /v1/media",
        NOW_MS,
    )
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x00\xff"
    APIGatewayProxyEventV2Model.model_validate(binary)


def test_http_event_without_query_or_params_omits_them() -> None:
    event = http_event(
        http_facts(raw_query="", path_parameters={}, headers=()), "GET /v1/keys/count", NOW_MS
    )
    assert "queryStringParameters" not in event
    assert "pathParameters" not in event
    assert "cookies" not in event
    APIGatewayProxyEventV2Model.model_validate(event)


def test_answer_with_status_headers_cookies_and_body() -> None:
    answer = http_answer(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-N": 3},
            "cookies": ["a=1", "b=2"],
            "body": '{"ok":true}',
        }
    )
    assert answer.status == 201
    assert ("Content-Type", "application/json") in answer.headers
    assert ("X-N", "3") in answer.headers
    assert [v for k, v in answer.headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert answer.body == b'{"ok":true}'


def test_answer_base64_body_is_decoded() -> None:
    raw = b"\x00\x01binary"
    answer = http_answer(
        {"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(raw).decode()}
    )
    assert answer.body == raw


def test_answer_without_status_code_is_a_json_body_with_200() -> None:
    answer = http_answer({"user_id": "abc"})
    assert answer.status == 200
    assert answer.headers == (("content-type", "application/json"),)
    assert json.loads(answer.body) == {"user_id": "abc"}


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "200"},
        {"statusCode": True},
        {"statusCode": 99},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "headers": {"x": {"nested": 1}}},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
    ],
)
def test_malformed_answers_are_refused(result: dict[str, object]) -> None:
    with pytest.raises(BadIntegrationResponse):
        http_answer(result)
