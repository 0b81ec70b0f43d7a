"""The group paths shared by WsSend's and WsTyping's group branches and the
GroupFanout function: logic.group_fanout over the function's adapters, and the
metrics they count. The fan-out queue is only built for groups too large to
serve inline."""

from __future__ import annotations

import time
from typing import Any

from parley_server.handlers import _ws
from parley_server.logic import group_fanout
from parley_server.logic.group_fanout import FanoutOutcome
from parley_server.logic.messaging import DeliveryReport
from parley_server.logic.ports import Caller
from parley_server.metrics import Metric
from parley_server.models.frames import GroupSendFrame, GroupTypingFrame
from parley_server.models.groups import FanoutJob
from parley_server.wiring import Adapters

__all__ = ["count_fanout", "fan_out", "send", "typing"]


def send(frame: GroupSendFrame, caller: Caller, deps: Adapters) -> dict[str, Any]:
    """A group send: validate against the roster, fan out (inline or queued), answer `sent`."""
    outcome = group_fanout.send(
        frame,
        caller,
        now=time.time(),
        limits=deps.config.limits,
        roster=deps.groups,
        limiter=deps.limiter,
        directory=deps.users,
        envelopes=deps.envelopes,
        connections=deps.connections,
        gateway=deps.gateway,
        pusher=deps.push,
        queue=lambda: deps.fanout_queue,
    )
    _ws.count(Metric.GROUP_MESSAGES)
    _ws.count(Metric.GROUP_FAN_OUT, outcome.members)
    _ws.count(Metric.GROUP_JOBS_QUEUED, outcome.jobs)
    if outcome.fanout is not None:
        count_fanout(outcome.fanout)
    return outcome.event


def typing(frame: GroupTypingFrame, caller: Caller, deps: Adapters) -> DeliveryReport:
    """Typing state to the other members' live connections (one strongly consistent
    read of the roster, one Query per member)."""
    return group_fanout.typing(
        frame,
        caller,
        now=time.time(),
        roster=deps.groups,
        connections=deps.connections,
        gateway=deps.gateway,
    )


def fan_out(job: FanoutJob, deps: Adapters) -> FanoutOutcome:
    """One queued job: store, deliver and push for its slice of the members."""
    return group_fanout.fan_out(
        job,
        now=time.time(),
        directory=deps.users,
        envelopes=deps.envelopes,
        connections=deps.connections,
        gateway=deps.gateway,
        pusher=deps.push,
    )


def count_fanout(outcome: FanoutOutcome) -> None:
    _ws.count(Metric.MESSAGES_SENT, outcome.devices)
    _ws.count(Metric.MESSAGES_DELIVERED, outcome.delivered)
    _ws.count(Metric.PUSH_SENT, outcome.pushed)
    _ws.count(Metric.CONNECTIONS_GONE, outcome.gone)
