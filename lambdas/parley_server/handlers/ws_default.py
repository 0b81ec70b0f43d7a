"""WebSocket $default: a frame no route took gets a clear `error` event (a frame
that is not JSON is refused, invalid_json, before `_refuse` is called)."""

from __future__ import annotations

from typing import Any

from parley_server.handlers import _ws
from parley_server.logic import messaging
from parley_server.logic.ports import Caller
from parley_server.models.errors import ParleyError
from parley_server.wiring import Adapters, preload

__all__ = ["PRELOADED", "handler"]

# what this function uses, imported at its cold start (not at its first request)
PRELOADED = preload("gateway")


def _refuse(caller: Caller, raw: dict[str, Any], deps: Adapters) -> ParleyError:
    return messaging.refuse_unknown(raw)


handler = _ws.one_way(_refuse)
