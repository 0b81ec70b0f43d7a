"""WebSocket `send` (two-way): store an envelope per recipient device, deliver it, answer
`sent` (or `error`) as the route response."""

from __future__ import annotations

from typing import Any

from parley_server.handlers import _groups, _ws
from parley_server.logic import messaging
from parley_server.logic.ports import Caller
from parley_server.metrics import Metric
from parley_server.models.frames import GroupSendFrame, parse_send
from parley_server.wiring import Adapters, preload

__all__ = ["PRELOADED", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload(
    "users",
    "mailbox",
    "connections",
    "gateway",
    "limiter",
    "push",
    "groups",
    "envelopes",
    "fanout_queue",
)


def _send(caller: Caller, raw: dict[str, Any], deps: Adapters) -> dict[str, Any]:
    frame = parse_send(raw, max_payload_bytes=deps.config.limits.max_payload_bytes)
    if isinstance(frame, GroupSendFrame):
        return _groups.send(frame, caller, deps)
    outcome = messaging.send(
        frame, caller, pusher=deps.push, limiter=deps.limiter, **_ws.delivery(deps)
    )
    _ws.count(Metric.MESSAGES_SENT, outcome.stored)
    _ws.count(Metric.MESSAGES_DUPLICATE, outcome.duplicates)
    _ws.count(Metric.MESSAGES_DELIVERED, outcome.delivered)
    # wake-ups and call pushes apart: a call push is high priority and visible
    _ws.count(Metric.PUSH_SENT, outcome.pushed - outcome.call_pushes)
    _ws.count(Metric.CALL_PUSHES_SENT, outcome.call_pushes)
    _ws.count(Metric.CONNECTIONS_GONE, outcome.gone)
    _ws.count(Metric.FAN_OUT, outcome.devices)
    return outcome.event


handler = _ws.two_way(_send)
