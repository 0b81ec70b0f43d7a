"""Wiring shared by the WebSocket handlers.

The one place that turns a `ParleyError` into a WebSocket `error` event: a
two-way route returns it as the route response, a one-way route posts it to the
caller's connection. Also: who the caller is (only ever the authorizer context),
Powertools objects, and the adapters each function builds from its settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.config import Config, load_config
from parley_server.logic.messaging import Caller
from parley_server.models.errors import DependencyUnavailable, ParleyError, Unauthorized
from parley_server.models.frames import error_event, frame_ref, parse_frame
from parley_server.store.aws import client
from parley_server.store.connections import ConnectionsStore
from parley_server.store.mailbox import Mailbox
from parley_server.store.management import ConnectionsApi
from parley_server.store.push import PushNotifier
from parley_server.store.ratelimits import RateLimiter
from parley_server.store.users import UsersStore

__all__ = [
    "CONNECTION_ID",
    "Work",
    "caller_of",
    "connections_api",
    "connections_store",
    "count",
    "lifecycle",
    "limiter",
    "logger",
    "mailbox",
    "metrics",
    "one_way",
    "push_notifier",
    "tracer",
    "two_way",
    "users",
]

logger = Logger(service="parley")
metrics = Metrics(namespace="Parley", service="parley")
tracer = Tracer(service="parley")

# Powertools correlation id: every log line of an invocation names the connection.
CONNECTION_ID = "requestContext.connectionId"

_USER_ID = re.compile(r"[0-9a-f]{32}")
_DEVICE_ID = re.compile(r"[0-9a-f]{16}")

# A use case behind a route: (caller, frame object, config) -> what to answer, if
# anything: an event, or an error found after work was done (mapped here like any other).
Work = Callable[[Caller, dict[str, Any], Config], Mapping[str, Any] | ParleyError | None]


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def caller_of(event: Mapping[str, Any]) -> Caller:
    """The caller, from the authorizer context API Gateway attached to the connection."""
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") or {}
    user_id, device_id = authorizer.get("user_id"), authorizer.get("device_id")
    connection_id = context.get("connectionId")
    if not (
        isinstance(user_id, str)
        and _USER_ID.fullmatch(user_id)
        and isinstance(device_id, str)
        and _DEVICE_ID.fullmatch(device_id)
        and isinstance(connection_id, str)
        and connection_id
    ):
        # the authorizer guarantees these; their absence is a wiring fault
        raise Unauthorized("no authorized caller on this connection")
    return Caller(user_id, device_id, connection_id)


def _internal() -> ParleyError:
    return ParleyError("internal error; try again")


def _answerable(error: ParleyError) -> ParleyError:
    """What the caller may see: faults on our side are logged, not described."""
    if error.status < 500 or isinstance(error, DependencyUnavailable):
        return error
    logger.error("internal error", extra={"code": error.code, "error": error.message})
    return _internal()


def _run(event: Mapping[str, Any], work: Work) -> Mapping[str, Any] | None:
    """Run `work`; on failure, the `error` event to answer instead."""
    ref: str | None = None
    try:
        config = load_config()
        caller = caller_of(event)
        raw = parse_frame(event.get("body"))
        ref = frame_ref(raw)
        if ref is not None:
            logger.append_keys(client_id=ref)
        answer = work(caller, raw, config)
        if not isinstance(answer, ParleyError):
            return answer
        shown = _answerable(answer)
    except ParleyError as raised:
        shown = _answerable(raised)
    except Exception:
        logger.exception("unhandled error")
        shown = _internal()
    logger.info("frame refused", extra={"code": shown.code})
    count("FramesRefused")
    return error_event(shown.to_dict(), ref)


def two_way(event: Mapping[str, Any], work: Work) -> dict[str, Any]:
    """A route whose handler's body is the answer to the caller (the route response)."""
    answer = _run(event, work)
    return {"statusCode": 200, "body": json.dumps(answer, separators=(",", ":"))}


def one_way(event: Mapping[str, Any], work: Work) -> dict[str, Any]:
    """A route whose answers, if any, are posted to the caller's connection."""
    answer = _run(event, work)
    if answer is not None:
        connection_id = (event.get("requestContext") or {}).get("connectionId")
        if isinstance(connection_id, str) and connection_id:
            try:
                connections_api(load_config()).post(connection_id, answer)
            except ParleyError:
                logger.exception("could not answer the caller")
    return {"statusCode": 200}


def lifecycle(event: Mapping[str, Any], work: Callable[[Caller, Config], None]) -> dict[str, Any]:
    """$connect / $disconnect: no frame and nobody to answer but API Gateway."""
    try:
        work(caller_of(event), load_config())
    except ParleyError as error:
        logger.warning("connection event failed", extra={"code": error.code})
        count("ConnectionEventsFailed")
        return {"statusCode": error.status if error.status < 500 else 500}
    except Exception:
        logger.exception("unhandled error")
        count("ConnectionEventsFailed")
        return {"statusCode": 500}
    return {"statusCode": 200}


# -- adapters, built per invocation over the process's cached clients -----------------


def mailbox(config: Config) -> Mailbox:
    return Mailbox(client("dynamodb"), config.mailbox_table)


def connections_store(config: Config) -> ConnectionsStore:
    return ConnectionsStore(client("dynamodb"), config.connections_table)


def users(config: Config) -> UsersStore:
    return UsersStore(client("dynamodb"), config.users_table)


def limiter(config: Config) -> RateLimiter:
    return RateLimiter(client("dynamodb"), config.ratelimits_table)


def push_notifier(config: Config) -> PushNotifier:
    return PushNotifier(client("sns"), config.push_apps)


def connections_api(config: Config) -> ConnectionsApi:
    return ConnectionsApi(client("apigatewaymanagementapi", endpoint_url=config.ws_endpoint))
