"""WebSocket `send` (two-way): store an envelope per recipient device, deliver it, answer
`sent` (or `error`) as the route response."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from parley_server.config import Config
from parley_server.handlers import _groups, _ws
from parley_server.logic import messaging
from parley_server.logic.messaging import Caller
from parley_server.models.frames import SendFrame

__all__ = ["handler"]


@_ws.tracer.capture_lambda_handler
@_ws.logger.inject_lambda_context(correlation_id_path=_ws.CONNECTION_ID, clear_state=True)
@_ws.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _ws.two_way(event, _send)


def _send(caller: Caller, raw: dict[str, Any], config: Config) -> dict[str, Any]:
    frame = SendFrame.parse(raw, max_payload_bytes=config.limits.max_payload_bytes)
    if frame.to_group is not None:
        return _groups.send(frame, caller, raw, config)
    outcome = messaging.send(
        frame,
        caller,
        now=time.time(),
        limits=config.limits,
        directory=_ws.users(config),
        mailbox=_ws.mailbox(config),
        connections=_ws.connections_store(config),
        gateway=_ws.connections_api(config),
        pusher=_ws.push_notifier(config),
        limiter=_ws.limiter(config),
    )
    _ws.count("MessagesSent", outcome.stored)
    _ws.count("MessagesDuplicate", outcome.duplicates)
    _ws.count("MessagesDelivered", outcome.delivered)
    _ws.count("PushSent", outcome.pushed)
    _ws.count("ConnectionsGone", outcome.gone)
    _ws.count("FanOut", outcome.devices)
    return outcome.event
