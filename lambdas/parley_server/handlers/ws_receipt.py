"""WebSocket `receipt`: store a read receipt for every device of `to`, deliver it where online."""

from __future__ import annotations

from typing import Any

from parley_server.handlers import _ws
from parley_server.logic import receipts
from parley_server.logic.ports import Caller
from parley_server.metrics import Metric
from parley_server.models.frames import ReceiptFrame
from parley_server.wiring import Adapters, preload

__all__ = ["PRELOADED", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload("users", "mailbox", "connections", "gateway", "limiter")


def _receipt(caller: Caller, raw: dict[str, Any], deps: Adapters) -> None:
    outcome = receipts.receipt(
        ReceiptFrame.parse(raw), caller, limiter=deps.limiter, **_ws.delivery(deps)
    )
    _ws.count(Metric.RECEIPTS_SENT, outcome.stored)
    _ws.count(Metric.RECEIPTS_DELIVERED, outcome.delivered)


handler = _ws.one_way(_receipt)
