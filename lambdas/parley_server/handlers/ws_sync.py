"""WebSocket `sync`: post the next page of the device's pending events, oldest first,
then `synced` (with a cursor while more wait)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from parley_server.config import Config
from parley_server.handlers import _ws
from parley_server.logic import messaging
from parley_server.logic.messaging import Caller
from parley_server.models.frames import SyncFrame

__all__ = ["handler"]


@_ws.tracer.capture_lambda_handler
@_ws.logger.inject_lambda_context(correlation_id_path=_ws.CONNECTION_ID, clear_state=True)
@_ws.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _ws.one_way(event, _sync)


def _sync(caller: Caller, raw: dict[str, Any], config: Config) -> None:
    frame = SyncFrame.parse(raw)
    now = time.time()
    outcome = messaging.sync(
        frame,
        caller,
        now=now,
        mailbox=_ws.mailbox(config),
        gateway=_ws.connections_api(config),
        page_size=config.limits.sync_page,
    )
    _ws.count("SyncDelivered", outcome.delivered)
    if outcome.oldest_ts is not None and outcome.delivered:
        # how long the oldest delivered envelope waited: the mailbox-age alarm reads it
        age_s = max(0.0, now - outcome.oldest_ts / 1000)
        _ws.metrics.add_metric(name="SyncOldestAge", unit=MetricUnit.Seconds, value=age_s)
    _ws.count("SyncMorePages", int(outcome.more))
