"""WebSocket `typing`: relay typing state to the live connections of `to` (a user,
or every other member of a group of up to 32); never stored."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from parley_server.config import Config
from parley_server.handlers import _groups, _ws
from parley_server.logic import messaging
from parley_server.logic.messaging import Caller
from parley_server.models.frames import TypingFrame

__all__ = ["handler"]


@_ws.tracer.capture_lambda_handler
@_ws.logger.inject_lambda_context(correlation_id_path=_ws.CONNECTION_ID, clear_state=True)
@_ws.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _ws.one_way(event, _typing)


def _typing(caller: Caller, raw: dict[str, Any], config: Config) -> None:
    frame = TypingFrame.parse(raw)
    if frame.to_group is not None:
        report = _groups.typing(frame, caller, config)
    else:
        report = messaging.typing(
            frame,
            caller,
            now=time.time(),
            connections=_ws.connections_store(config),
            gateway=_ws.connections_api(config),
        )
    _ws.count("TypingRelayed", report.posts)
