"""The HTTP API: route matching as API Gateway does it, then one Lambda proxy
integration (payload format 2.0) for every route.

Matching: the route whose path has the most literal segments wins over one
with {variables}, which wins over a greedy {proxy+}; ANY matches every method
but loses to a route naming the method. No match is 404 {"message":"Not Found"}.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict

from local.events import (
    BadIntegrationResponse,
    HttpRequestFacts,
    compact_json,
    http_answer,
    http_event,
)
from local.lambdas import FunctionError, Invoker

__all__ = ["HttpApi", "HttpCors", "HttpRouter", "RouteMatch"]

log = logging.getLogger("local")

_LITERAL, _VARIABLE, _GREEDY = 2, 1, 0


@dataclass(frozen=True)
class RouteMatch:
    route_key: str
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class _Route:
    key: str
    method: str
    segments: tuple[str, ...]


class HttpRouter:
    """Route keys ("GET /v1/keys/{user_id}", "ANY /{proxy+}", "$default") to matches."""

    def __init__(self, route_keys: Iterable[str]) -> None:
        self._routes: list[_Route] = []
        self._default = False
        for key in route_keys:
            if key == "$default":
                self._default = True
                continue
            method, _, path = key.partition(" ")
            if not path.startswith("/"):
                raise ValueError(f"bad route key {key!r}")
            segments = tuple(s for s in path.split("/")[1:])
            self._routes.append(_Route(key, method.upper(), segments))

    def match(self, method: str, raw_path: str) -> RouteMatch | None:
        parts = [unquote(p) for p in raw_path.split("/")[1:]]
        best: tuple[tuple[int, ...], RouteMatch] | None = None
        for route in self._routes:
            if route.method not in (method.upper(), "ANY"):
                continue
            found = self._match_path(route.segments, parts)
            if found is None:
                continue
            scores, params = found
            rank = (*scores, 1 if route.method != "ANY" else 0)
            if best is None or rank > best[0]:
                best = (rank, RouteMatch(route.key, params))
        if best is not None:
            return best[1]
        return RouteMatch("$default", {}) if self._default else None

    @staticmethod
    def _match_path(
        segments: tuple[str, ...], parts: list[str]
    ) -> tuple[tuple[int, ...], dict[str, str]] | None:
        params: dict[str, str] = {}
        scores: list[int] = []
        for i, segment in enumerate(segments):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = parts[i:]
                if not rest or not any(rest):
                    return None
                params[segment[1:-2]] = "/".join(rest)
                scores.append(_GREEDY)
                return tuple(scores), params
            if i >= len(parts):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                if not parts[i]:
                    return None
                params[segment[1:-1]] = parts[i]
                scores.append(_VARIABLE)
            elif segment == parts[i]:
                scores.append(_LITERAL)
            else:
                return None
        if len(parts) != len(segments):
            return None
        return tuple(scores), params


@dataclass(frozen=True)
class HttpCors:
    """The HTTP API's CORS configuration: API Gateway answers preflights itself
    and adds the CORS headers to every answer for an allowed origin."""

    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    max_age_s: int

    def allowed_origin(self, origin: str | None) -> str | None:
        if not origin:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def preflight(self, request: web.Request) -> web.Response:
        headers = {}
        origin = self.allowed_origin(request.headers.get("Origin"))
        if origin is not None:
            headers = {
                "access-control-allow-origin": origin,
                "access-control-allow-methods": ",".join(self.methods),
                "access-control-allow-headers": ",".join(self.headers),
                "access-control-max-age": str(self.max_age_s),
            }
        return web.Response(status=204, headers=headers)

    def decorate(self, request: web.Request, headers: CIMultiDict[str]) -> None:
        origin = self.allowed_origin(request.headers.get("Origin"))
        # API Gateway's CORS headers replace any the integration set
        for name in list(headers):
            if name.lower().startswith("access-control-"):
                del headers[name]
        if origin is not None:
            headers["access-control-allow-origin"] = origin
            if self.expose:
                headers["access-control-expose-headers"] = ",".join(self.expose)


def _gateway_error(status: int, message: str, request_id: str | None = None) -> web.Response:
    headers = {"apigw-requestid": request_id} if request_id else {}
    return web.json_response(
        {"message": message}, status=status, headers=headers, dumps=compact_json
    )


class HttpApi:
    """Serves the HTTP API's routes with one function (the HttpApi Lambda)."""

    def __init__(
        self,
        invoker: Invoker,
        route_keys: Iterable[str],
        *,
        function: str,
        api_id: str,
        account_id: str,
        max_body_bytes: int = 10 * 1024 * 1024,
        integration_timeout_s: float = 30.0,
        cors: HttpCors | None = None,
    ) -> None:
        self.invoker = invoker
        self.router = HttpRouter(route_keys)
        self.function = function
        self.api_id = api_id
        self.account_id = account_id
        self.max_body_bytes = max_body_bytes
        self.integration_timeout_s = integration_timeout_s
        self.cors = cors

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.cors is None:
            return await self._answer(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return self.cors.preflight(request)
        response = await self._answer(request)
        self.cors.decorate(request, response.headers)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        match = self.router.match(request.method, raw_path)
        if match is None:
            return _gateway_error(404, "Not Found")
        if (request.content_length or 0) > self.max_body_bytes:
            return _gateway_error(413, "Request Entity Too Large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _gateway_error(413, "Request Entity Too Large")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        facts = HttpRequestFacts(
            method=request.method,
            raw_path=raw_path,
            raw_query=request.rel_url.raw_query_string,
            headers=tuple(request.headers.items()),
            body=body,
            source_ip=str(peer[0]) if peer else "127.0.0.1",
            domain_name=request.host,
            api_id=self.api_id,
            account_id=self.account_id,
            port=request.url.port or 0,
            protocol=f"HTTP/{request.version.major}.{request.version.minor}",
            path_parameters=match.path_parameters,
        )
        event = http_event(facts, match.route_key, int(time.time() * 1000))
        request_id = event["requestContext"]["requestId"]
        try:
            result = await self.invoker.invoke(
                self.function, event, limit_s=self.integration_timeout_s
            )
            answer = http_answer(result)
        except FunctionError:
            return _gateway_error(500, "Internal Server Error", request_id)
        except BadIntegrationResponse as exc:
            log.error("%s answered %s badly: %s", self.function, match.route_key, exc)
            return _gateway_error(500, "Internal Server Error", request_id)
        headers = CIMultiDict(answer.headers)
        headers["apigw-requestid"] = request_id
        return web.Response(status=answer.status, body=answer.body, headers=headers)
