"""The WebSocket API, as API Gateway runs it.

A connection goes: handshake -> REQUEST authorizer (the `token` query
parameter is its identity source) -> $connect -> 101 -> messages routed on
`$request.body.action` (else $default) -> close -> $disconnect. While $connect
runs the connection exists but is not open, so the @connections API answers
410 for it, as on AWS. Limits are API Gateway's: 32 KB frames, 128 KB
messages (1009 beyond), text only (1003 for binary), 10 min idle, 2 h in all
(1001 "Going away").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp._websocket import reader_py
from aiohttp.http_websocket import WebSocketError

from local.authorizer import AuthorizerDenied, BadAuthorizerResponse, authorizer_context
from local.events import (
    WsFacts,
    compact_json,
    new_connection_id,
    ws_authorizer_event,
    ws_connect_event,
    ws_disconnect_event,
    ws_message_event,
)
from local.lambdas import FunctionError, Invoker
from parley_server.catalogue import WS_ROUTES, RouteSpec

__all__ = [
    "Connection",
    "ConnectionRegistry",
    "Spawn",
    "State",
    "WebSocketApi",
    "WsLimits",
    "select_route",
]

log = logging.getLogger("local")

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]

_REASONS = {
    1000: "Normal closure",
    1001: "Going away",
    1002: "Protocol error",
    1003: "Unsupported data",
    1005: "Client-side close frame status not set",
    1006: "Connection closed abnormally",
    1007: "Invalid frame payload data",
    1008: "Policy violation",
    1009: "Message too big",
    1011: "Internal error",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class WsLimits:
    """API Gateway's WebSocket quotas (all but the timeouts are fixed on AWS)."""

    idle_timeout_s: float = 600.0
    max_connection_s: float = 7200.0
    max_message_bytes: int = 128 * 1024
    max_frame_bytes: int = 32 * 1024
    integration_timeout_s: float = 29.0
    # how long a closing handshake may take before the socket is dropped
    close_timeout_s: float = 5.0
    # how long one message may wait for a client that does not read: then the
    # client is dropped (the post answers 410), so no sender waits on it
    stalled_send_s: float = 2.0


class State(Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(eq=False)
class Connection:
    """One client connection, from handshake to $disconnect."""

    facts: WsFacts
    state: State = State.CONNECTING
    ws: web.WebSocketResponse | None = None
    transport: asyncio.Transport | None = None
    stalled_send_s: float = 2.0
    last_active: float = field(default_factory=time.monotonic)
    last_active_ms: int = field(default_factory=_now_ms)
    # set when the gateway closes the connection (idle, @connections DELETE)
    close_request: tuple[int, str] | None = None

    @property
    def id(self) -> str:
        return self.facts.connection_id

    def touch(self) -> None:
        self.last_active = time.monotonic()
        self.last_active_ms = _now_ms()

    async def send(self, data: str | bytes) -> bool:
        """Deliver one message; False when the connection is not open (any more)."""
        ws = self.ws
        if self.state is not State.OPEN or ws is None or ws.closed:
            return False
        try:
            async with asyncio.timeout(self.stalled_send_s):
                if isinstance(data, str):
                    await ws.send_str(data)
                else:
                    await ws.send_bytes(data)
        except TimeoutError:
            log.warning("ws %s does not read: dropped", self.id)
            if self.transport is not None:
                self.transport.abort()
            return False
        except (ConnectionError, RuntimeError):
            return False
        self.touch()
        return True

    async def close(self, code: int, reason: str) -> None:
        ws = self.ws
        if self.state is not State.OPEN or ws is None or ws.closed:
            return
        self.close_request = (code, reason)
        await ws.close(code=code, message=reason.encode())


class ConnectionRegistry:
    """Every connection the gateway holds, by id (what API Gateway tracks)."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}

    def add(self, connection: Connection) -> None:
        self._connections[connection.id] = connection

    def discard(self, connection_id: str) -> None:
        self._connections.pop(connection_id, None)

    def get(self, connection_id: str) -> Connection | None:
        return self._connections.get(connection_id)

    def open(self, connection_id: str) -> Connection | None:
        """The connection if it is open; None if unknown, connecting or closed."""
        found = self._connections.get(connection_id)
        return found if found is not None and found.state is State.OPEN else None

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._connections.values()))


def select_route(body: str, routes: Mapping[str, RouteSpec]) -> RouteSpec | None:
    """The route for a message: `$request.body.action`, else $default (None if neither)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        parsed = None
    if isinstance(parsed, dict):
        action = parsed.get("action")
        # $connect/$disconnect are lifecycle routes; no message can select them
        if isinstance(action, str) and action in routes and not action.startswith("$"):
            return routes[action]
    return routes.get("$default")


class _FrameLimitedReader(reader_py.WebSocketReader):
    """aiohttp's frame reader with API Gateway's per-frame limit on top of the
    per-message one (aiohttp only has the latter)."""

    frame_limit = 32 * 1024

    def _handle_frame(
        self, fin: bool, opcode: int, payload: bytes | bytearray, compressed: int
    ) -> None:
        data_frame = opcode in (
            reader_py.OP_CODE_TEXT,
            reader_py.OP_CODE_BINARY,
            reader_py.OP_CODE_CONTINUATION,
        )
        if data_frame and len(payload) > self.frame_limit:
            raise WebSocketError(
                WSCloseCode.MESSAGE_TOO_BIG,
                f"Frame of {len(payload)} bytes exceeds {self.frame_limit}",
            )
        super()._handle_frame(fin, opcode, payload, compressed)


class _GatewaySocket(web.WebSocketResponse):
    """A WebSocketResponse whose reader enforces the frame limit.

    Depends on aiohttp internals (pinned in requirements.txt): after the
    handshake the response's queue and parser are swapped for the pure-Python
    ones, the parser subclassed above. Any bytes the client sent before seeing
    the 101 are handed to the new parser so no frame is lost."""

    def __init__(self, *, frame_limit: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._frame_limit = frame_limit

    def _post_start(self, request: Any, protocol: str | None, writer: Any) -> None:
        transport = request.protocol
        early, transport._message_tail = transport._message_tail, b""
        super()._post_start(request, protocol, writer)
        assert self._reader is not None
        queue = reader_py.WebSocketDataQueue(
            request._protocol, self._reader._limit, loop=asyncio.get_running_loop()
        )
        parser = _FrameLimitedReader(queue, self._max_msg_size, compress=False, decode_text=True)
        parser.frame_limit = self._frame_limit
        self._reader = queue
        self._parser = parser
        transport._payload_parser = parser
        if early:
            parser.feed_data(early)


class _Reject(Exception):
    """The handshake is refused with this HTTP answer."""

    def __init__(self, status: int, message: str | None, error_type: str | None = None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.error_type = error_type

    def response(self) -> web.Response:
        headers = {"x-amzn-ErrorType": self.error_type} if self.error_type else {}
        return web.json_response(
            {"message": self.message}, status=self.status, headers=headers, dumps=compact_json
        )


@dataclass
class WebSocketApi:
    """Serves one stage of the WebSocket API on an aiohttp route."""

    invoker: Invoker
    registry: ConnectionRegistry
    spawn: Spawn
    stage: str
    api_id: str
    region: str
    account_id: str
    routes: tuple[RouteSpec, ...] = WS_ROUTES
    authorizer: str | None = "WsAuthorizer"
    identity_query: str = "token"
    limits: WsLimits = field(default_factory=WsLimits)

    def __post_init__(self) -> None:
        self._routes = {route.route_key: route for route in self.routes}

    @property
    def method_arn(self) -> str:
        return (
            f"arn:aws:execute-api:{self.region}:{self.account_id}:"
            f"{self.api_id}/{self.stage}/$connect"
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.json_response(
                {"message": "Upgrade Required"}, status=426, dumps=compact_json
            )
        connection = Connection(
            self._facts(request),
            transport=request.transport,
            stalled_send_s=self.limits.stalled_send_s,
        )
        self.registry.add(connection)
        try:
            protocols = await self._handshake(connection, request)
        except _Reject as reject:
            self.registry.discard(connection.id)
            log.info("ws %s refused: %s", connection.id, reject.status)
            return reject.response()
        except BaseException:
            self.registry.discard(connection.id)
            raise
        ws = _GatewaySocket(
            frame_limit=self.limits.max_frame_bytes,
            # aiohttp refuses a message of exactly max_msg_size; 128 KB itself is allowed
            max_msg_size=self.limits.max_message_bytes + 1,
            compress=False,
            autoping=True,
            protocols=protocols,
            timeout=self.limits.close_timeout_s,
        )
        code, reason = 1006, _REASONS[1006]
        try:
            try:
                await ws.prepare(request)
            except ConnectionError:
                # the client left while $connect ran; $connect said yes, so its
                # handler may have recorded the connection: $disconnect follows
                return ws
            connection.ws = ws
            connection.state = State.OPEN
            connection.touch()
            log.info("ws %s connected", connection.id)
            code, reason = await self._serve(connection, ws)
        finally:
            connection.state = State.CLOSED
            self.registry.discard(connection.id)
            log.info("ws %s closed: %s %s", connection.id, code, reason)
            self.spawn(self._disconnect(connection, code, reason))
        return ws

    def _facts(self, request: web.Request) -> WsFacts:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return WsFacts(
            connection_id=new_connection_id(),
            connected_at_ms=_now_ms(),
            source_ip=str(peer[0]) if peer else "127.0.0.1",
            user_agent=request.headers.get("User-Agent"),
            domain_name=request.host,
            stage=self.stage,
            api_id=self.api_id,
            headers=tuple(request.headers.items()),
            query=tuple(request.query.items()),
            port=request.url.port or 0,
        )

    async def _handshake(self, connection: Connection, request: web.Request) -> tuple[str, ...]:
        """Authorizer then $connect; the subprotocol to accept, or _Reject."""
        token = request.query.get(self.identity_query)
        if self.authorizer is not None:
            if not token:
                # a missing identity source is refused before the authorizer runs
                raise _Reject(401, "Unauthorized", "UnauthorizedException")
            connection.facts = replace(
                connection.facts, authorizer=await self._authorize(connection.facts)
            )
        route = self._routes.get("$connect")
        if route is None:
            return ()
        event = ws_connect_event(connection.facts, _now_ms())
        try:
            result = await self.invoker.invoke(
                route.function, event, limit_s=self.limits.integration_timeout_s
            )
        except FunctionError as exc:
            raise _Reject(504 if exc.kind == "timeout" else 502, "Internal server error") from exc
        status = result.get("statusCode") if isinstance(result, dict) else None
        if isinstance(status, bool) or not isinstance(status, int):
            log.error("%s must answer $connect with a statusCode", route.function)
            raise _Reject(502, "Internal server error")
        if not 200 <= status < 300:
            raise _Reject(status, None)
        headers = result.get("headers") or {}
        chosen = headers.get("Sec-WebSocket-Protocol") if isinstance(headers, dict) else None
        return (chosen,) if isinstance(chosen, str) and chosen else ()

    async def _authorize(self, facts: WsFacts) -> dict[str, Any]:
        assert self.authorizer is not None
        event = ws_authorizer_event(facts, self.method_arn, _now_ms())
        try:
            result = await self.invoker.invoke(
                self.authorizer, event, limit_s=self.limits.integration_timeout_s
            )
        except FunctionError as exc:
            # API Gateway's convention: an authorizer that fails with the message
            # "Unauthorized" means 401; any other failure is a 500.
            if exc.kind == "unhandled" and exc.message == "Unauthorized":
                raise _Reject(401, "Unauthorized", "UnauthorizedException") from exc
            raise _Reject(500, None, "AuthorizerConfigurationException") from exc
        try:
            return authorizer_context(result, self.method_arn)
        except AuthorizerDenied as exc:
            raise _Reject(403, "Forbidden", "AccessDeniedException") from exc
        except BadAuthorizerResponse as exc:
            log.error("%s answered badly: %s", self.authorizer, exc)
            raise _Reject(500, None, "AuthorizerConfigurationException") from exc

    async def _serve(self, connection: Connection, ws: web.WebSocketResponse) -> tuple[int, str]:
        """Read messages until the connection ends; the close code and reason."""
        opened = time.monotonic()
        while True:
            now = time.monotonic()
            deadline = min(
                connection.last_active + self.limits.idle_timeout_s,
                opened + self.limits.max_connection_s,
            )
            if now >= deadline:
                connection.close_request = (1001, _REASONS[1001])
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"Going away")
                return connection.close_request
            try:
                msg = await ws.receive(timeout=deadline - now)
            except TimeoutError:
                continue
            if msg.type is WSMsgType.TEXT:
                connection.touch()
                self.spawn(self._route(connection, msg.data))
            elif msg.type is WSMsgType.BINARY:
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"Unsupported data")
                return 1003, _REASONS[1003]
            elif msg.type is WSMsgType.CLOSE:
                code = int(msg.data) or 1005
                return code, str(msg.extra or "") or _REASONS.get(code, "")
            elif msg.type is WSMsgType.ERROR:
                # aiohttp has closed with the error's code (ws.close_code then
                # reads 1006 because the client never answered the close)
                error = msg.data
                code = error.code if isinstance(error, WebSocketError) else 1011
                return code, _REASONS.get(code, str(error))
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                return connection.close_request or (1006, _REASONS[1006])

    async def _route(self, connection: Connection, body: str) -> None:
        route = select_route(body, self._routes)
        event = ws_message_event(
            connection.facts, route.route_key if route else "$default", body, _now_ms()
        )
        request_id = event["requestContext"]["requestId"]
        if route is None:
            await connection.send(self._gateway_error("Forbidden", connection, request_id))
            return
        try:
            result = await self.invoker.invoke(
                route.function, event, limit_s=self.limits.integration_timeout_s
            )
        except FunctionError as exc:
            message = (
                "Endpoint request timed out" if exc.kind == "timeout" else "Internal server error"
            )
            await connection.send(self._gateway_error(message, connection, request_id))
            return
        if route.two_way and isinstance(result, dict) and isinstance(result.get("body"), str):
            await connection.send(result["body"])

    @staticmethod
    def _gateway_error(message: str, connection: Connection, request_id: str) -> str:
        return json.dumps(
            {"message": message, "connectionId": connection.id, "requestId": request_id}
        )

    async def _disconnect(self, connection: Connection, code: int, reason: str) -> None:
        route = self._routes.get("$disconnect")
        if route is None:
            return
        event = ws_disconnect_event(connection.facts, code, reason, _now_ms())
        # a failure is logged by the invoker; API Gateway does not retry $disconnect either
        with contextlib.suppress(FunctionError):
            await self.invoker.invoke(
                route.function, event, limit_s=self.limits.integration_timeout_s
            )
