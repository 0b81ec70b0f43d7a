"""The events API Gateway sends to Lambda, and how it reads the answers.

Pure functions over plain values, so their shapes can be checked against
Powertools' models without a server. Shapes follow what API Gateway sends:
HTTP API payload format 2.0, and the WebSocket API's CONNECT / MESSAGE /
DISCONNECT events plus the REQUEST authorizer's event for $connect.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote

__all__ = [
    "BadIntegrationResponse",
    "HttpAnswer",
    "HttpRequestFacts",
    "WsFacts",
    "clf_time",
    "compact_json",
    "http_answer",
    "http_event",
    "new_api_id",
    "new_connection_id",
    "new_request_id",
    "ws_authorizer_event",
    "ws_connect_event",
    "ws_disconnect_event",
    "ws_message_event",
]

_ALNUM = string.ascii_letters + string.digits
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Payload format 2.0 passes these content types as text; anything else is base64.
_TEXT_TYPES = (
    "application/json",
    "application/javascript",
    "application/xml",
    "application/yaml",
    "application/x-www-form-urlencoded",
)


def compact_json(value: Any) -> str:
    """JSON as API Gateway writes its own answers: no spaces."""
    return json.dumps(value, separators=(",", ":"))


class BadIntegrationResponse(ValueError):
    """A handler answered with something API Gateway cannot turn into a response."""


def _token(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_connection_id() -> str:
    # API Gateway's ids look like "L0SM9cOFvHcCIhw=": the "=" must survive
    # percent-encoding in @connections URLs, so keep it.
    return _token(15) + "="


def new_request_id() -> str:
    return _token(15) + "="


def new_api_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))


def clf_time(epoch_s: float) -> str:
    """API Gateway's requestTime: `09/Feb/2024:18:11:43 +0000`."""
    t = time.gmtime(epoch_s)
    clock = time.strftime("%H:%M:%S", t)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"


# --- WebSocket API ---------------------------------------------------------------------


@dataclass(frozen=True)
class WsFacts:
    """What API Gateway knows about a connection when it builds an event."""

    connection_id: str
    connected_at_ms: int
    source_ip: str
    user_agent: str | None
    domain_name: str
    stage: str
    api_id: str
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    authorizer: Mapping[str, Any] | None = None
    port: int = 0


def _single_and_multi(
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _ws_context(
    facts: WsFacts, route_key: str, event_type: str, now_ms: int, **extra: Any
) -> dict[str, Any]:
    identity: dict[str, Any] = {"sourceIp": facts.source_ip}
    if facts.user_agent is not None:
        identity["userAgent"] = facts.user_agent
    request_id = new_request_id()
    context: dict[str, Any] = {
        "routeKey": route_key,
        **extra,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": clf_time(now_ms / 1000),
        "messageDirection": "IN",
        "stage": facts.stage,
        "connectedAt": facts.connected_at_ms,
        "requestTimeEpoch": now_ms,
        "identity": identity,
        "requestId": request_id,
        "domainName": facts.domain_name,
        "connectionId": facts.connection_id,
        "apiId": facts.api_id,
    }
    if facts.authorizer is not None:
        context["authorizer"] = dict(facts.authorizer)
    return context


def _handshake_headers(facts: WsFacts) -> list[tuple[str, str]]:
    # API Gateway adds the forwarding headers and a trace id to the client's own.
    trace = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    return [
        *facts.headers,
        ("X-Amzn-Trace-Id", trace),
        ("X-Forwarded-For", facts.source_ip),
        ("X-Forwarded-Port", str(facts.port)),
        ("X-Forwarded-Proto", "http"),
    ]


def _with_query(event: dict[str, Any], facts: WsFacts) -> dict[str, Any]:
    if facts.query:
        single, multi = _single_and_multi(facts.query)
        event["queryStringParameters"] = single
        event["multiValueQueryStringParameters"] = multi
    return event


def ws_authorizer_event(facts: WsFacts, method_arn: str, now_ms: int) -> dict[str, Any]:
    """The REQUEST authorizer's event for $connect (format 1.0, as WebSocket APIs send)."""
    headers, multi = _single_and_multi(_handshake_headers(facts))
    unauthorized = replace(facts, authorizer=None)
    event: dict[str, Any] = {
        "type": "REQUEST",
        "methodArn": method_arn,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": {},
        "multiValueQueryStringParameters": {},
        "stageVariables": {},
        "requestContext": _ws_context(unauthorized, "$connect", "CONNECT", now_ms),
    }
    return _with_query(event, facts)


def ws_connect_event(facts: WsFacts, now_ms: int) -> dict[str, Any]:
    headers, multi = _single_and_multi(_handshake_headers(facts))
    event: dict[str, Any] = {
        "headers": headers,
        "multiValueHeaders": multi,
        "requestContext": _ws_context(facts, "$connect", "CONNECT", now_ms),
        "isBase64Encoded": False,
    }
    return _with_query(event, facts)


def ws_message_event(facts: WsFacts, route_key: str, body: str, now_ms: int) -> dict[str, Any]:
    return {
        "requestContext": _ws_context(
            facts, route_key, "MESSAGE", now_ms, messageId=new_request_id()
        ),
        "body": body,
        "isBase64Encoded": False,
    }


def ws_disconnect_event(facts: WsFacts, code: int, reason: str, now_ms: int) -> dict[str, Any]:
    # $disconnect carries no client headers, only these (as API Gateway sends them).
    headers, multi = _single_and_multi(
        [("Host", facts.domain_name), ("x-api-key", ""), ("X-Forwarded-For", ""), ("x-restapi", "")]
    )
    return {
        "headers": headers,
        "multiValueHeaders": multi,
        "requestContext": _ws_context(
            facts,
            "$disconnect",
            "DISCONNECT",
            now_ms,
            disconnectStatusCode=code,
            disconnectReason=reason,
        ),
        "isBase64Encoded": False,
    }


# --- HTTP API (payload format 2.0) -----------------------------------------------------


@dataclass(frozen=True)
class HttpRequestFacts:
    method: str
    raw_path: str
    raw_query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source_ip: str
    domain_name: str
    api_id: str
    account_id: str
    port: int = 0
    protocol: str = "HTTP/1.1"
    path_parameters: Mapping[str, str] = field(default_factory=dict)


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return (
        kind.startswith("text/")
        or kind in _TEXT_TYPES
        or kind.endswith("+json")
        or kind.endswith("+xml")
    )


def http_event(facts: HttpRequestFacts, route_key: str, now_ms: int) -> dict[str, Any]:
    """The HTTP API's event for one request, as payload format 2.0 has it."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in facts.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    headers["x-forwarded-for"] = facts.source_ip
    headers["x-forwarded-port"] = str(facts.port)
    headers["x-forwarded-proto"] = "http"
    headers["x-amzn-trace-id"] = f"Root=1-{now_ms // 1000:08x}-{secrets.token_hex(12)}"
    request_id = new_request_id()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": facts.raw_path,
        "rawQueryString": facts.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query: dict[str, str] = {}
    for key, value in parse_qsl(facts.raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    if query:
        event["queryStringParameters"] = query
    if facts.path_parameters:
        event["pathParameters"] = dict(facts.path_parameters)
    event["requestContext"] = {
        "accountId": facts.account_id,
        "apiId": facts.api_id,
        "domainName": facts.domain_name,
        "domainPrefix": facts.domain_name.split(".", 1)[0],
        "http": {
            "method": facts.method,
            "path": unquote(facts.raw_path),
            "protocol": facts.protocol,
            "sourceIp": facts.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": clf_time(now_ms / 1000),
        "timeEpoch": now_ms,
    }
    if facts.body:
        text = None
        if _is_text(headers.get("content-type")):
            try:
                text = facts.body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        event["body"] = text if text is not None else base64.b64encode(facts.body).decode()
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def http_answer(result: Any) -> HttpAnswer:
    """The HTTP response API Gateway makes of a format-2.0 handler result.

    A result without `statusCode` is taken as a JSON body with status 200, as
    API Gateway does; a malformed one is BadIntegrationResponse (a 500)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        body = json.dumps(result).encode()
        return HttpAnswer(200, (("content-type", "application/json"),), body)
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise BadIntegrationResponse(f"statusCode must be an HTTP status, got {status!r}")
    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise BadIntegrationResponse("headers must be an object")
    for name, value in raw_headers.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise BadIntegrationResponse(f"header {name!r} must be a string")
        headers.append((str(name), str(value)))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise BadIntegrationResponse("cookies must be a list of strings")
    headers.extend(("set-cookie", cookie) for cookie in cookies)
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif not isinstance(raw_body, str):
        raise BadIntegrationResponse("body must be a string")
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except ValueError as exc:
            raise BadIntegrationResponse("body is not valid base64") from exc
    else:
        body = raw_body.encode()
    return HttpAnswer(status, tuple(headers), body)
