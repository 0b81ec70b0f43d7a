"""WebSocket `ack`: delete the caller's acknowledged envelopes and tell each sender
`delivered`. Ids that matched nothing are answered with an `error` event."""

from __future__ import annotations

from typing import Any

from parley_server.handlers import _ws
from parley_server.logic import receipts
from parley_server.logic.ports import Caller
from parley_server.metrics import Metric
from parley_server.models.errors import ParleyError
from parley_server.models.frames import AckFrame
from parley_server.wiring import Adapters, preload

__all__ = ["PRELOADED", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload("users", "mailbox", "connections", "gateway")


def _ack(caller: Caller, raw: dict[str, Any], deps: Adapters) -> ParleyError | None:
    frame = AckFrame.parse(raw)
    outcome = receipts.ack(frame, caller, **_ws.delivery(deps))
    _ws.count(Metric.MESSAGES_ACKED, outcome.messages)
    _ws.count(Metric.RECEIPTS_ACKED, outcome.receipts)
    _ws.count(Metric.RECEIPTS_SENT, sum(r.stored for r in outcome.delivered_receipts))
    _ws.count(Metric.RECEIPTS_DELIVERED, sum(r.delivered for r in outcome.delivered_receipts))
    return outcome.error


handler = _ws.one_way(_ack)
