"""One aiohttp server playing API Gateway: the HTTP API at /, the WebSocket API
and its @connections API at /{stage}, and the local-only sinks at /_local.

The handler table is injectable: the real handlers (CatalogueHandlers) in
`make serve`, small fakes in the gateway's own tests.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from local.events import compact_json, new_api_id
from local.http_api import HttpApi, HttpCors
from local.lambdas import Invoker
from local.management import ConnectionsApi
from local.websocket import ConnectionRegistry, WebSocketApi, WsLimits
from parley_server.catalogue import HTTP_ROUTES, WS_ROUTES, RouteSpec

__all__ = ["Gateway", "GatewayOptions"]

log = logging.getLogger("local")


@dataclass(frozen=True)
class GatewayOptions:
    host: str = "127.0.0.1"
    port: int = 8787
    stage: str = "local"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    ws: WsLimits = field(default_factory=WsLimits)
    http_max_body_bytes: int = 10 * 1024 * 1024
    http_integration_timeout_s: float = 30.0
    http_function: str = "HttpApi"
    http_cors: HttpCors | None = None
    authorizer: str | None = "WsAuthorizer"


class Sinks(Protocol):
    """What /_local/sms and /_local/push serve: local/sinks.py's records, read from
    moto's process (local/moto_process.py), a blocking call made off the loop."""

    def sms(self) -> list[dict[str, Any]]: ...

    def push(self) -> list[dict[str, Any]]: ...


class Gateway:
    """The emulated APIs, over an Invoker. `start()` binds, `stop()` drains and closes."""

    def __init__(
        self,
        invoker: Invoker,
        options: GatewayOptions | None = None,
        *,
        ws_routes: tuple[RouteSpec, ...] = WS_ROUTES,
        http_routes: Iterable[str] = HTTP_ROUTES,
        sinks: Sinks | None = None,
    ) -> None:
        self.options = options or GatewayOptions()
        self.invoker = invoker
        self.sinks = sinks
        self.registry = ConnectionRegistry()
        self._tasks: set[asyncio.Task[None]] = set()
        opts = self.options
        self.websocket = WebSocketApi(
            invoker,
            self.registry,
            self.spawn,
            stage=opts.stage,
            api_id=new_api_id(),
            region=opts.region,
            account_id=opts.account_id,
            routes=ws_routes,
            authorizer=opts.authorizer,
            limits=opts.ws,
        )
        self.connections = ConnectionsApi(
            self.registry,
            stage=opts.stage,
            max_message_bytes=opts.ws.max_message_bytes,
            spawn=self.spawn,
        )
        self.http = HttpApi(
            invoker,
            http_routes,
            function=opts.http_function,
            api_id=new_api_id(),
            account_id=opts.account_id,
            max_body_bytes=opts.http_max_body_bytes,
            integration_timeout_s=opts.http_integration_timeout_s,
            cors=opts.http_cors,
        )
        self.app = self._build_app()
        self._runner: web.AppRunner | None = None
        self.port = opts.port

    def _build_app(self) -> web.Application:
        opts = self.options
        # aiohttp would refuse larger bodies itself; the HTTP API answers 413 its own way
        app = web.Application(client_max_size=opts.http_max_body_bytes + 1)
        stage = f"/{opts.stage}"
        app.router.add_get(stage, self.websocket.handle)
        app.router.add_route("*", stage + "/@connections/{tail:.*}", self.connections.handle)
        app.router.add_get("/_local/sms", self._sms)
        app.router.add_get("/_local/push", self._push)
        app.router.add_route("*", "/{tail:.*}", self.http.handle)
        return app

    # --- URLs --------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.options.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.options.host}:{self.port}/{self.options.stage}"

    @property
    def connections_url(self) -> str:
        """The @connections endpoint (what handlers get as PARLEY_WS_ENDPOINT)."""
        return f"{self.http_url}/{self.options.stage}"

    @property
    def sms_url(self) -> str:
        return f"{self.http_url}/_local/sms"

    @property
    def push_url(self) -> str:
        return f"{self.http_url}/_local/push"

    # --- lifecycle ---------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` in the background; stop() waits for it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("gateway task failed", exc_info=task.exception())

    async def start(self, sock: socket.socket | None = None) -> None:
        """Serve on `sock` if given (already bound), else on options.host:port (0 = any)."""
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
            # a connection that has not sent a whole request (a handshake that never
            # ends, a socket that never speaks) is closed after the idle timeout, as
            # API Gateway does; aiohttp's own default is an hour
            keepalive_timeout=self.options.ws.idle_timeout_s,
        )
        await self._runner.setup()
        site: web.BaseSite
        if sock is None:
            sock = bind(self.options.host, self.options.port)
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.port = sock.getsockname()[1]

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Close every connection (1001, as API Gateway does on a deploy), let
        $disconnect and in-flight invocations finish, then stop serving."""
        closing = [c.close(1001, "Going away") for c in self.registry]
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        pending = list(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_s)
            for task in late:
                task.cancel()

    # --- sinks -------------------------------------------------------------------------

    async def _sms(self, request: web.Request) -> web.Response:
        if self.sinks is None:
            return web.json_response({"message": "Not Found"}, status=404, dumps=compact_json)
        return web.json_response(await asyncio.to_thread(self.sinks.sms), dumps=compact_json)

    async def _push(self, request: web.Request) -> web.Response:
        if self.sinks is None:
            return web.json_response({"message": "Not Found"}, status=404, dumps=compact_json)
        return web.json_response(await asyncio.to_thread(self.sinks.push), dumps=compact_json)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock
