"""WebSocket $default: a frame no route took gets a clear `error` event."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from parley_server.config import Config
from parley_server.handlers import _ws
from parley_server.logic import messaging
from parley_server.logic.messaging import Caller
from parley_server.models.errors import ParleyError

__all__ = ["handler"]


@_ws.tracer.capture_lambda_handler
@_ws.logger.inject_lambda_context(correlation_id_path=_ws.CONNECTION_ID, clear_state=True)
@_ws.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # a frame that is not JSON is refused (invalid_json) before _refuse is called
    return _ws.one_way(event, _refuse)


def _refuse(caller: Caller, raw: dict[str, Any], config: Config) -> ParleyError:
    return messaging.refuse_unknown(raw)
