"""The one shape of a WebSocket handler.

A handler module is its use case: a function of (caller, frame object,
adapters) wrapped by `one_way`, `two_way` or `lifecycle`, which give it the
Powertools decorators and this module's error mapping. This is the one place
that turns a `ParleyError` into a WebSocket `error` event: a two-way route
returns it as the route response, a one-way route posts it to the caller's
connection. The caller is only ever the authorizer context.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from parley_server.config import Limits
from parley_server.handlers._refusals import refusal_metric
from parley_server.ids import is_device_id, is_user_id
from parley_server.logic.ports import Caller, ConnectionsPort, GatewayPort, MailboxPort
from parley_server.metrics import TRACED_LIBRARIES, Metric
from parley_server.models.errors import DependencyUnavailable, ParleyError, Unauthorized
from parley_server.models.frames import error_event, frame_ref, parse_frame
from parley_server.wiring import Adapters, adapters

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from parley_server.store.users import UsersStore

__all__ = [
    "CONNECTION_ID",
    "Delivery",
    "LambdaHandler",
    "Work",
    "caller_of",
    "count",
    "delivery",
    "lifecycle",
    "logger",
    "metrics",
    "one_way",
    "tracer",
    "two_way",
]

logger = Logger(service="parley")
metrics = Metrics(namespace="Parley", service="parley")
tracer = Tracer(service="parley", patch_modules=TRACED_LIBRARIES)

# Powertools correlation id: every log line of an invocation names the connection.
CONNECTION_ID = "requestContext.connectionId"

# A use case behind a route: (caller, frame object, adapters) -> what to answer, if
# anything: an event, or an error found after work was done (mapped here like any other).
Work = Callable[[Caller, dict[str, Any], Adapters], Mapping[str, Any] | ParleyError | None]
LambdaHandler = Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]]


class Delivery(TypedDict):
    """What the use cases that store and deliver to mailboxes (send, ack, receipt)
    take from the function's adapters, with the time of the call."""

    now: float
    limits: Limits
    directory: UsersStore
    mailbox: MailboxPort
    connections: ConnectionsPort
    gateway: GatewayPort


def delivery(deps: Adapters) -> Delivery:
    return Delivery(
        now=time.time(),
        limits=deps.config.limits,
        directory=deps.users,
        mailbox=deps.mailbox,
        connections=deps.connections,
        gateway=deps.gateway,
    )


def count(name: Metric, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def caller_of(event: Mapping[str, Any]) -> Caller:
    """The caller, from the authorizer context API Gateway attached to the connection."""
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") or {}
    user_id, device_id = authorizer.get("user_id"), authorizer.get("device_id")
    connection_id = context.get("connectionId")
    if not (
        is_user_id(user_id)
        and is_device_id(device_id)
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
        deps = adapters()
        caller = caller_of(event)
        raw = parse_frame(event.get("body"))
        ref = frame_ref(raw)
        if ref is not None:
            logger.append_keys(client_id=ref)
        answer = work(caller, raw, deps)
        if not isinstance(answer, ParleyError):
            return answer
        shown = _answerable(answer)
    except ParleyError as raised:
        refused = refusal_metric(raised)
        if refused is not None:
            count(refused)
        shown = _answerable(raised)
    except Exception:
        logger.exception("unhandled error")
        shown = _internal()
    logger.info("frame refused", extra={"code": shown.code})
    count(Metric.FRAMES_REFUSED)
    return error_event(shown.to_dict(), ref)


def _entry(respond: Callable[[dict[str, Any]], dict[str, Any]]) -> LambdaHandler:
    """A Lambda handler answering with `respond(event)`, with the Powertools decorators."""

    @tracer.capture_lambda_handler
    @logger.inject_lambda_context(correlation_id_path=CONNECTION_ID, clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return respond(event)

    return handler


def two_way(work: Work) -> LambdaHandler:
    """A route whose handler's body is the answer to the caller (the route response)."""

    def respond(event: dict[str, Any]) -> dict[str, Any]:
        answer = _run(event, work)
        return {"statusCode": 200, "body": json.dumps(answer, separators=(",", ":"))}

    return _entry(respond)


def one_way(work: Work) -> LambdaHandler:
    """A route whose answers, if any, are posted to the caller's connection."""

    def respond(event: dict[str, Any]) -> dict[str, Any]:
        answer = _run(event, work)
        if answer is not None:
            connection_id = (event.get("requestContext") or {}).get("connectionId")
            if isinstance(connection_id, str) and connection_id:
                try:
                    adapters().gateway.post(connection_id, answer)
                except ParleyError:
                    logger.exception("could not answer the caller")
        return {"statusCode": 200}

    return _entry(respond)


def lifecycle(work: Callable[[Caller, Mapping[str, Any], Adapters], None]) -> LambdaHandler:
    """$connect / $disconnect: no frame and nobody to answer but API Gateway (`work` gets
    the event too: $connect reads the options in the URL the client dialled)."""

    def respond(event: dict[str, Any]) -> dict[str, Any]:
        try:
            work(caller_of(event), event, adapters())
        except ParleyError as error:
            logger.warning("connection event failed", extra={"code": error.code})
            count(Metric.CONNECTION_EVENTS_FAILED)
            return {"statusCode": error.status if error.status < 500 else 500}
        except Exception:
            logger.exception("unhandled error")
            count(Metric.CONNECTION_EVENTS_FAILED)
            return {"statusCode": 500}
        return {"statusCode": 200}

    return _entry(respond)
