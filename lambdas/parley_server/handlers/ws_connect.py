"""WebSocket $connect: record the authorized device's connection."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from parley_server.handlers import _ws
from parley_server.logic import connections
from parley_server.logic.ports import Caller
from parley_server.metrics import Metric
from parley_server.wiring import Adapters, preload

__all__ = ["PRELOADED", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload("connections")


def _connect(caller: Caller, event: Mapping[str, Any], deps: Adapters) -> None:
    connections.connect(
        caller,
        now=time.time(),
        limits=deps.config.limits,
        records=deps.connections,
        batch=connections.batch_option(event.get("queryStringParameters")),
    )
    _ws.count(Metric.CONNECTS)


handler = _ws.lifecycle(_connect)
