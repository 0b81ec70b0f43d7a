"""WebSocket $disconnect: forget the connection, record the user's last seen."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from parley_server.config import Config
from parley_server.handlers import _ws
from parley_server.logic import connections
from parley_server.logic.messaging import Caller

__all__ = ["handler"]


@_ws.tracer.capture_lambda_handler
@_ws.logger.inject_lambda_context(correlation_id_path=_ws.CONNECTION_ID, clear_state=True)
@_ws.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _ws.lifecycle(event, _disconnect)


def _disconnect(caller: Caller, config: Config) -> None:
    connections.disconnect(
        caller,
        now=time.time(),
        records=_ws.connections_store(config),
        last_seen=_ws.users(config),
    )
    _ws.count("Disconnects")
