"""WebSocket `receipt`: store a read receipt for every device of `to`, deliver it where online."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from parley_server.config import Config
from parley_server.handlers import _ws
from parley_server.logic import messaging
from parley_server.logic.messaging import Caller
from parley_server.models.frames import ReceiptFrame

__all__ = ["handler"]


@_ws.tracer.capture_lambda_handler
@_ws.logger.inject_lambda_context(correlation_id_path=_ws.CONNECTION_ID, clear_state=True)
@_ws.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _ws.one_way(event, _receipt)


def _receipt(caller: Caller, raw: dict[str, Any], config: Config) -> None:
    frame = ReceiptFrame.parse(raw)
    outcome = messaging.receipt(
        frame,
        caller,
        now=time.time(),
        limits=config.limits,
        directory=_ws.users(config),
        mailbox=_ws.mailbox(config),
        connections=_ws.connections_store(config),
        gateway=_ws.connections_api(config),
    )
    _ws.count("ReceiptsSent", outcome.stored)
    _ws.count("ReceiptsDelivered", outcome.delivered)
