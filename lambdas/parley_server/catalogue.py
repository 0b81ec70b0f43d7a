"""What the service is made of: settings, functions and routes.

One source of truth for the CDK stack (which builds a function, its environment
and its routes from these specs) and for the local stack (which serves the same
routes with the same handlers). Neither can drift from the other.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = [
    "FUNCTIONS",
    "HTTP_ROUTES",
    "WS_ROUTES",
    "FunctionSpec",
    "RouteSpec",
    "Setting",
    "function",
]


class Setting(StrEnum):
    """Environment variables a function may read (its whole configuration)."""

    USERS_TABLE = "PARLEY_USERS_TABLE"
    CONNECTIONS_TABLE = "PARLEY_CONNECTIONS_TABLE"
    MAILBOX_TABLE = "PARLEY_MAILBOX_TABLE"
    OTP_TABLE = "PARLEY_OTP_TABLE"
    PREKEYS_TABLE = "PARLEY_PREKEYS_TABLE"
    GROUPS_TABLE = "PARLEY_GROUPS_TABLE"
    RATELIMITS_TABLE = "PARLEY_RATELIMITS_TABLE"
    MEDIA_BUCKET = "PARLEY_MEDIA_BUCKET"
    SIGNING_SECRET_ARN = "PARLEY_SIGNING_SECRET_ARN"  # noqa: S105 (a variable name)
    # https://{api-id}.execute-api.{region}.amazonaws.com/{stage}: the @connections API
    WS_ENDPOINT = "PARLEY_WS_ENDPOINT"
    # JSON object {"fcm": platform application ARN, "apns": ...}; "{}" when none
    PUSH_APPS = "PARLEY_PUSH_APPS"
    # JSON object of tunables (limits, TTLs); "{}" means the defaults
    LIMITS = "PARLEY_LIMITS"
    # URL of the FIFO queue of group fan-out jobs (WsSend enqueues, GroupFanout consumes)
    GROUP_FANOUT_QUEUE = "PARLEY_GROUP_FANOUT_QUEUE_URL"
    # JSON object {"originationNumber", "senderId", "smsType"} (models/sms.py): who
    # one-time codes come from; "{}" lets SNS choose
    SMS_ORIGINATION = "PARLEY_SMS_ORIGINATION"
    # JSON list of fictional numbers that sign up with a derived code, never texted
    # (logic/testnumbers.py); "[]" when none, always in prod
    TEST_NUMBERS = "PARLEY_TEST_NUMBERS"
    # where GET /v1/calls/relays finds ICE servers: "kvs" (Kinesis Video Streams'
    # STUN and TURN, through CALL_CHANNELS) or "loopback" (none: the local stack)
    CALL_RELAYS = "PARLEY_CALL_RELAYS"
    # JSON list of the ARNs of the Kinesis Video signalling channels whose TURN
    # servers calls are relayed through (stacks/calls.py); "[]" in loopback mode
    CALL_CHANNELS = "PARLEY_CALL_CHANNELS"


class FunctionSpec(msgspec.Struct, frozen=True):
    """A Lambda function: its handler, what it reads, and how it is sized."""

    id: str
    handler: str
    settings: frozenset[Setting]
    description: str
    memory_mb: int = 512
    timeout_s: int = 10


class RouteSpec(msgspec.Struct, frozen=True):
    """A WebSocket route and the function that serves it."""

    route_key: str
    function: str
    # two-way routes return their handler's body to the caller as the route response
    two_way: bool = False


S = Setting
_MESSAGING = frozenset(
    {S.USERS_TABLE, S.CONNECTIONS_TABLE, S.MAILBOX_TABLE, S.WS_ENDPOINT, S.LIMITS}
)

# Memory: 512 MB gives a Lambda about a third of a vCPU, enough for JSON and
# boto3 calls at low latency; these functions are I/O bound, so more memory
# mostly buys a faster cold start. Timeouts: API Gateway gives up after 29 s
# (HTTP) and 29 s (WebSocket integration); no route here should take 10 s.
FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        id="HttpApi",
        handler="parley_server.handlers.http_api.handler",
        settings=frozenset(
            {
                S.USERS_TABLE,
                S.OTP_TABLE,
                S.PREKEYS_TABLE,
                S.MAILBOX_TABLE,
                S.GROUPS_TABLE,
                S.RATELIMITS_TABLE,
                S.CONNECTIONS_TABLE,
                S.MEDIA_BUCKET,
                S.SIGNING_SECRET_ARN,
                S.WS_ENDPOINT,
                S.PUSH_APPS,
                S.LIMITS,
                S.TEST_NUMBERS,
                S.SMS_ORIGINATION,
                # push challenges are queued for GroupFanout (it pushes; this texts)
                S.GROUP_FANOUT_QUEUE,
                # ICE servers for calls (GET /v1/calls/relays)
                S.CALL_RELAYS,
                S.CALL_CHANNELS,
            }
        ),
        description=(
            "HTTP API: signup, tokens, keys, devices, directory, push, media, groups,"
            " call relays, account deletion"
        ),
        timeout_s=15,
    ),
    FunctionSpec(
        id="WsAuthorizer",
        handler="parley_server.handlers.ws_authorizer.handler",
        settings=frozenset({S.USERS_TABLE, S.SIGNING_SECRET_ARN}),
        description="WebSocket $connect REQUEST authorizer: verifies the access token",
        timeout_s=5,
    ),
    FunctionSpec(
        id="WsConnect",
        handler="parley_server.handlers.ws_connect.handler",
        settings=frozenset({S.CONNECTIONS_TABLE, S.LIMITS}),
        description="WebSocket $connect: records the device's connection",
        timeout_s=5,
    ),
    FunctionSpec(
        id="WsDisconnect",
        handler="parley_server.handlers.ws_disconnect.handler",
        settings=frozenset({S.CONNECTIONS_TABLE, S.USERS_TABLE}),
        description="WebSocket $disconnect: forgets the connection, records last seen",
        timeout_s=5,
    ),
    FunctionSpec(
        id="WsDefault",
        handler="parley_server.handlers.ws_default.handler",
        settings=frozenset({S.WS_ENDPOINT}),
        description="WebSocket $default: answers unknown actions with an error event",
        timeout_s=5,
    ),
    FunctionSpec(
        id="WsSend",
        handler="parley_server.handlers.ws_send.handler",
        settings=_MESSAGING
        | {S.RATELIMITS_TABLE, S.GROUPS_TABLE, S.PUSH_APPS, S.GROUP_FANOUT_QUEUE},
        description="WebSocket send: stores an envelope per device and delivers it",
    ),
    FunctionSpec(
        id="WsAck",
        handler="parley_server.handlers.ws_ack.handler",
        settings=_MESSAGING,
        description="WebSocket ack: deletes envelopes, sends delivered receipts",
    ),
    FunctionSpec(
        id="WsReceipt",
        handler="parley_server.handlers.ws_receipt.handler",
        settings=_MESSAGING | {S.RATELIMITS_TABLE},
        description="WebSocket receipt: stores and delivers read receipts",
    ),
    FunctionSpec(
        id="WsSync",
        handler="parley_server.handlers.ws_sync.handler",
        settings=frozenset({S.MAILBOX_TABLE, S.WS_ENDPOINT, S.LIMITS}),
        description="WebSocket sync: delivers every pending envelope, oldest first",
        timeout_s=29,
    ),
    FunctionSpec(
        id="WsTyping",
        handler="parley_server.handlers.ws_typing.handler",
        settings=frozenset(
            {S.CONNECTIONS_TABLE, S.GROUPS_TABLE, S.RATELIMITS_TABLE, S.WS_ENDPOINT, S.LIMITS}
        ),
        description="WebSocket typing: relays typing state to live connections",
        timeout_s=5,
    ),
    # One job per invocation: ~50 members' device lookups, batched envelope writes,
    # posts and pushes, a second or two; 60 s leaves room for throttled retries.
    FunctionSpec(
        id="GroupFanout",
        handler="parley_server.handlers.group_fanout.handler",
        settings=frozenset(
            {S.USERS_TABLE, S.CONNECTIONS_TABLE, S.MAILBOX_TABLE, S.WS_ENDPOINT, S.PUSH_APPS}
        ),
        description=(
            "Group fan-out: stores and delivers one slice of a large group's message;"
            " pushes the challenge of a push token being registered"
        ),
        timeout_s=60,
    ),
)

WS_ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("$connect", "WsConnect"),
    RouteSpec("$disconnect", "WsDisconnect"),
    RouteSpec("$default", "WsDefault"),
    RouteSpec("send", "WsSend", two_way=True),
    RouteSpec("ack", "WsAck"),
    RouteSpec("receipt", "WsReceipt"),
    RouteSpec("sync", "WsSync"),
    RouteSpec("typing", "WsTyping"),
)

# Every HTTP route is served by the HttpApi function (Powertools resolver).
HTTP_ROUTES: tuple[str, ...] = (
    "GET /v1/openapi.json",
    "POST /v1/auth/otp",
    "POST /v1/auth/verify",
    "POST /v1/auth/refresh",
    "PUT /v1/keys",
    "GET /v1/keys/count",
    "GET /v1/keys/{user_id}",
    "GET /v1/users",
    "GET /v1/devices",
    "DELETE /v1/devices/{device_id}",
    "POST /v1/devices/pairings",
    "POST /v1/devices/pairings/{ref}/approve",
    "POST /v1/devices/pairings/{ref}/status",
    "POST /v1/devices/pairings/{ref}/complete",
    "PUT /v1/devices/list",
    "DELETE /v1/account",
    "PUT /v1/account/registration-lock",
    "DELETE /v1/account/registration-lock",
    "PUT /v1/push",
    "POST /v1/push/verify",
    "POST /v1/media",
    "GET /v1/media/{media_id}",
    "DELETE /v1/media/{media_id}",
    "GET /v1/contacts",
    "PUT /v1/contacts/{user_id}",
    "DELETE /v1/contacts/{user_id}",
    "GET /v1/presence/{user_id}",
    "PUT /v1/settings/presence",
    "POST /v1/groups",
    "GET /v1/groups",
    "GET /v1/groups/{group_id}",
    "POST /v1/groups/{group_id}/changes",
    "GET /v1/calls/relays",
)


def function(function_id: str) -> FunctionSpec:
    """The spec of one function, by id."""
    for spec in FUNCTIONS:
        if spec.id == function_id:
            return spec
    raise KeyError(function_id)
