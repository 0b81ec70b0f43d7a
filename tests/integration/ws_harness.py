"""What the WebSocket integration tests share.

- `ConnectionsEndpoint`: a real HTTP server on loopback that serves API Gateway's
  @connections POST, so handlers use boto3's real `apigatewaymanagementapi`
  client (moto passes non-AWS URLs through). It records what each connection
  received and answers 410 GoneException for connections marked gone. (moto's
  own @connections concatenates posts and never answers 410.)
- Event builders with the shapes API Gateway sends (tests/events/ws_*.json are
  recorded examples; a test checks the builders match them).
- `Harness`: invokes each route's handler with exactly its function's
  environment (`function_env`), against moto in-process.
"""

from __future__ import annotations

import base64
import importlib
import itertools
import json
import re
import secrets
import string
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from local.iam.enforce import acting_as
from parley_server.catalogue import WS_ROUTES, Setting, function
from parley_server.store.users import UsersStore
from tests.conftest import FakeAws
from tests.device_lists import list_devices

EVENTS = Path(__file__).resolve().parent.parent / "events"
STAGE = "local"
_PATH = re.compile(r"^/[^/]+/(?:@|%40)connections/([^/]+)$")
_COUNTER = itertools.count(1)


class ConnectionsEndpoint:
    """@connections on 127.0.0.1: POST /{stage}/@connections/{id} records the event,
    DELETE records the close (answered `fail_closes` with a 500 instead)."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.gone: set[str] = set()
        self.closed: list[str] = []
        self.fail_closes = False
        self.posts = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_DELETE(self) -> None:
                found = _PATH.match(self.path)
                if not found:
                    self._answer(404, "NotFoundException")
                    return
                connection_id = unquote(found.group(1))
                with endpoint._lock:
                    if endpoint.fail_closes:
                        self._answer(500, "InternalServerErrorException")
                        return
                    if connection_id in endpoint.gone:
                        self._answer(410, "GoneException")
                        return
                    endpoint.closed.append(connection_id)
                    endpoint.gone.add(connection_id)
                self._answer(204, None)

            def do_POST(self) -> None:
                found = _PATH.match(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                if not found:
                    self._answer(404, "NotFoundException")
                    return
                connection_id = unquote(found.group(1))
                with endpoint._lock:
                    endpoint.posts += 1
                    if connection_id in endpoint.gone:
                        self._answer(410, "GoneException")
                        return
                    endpoint.received[connection_id].append(json.loads(data))
                self._answer(200, None)

            def _answer(self, status: int, error: str | None) -> None:
                body = json.dumps({"message": error}).encode() if error else b""
                self.send_response(status)
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{STAGE}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def posted(self, connection_id: str) -> list[dict[str, Any]]:
        """What was posted to the connection, one entry a post (an event or a batch)."""
        with self._lock:
            return list(self.received.get(connection_id, []))

    def events(self, connection_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The events posted to the connection as its client reads them (a batch's one
        by one), of `kind` if given."""
        got = [
            event
            for post in self.posted(connection_id)
            for event in (post["events"] if post.get("event") == "batch" else [post])
        ]
        return [e for e in got if kind is None or e.get("event") == kind]

    def clear(self) -> None:
        with self._lock:
            self.received.clear()


# -- events -----------------------------------------------------------------------------


def new_connection_id() -> str:
    # API Gateway's look like "L0SM9cOFvHcCIhw=": letters and digits, then "="
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(15)) + "="


def _context(
    route: str, event_type: str, connection_id: str, user_id: str, device_id: str
) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    request_id = f"req{next(_COUNTER):012d}="
    context: dict[str, Any] = {
        "routeKey": route,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
        "messageDirection": "IN",
        "stage": STAGE,
        "connectedAt": now_ms,
        "requestTimeEpoch": now_ms,
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "parley-tests"},
        "requestId": request_id,
        "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "connectionId": connection_id,
        "apiId": "abcdef1234",
        "authorizer": {
            "principalId": user_id,
            "user_id": user_id,
            "device_id": device_id,
            "integrationLatency": 12,
        },
    }
    if event_type == "MESSAGE":
        context["messageId"] = f"msg{next(_COUNTER):012d}="
    return context


def connect_event(connection_id: str, user_id: str, device_id: str) -> dict[str, Any]:
    headers = {
        "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "Sec-WebSocket-Version": "13",
    }
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {"token": "<access token>"},
        "multiValueQueryStringParameters": {"token": ["<access token>"]},
        "requestContext": _context("$connect", "CONNECT", connection_id, user_id, device_id),
        "isBase64Encoded": False,
    }


def message_event(
    route: str, body: str, connection_id: str, user_id: str, device_id: str
) -> dict[str, Any]:
    return {
        "requestContext": _context(route, "MESSAGE", connection_id, user_id, device_id),
        "body": body,
        "isBase64Encoded": False,
    }


def disconnect_event(connection_id: str, user_id: str, device_id: str) -> dict[str, Any]:
    headers = {"Host": "abcdef1234.execute-api.us-east-1.amazonaws.com"}
    context = _context("$disconnect", "DISCONNECT", connection_id, user_id, device_id)
    context["disconnectStatusCode"] = 1001
    context["disconnectReason"] = "Going away"
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def recorded(name: str) -> dict[str, Any]:
    """A recorded event from tests/events/."""
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


@dataclass(frozen=True)
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:parley"
    aws_request_id: str = field(default_factory=lambda: secrets.token_hex(16))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the harness ------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    user_id: str
    device_id: str
    connection_id: str | None = None


@dataclass
class Harness:
    aws: FakeAws
    function_env: Callable[[str], dict[str, str]]
    endpoint: ConnectionsEndpoint
    invocations: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    # -- people -------------------------------------------------------------------

    def users(self) -> UsersStore:
        return UsersStore(self.aws.client("dynamodb"), self.aws.settings[Setting.USERS_TABLE])

    def user(self, devices: int = 1) -> list[Device]:
        """A registered user with `devices` active devices (not connected)."""
        store = self.users()
        user_id = secrets.token_hex(16)
        store.create_user(user_id, f"+1555{next(_COUNTER):07d}", time.time())
        found = []
        for _ in range(devices):
            device_id = secrets.token_hex(8)
            store.add_device(user_id, device_id, time.time())
            store.activate_device(user_id, device_id)
            found.append(Device(user_id, device_id))
        list_devices(store, user_id, [d.device_id for d in found])
        return found

    def add_device(self, user_id: str) -> Device:
        """A new active device of the user, linked: the account's list names it too."""
        store = self.users()
        body = store.device_list(user_id).body
        listed = [d["device_id"] for d in json.loads(body)["devices"]] if body else []
        device_id = secrets.token_hex(8)
        store.add_device(user_id, device_id, time.time())
        store.activate_device(user_id, device_id)
        list_devices(store, user_id, [*listed, device_id])
        return Device(user_id, device_id)

    # -- invoking handlers -------------------------------------------------------

    def invoke(self, function_id: str, event: dict[str, Any]) -> dict[str, Any]:
        self.function_env(function_id)
        spec = function(function_id)
        module, name = spec.handler.rsplit(".", 1)
        handler = getattr(importlib.import_module(module), name)
        self.invocations[function_id] += 1
        with acting_as(function_id):
            answer: dict[str, Any] = handler(event, LambdaContext(function_name=function_id))
        return answer

    def connect(self, device: Device) -> Device:
        connection_id = new_connection_id()
        answer = self.invoke(
            "WsConnect", connect_event(connection_id, device.user_id, device.device_id)
        )
        assert answer["statusCode"] == 200
        return Device(device.user_id, device.device_id, connection_id)

    def disconnect(self, device: Device) -> dict[str, Any]:
        assert device.connection_id is not None
        return self.invoke(
            "WsDisconnect",
            disconnect_event(device.connection_id, device.user_id, device.device_id),
        )

    def frame(self, device: Device, frame: dict[str, Any] | str) -> dict[str, Any]:
        """Send one frame from `device` as API Gateway would route it."""
        body = frame if isinstance(frame, str) else json.dumps(frame)
        route = "$default"
        try:
            action = json.loads(body).get("action")
        except (ValueError, AttributeError):
            action = None
        routes = {r.route_key: r.function for r in WS_ROUTES}
        if isinstance(action, str) and action in routes:
            route = action
        connection_id = device.connection_id or new_connection_id()
        return self.invoke(
            routes[route],
            message_event(route, body, connection_id, device.user_id, device.device_id),
        )

    def send(
        self, sender: Device, to: str, payloads: dict[str, bytes], client_id: str | None = None
    ) -> dict[str, Any]:
        """A `send` frame; the parsed route response (`sent` or `error`)."""
        answer = self.frame(
            sender,
            {
                "action": "send",
                "id": client_id or secrets.token_hex(8),
                "to": to,
                "payloads": {d: b64(p) for d, p in payloads.items()},
            },
        )
        assert answer["statusCode"] == 200
        parsed: dict[str, Any] = json.loads(answer["body"])
        return parsed

    def events(self, device: Device, kind: str | None = None) -> list[dict[str, Any]]:
        assert device.connection_id is not None
        return self.endpoint.events(device.connection_id, kind)

    def posted(self, device: Device) -> list[dict[str, Any]]:
        assert device.connection_id is not None
        return self.endpoint.posted(device.connection_id)

    # -- tables ------------------------------------------------------------------

    def mailbox_items(self, device: Device) -> list[dict[str, Any]]:
        """Every item in a device's mailbox, expired or not (one Query)."""
        answer = self.aws.client("dynamodb").query(
            TableName=self.aws.settings[Setting.MAILBOX_TABLE],
            KeyConditionExpression="device = :d",
            ExpressionAttributeValues={":d": {"S": f"{device.user_id}#{device.device_id}"}},
        )
        items: list[dict[str, Any]] = answer["Items"]
        return items

    def open_since(self, device: Device, seconds: float) -> None:
        """Make the device's connection one that $connect recorded `seconds` ago (the
        one stored time that decides whether a 410 for it means it is over)."""
        assert device.connection_id is not None
        self.aws.client("dynamodb").update_item(
            TableName=self.aws.settings[Setting.CONNECTIONS_TABLE],
            Key={"user_id": {"S": device.user_id}, "connection_id": {"S": device.connection_id}},
            UpdateExpression="SET connected_at = connected_at - :s",
            ExpressionAttributeValues={":s": {"N": str(int(seconds))}},
        )

    def connection_items(self, user_id: str) -> list[dict[str, Any]]:
        """The user's items in the connections table, as stored (one Query)."""
        answer = self.aws.client("dynamodb").query(
            TableName=self.aws.settings[Setting.CONNECTIONS_TABLE],
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
        )
        items: list[dict[str, Any]] = answer["Items"]
        return items

    def connection_ids(self, user_id: str) -> set[str]:
        return {item["connection_id"]["S"] for item in self.connection_items(user_id)}

    def snapshot(self) -> dict[str, Any]:
        """Every messaging table's items, to show that a refused frame changed nothing."""
        ddb = self.aws.client("dynamodb")
        tables = (Setting.MAILBOX_TABLE, Setting.CONNECTIONS_TABLE, Setting.USERS_TABLE)
        out: dict[str, Any] = {}
        for setting in tables:
            # tests may Scan; the service never does
            items = ddb.scan(TableName=self.aws.settings[setting])["Items"]
            out[setting.value] = sorted(json.dumps(i, sort_keys=True, default=str) for i in items)
        return out


@contextmanager
def harness(aws: FakeAws, function_env: Callable[[str], dict[str, str]]) -> Iterator[Harness]:
    endpoint = ConnectionsEndpoint()
    endpoint.start()
    aws.settings[Setting.WS_ENDPOINT] = endpoint.url
    try:
        yield Harness(aws, function_env, endpoint)
    finally:
        endpoint.stop()
