"""WebSocket $disconnect: forget the connection, record the user's last seen."""

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
PRELOADED = preload("connections", "users")


def _disconnect(caller: Caller, _event: Mapping[str, Any], deps: Adapters) -> None:
    connections.disconnect(caller, now=time.time(), records=deps.connections, last_seen=deps.users)
    _ws.count(Metric.DISCONNECTS)


handler = _ws.lifecycle(_disconnect)
