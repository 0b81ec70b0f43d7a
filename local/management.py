"""The @connections management API: POST (send), GET (describe), DELETE (close).

Served at /{stage}/@connections/{connection_id} so boto3's own
`apigatewaymanagementapi` client works against it unchanged. Errors carry the
x-amzn-ErrorType header botocore reads the error code from; a connection that
is unknown, closed, or still in $connect is GoneException (410), as on AWS.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from urllib.parse import unquote

from aiohttp import web

from local.events import compact_json
from local.websocket import ConnectionRegistry, Spawn

__all__ = ["ConnectionsApi"]

log = logging.getLogger("local")


def _iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _error(status: int, error_type: str, message: str | None) -> web.Response:
    return web.json_response(
        {"message": message},
        status=status,
        headers={"x-amzn-ErrorType": error_type},
        dumps=compact_json,
    )


class ConnectionsApi:
    """The management API of one stage, over the gateway's connection registry."""

    def __init__(
        self, registry: ConnectionRegistry, *, stage: str, max_message_bytes: int, spawn: Spawn
    ) -> None:
        self.registry = registry
        self.stage = stage
        self.max_message_bytes = max_message_bytes
        self._spawn = spawn

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Split the raw path, then decode: a connection id may hold characters
        # (= + /) that only survive routing percent-encoded.
        parts = request.raw_path.split("?", 1)[0].split("/")
        if len(parts) != 4 or [unquote(p) for p in parts[1:3]] != [self.stage, "@connections"]:
            return _error(403, "ForbiddenException", "Forbidden")
        connection_id = unquote(parts[3])
        if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            # every call must be SigV4-signed (boto3 always signs)
            return _error(403, "ForbiddenException", "Missing Authentication Token")
        if request.method not in ("POST", "GET", "DELETE"):
            return _error(403, "ForbiddenException", "Missing Authentication Token")
        data = await request.read() if request.method == "POST" else b""
        if len(data) > self.max_message_bytes:
            return _error(413, "PayloadTooLargeException", "Request entity too large")
        connection = self.registry.open(connection_id)
        if connection is None:
            return _error(410, "GoneException", None)
        if request.method == "GET":
            # boto3 shows these as ConnectedAt / Identity.SourceIp / …; on the
            # wire they are camelCase (the service model's locationName)
            facts = connection.facts
            described = {
                "connectedAt": _iso(facts.connected_at_ms),
                "identity": {"sourceIp": facts.source_ip, "userAgent": facts.user_agent or ""},
                "lastActiveAt": _iso(connection.last_active_ms),
            }
            return web.Response(text=json.dumps(described), content_type="application/json")
        if request.method == "DELETE":
            self._spawn(connection.close(1000, "Normal closure"))
            return web.Response(status=204)
        # API Gateway sends posted data as a text frame; bytes that are not
        # UTF-8 can only go as binary
        try:
            message: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            message = data
        if not await connection.send(message):
            return _error(410, "GoneException", None)
        return web.Response(status=200)
