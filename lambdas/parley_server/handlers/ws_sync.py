"""WebSocket `sync`: post the next page of the device's pending events, oldest first,
then `synced` (with a cursor while more wait)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from parley_server.handlers import _ws
from parley_server.logic import messaging
from parley_server.logic.ports import Caller
from parley_server.metrics import Metric
from parley_server.models.frames import SyncFrame
from parley_server.wiring import Adapters, preload

__all__ = ["PRELOADED", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload("mailbox", "gateway")


def _sync(caller: Caller, raw: dict[str, Any], deps: Adapters) -> None:
    now = time.time()
    outcome = messaging.sync(
        SyncFrame.parse(raw),
        caller,
        now=now,
        mailbox=deps.mailbox,
        gateway=deps.gateway,
        page_size=deps.config.limits.sync_page,
    )
    _ws.count(Metric.SYNC_DELIVERED, outcome.delivered)
    if outcome.oldest_ts is not None and outcome.delivered:
        # how long the oldest delivered envelope waited: the mailbox-age alarm reads it
        age_s = max(0.0, now - outcome.oldest_ts / 1000)
        _ws.metrics.add_metric(name=Metric.SYNC_OLDEST_AGE, unit=MetricUnit.Seconds, value=age_s)
    _ws.count(Metric.SYNC_MORE_PAGES, int(outcome.more))


handler = _ws.one_way(_sync)
