"""WebSocket `typing`: relay typing state to the live connections of `to` (a user,
or every other member of a group of up to 32); never stored."""

from __future__ import annotations

import time
from typing import Any

from parley_server.handlers import _groups, _ws
from parley_server.logic import messaging
from parley_server.logic.ports import Caller
from parley_server.metrics import Metric
from parley_server.models.frames import GroupTypingFrame, parse_typing
from parley_server.wiring import Adapters, preload

__all__ = ["PRELOADED", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload("users", "connections", "gateway", "limiter", "groups")


def _typing(caller: Caller, raw: dict[str, Any], deps: Adapters) -> None:
    frame = parse_typing(raw)
    now = time.time()
    messaging.limit_typing_rate(caller, limits=deps.config.limits, limiter=deps.limiter, now=now)
    if isinstance(frame, GroupTypingFrame):
        report = _groups.typing(frame, caller, deps)
    else:
        report = messaging.typing(
            frame, caller, now=now, connections=deps.connections, gateway=deps.gateway
        )
    _ws.count(Metric.TYPING_RELAYED, report.posts)


handler = _ws.one_way(_typing)
