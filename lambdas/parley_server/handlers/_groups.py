"""Wiring shared by the group paths: WsSend's and WsTyping's group branches and the
GroupFanout function.

`send` is what WsSend runs for a frame with `to` = "g:<group id>": it builds
the adapters from the function's settings and calls logic.groups.send. The
fan-out queue is only looked up for groups too large to serve inline.
"""

from __future__ import annotations

import time
from typing import Any

from parley_server.catalogue import Setting
from parley_server.config import Config
from parley_server.handlers import _ws
from parley_server.logic import groups
from parley_server.logic.groups import FanoutOutcome
from parley_server.logic.messaging import Caller, DeliveryReport
from parley_server.models.frames import SendFrame, TypingFrame
from parley_server.models.groups import FanoutJob
from parley_server.store.aws import client
from parley_server.store.groups import EnvelopeWriter, FanoutQueue, GroupsStore

__all__ = ["count_fanout", "fan_out", "send", "typing"]


def _queue(config: Config) -> FanoutQueue:
    return FanoutQueue(client("sqs"), config.get(Setting.GROUP_FANOUT_QUEUE))


def send(frame: SendFrame, caller: Caller, raw: dict[str, Any], config: Config) -> dict[str, Any]:
    """A group send: validate against the roster, fan out (inline or queued), answer `sent`."""
    outcome = groups.send(
        frame,
        caller,
        version=groups.expected_version(raw),
        now=time.time(),
        limits=config.limits,
        roster=GroupsStore(client("dynamodb"), config.groups_table),
        limiter=_ws.limiter(config),
        directory=_ws.users(config),
        envelopes=EnvelopeWriter(client("dynamodb"), config.mailbox_table),
        connections=_ws.connections_store(config),
        gateway=_ws.connections_api(config),
        pusher=_ws.push_notifier(config),
        queue=lambda: _queue(config),
    )
    _ws.count("GroupMessagesSent")
    _ws.count("GroupFanOutMembers", outcome.members)
    _ws.count("GroupFanOutJobsQueued", outcome.jobs)
    if outcome.fanout is not None:
        count_fanout(outcome.fanout)
    return outcome.event


def typing(frame: TypingFrame, caller: Caller, config: Config) -> DeliveryReport:
    """Typing state to the other members' live connections (one strongly consistent
    read of the roster, one Query per member)."""
    return groups.typing(
        frame,
        caller,
        now=time.time(),
        roster=GroupsStore(client("dynamodb"), config.groups_table),
        connections=_ws.connections_store(config),
        gateway=_ws.connections_api(config),
    )


def fan_out(job: FanoutJob, config: Config) -> FanoutOutcome:
    """One queued job: store, deliver and push for its slice of the members."""
    return groups.fan_out(
        job,
        now=time.time(),
        directory=_ws.users(config),
        envelopes=EnvelopeWriter(client("dynamodb"), config.mailbox_table),
        connections=_ws.connections_store(config),
        gateway=_ws.connections_api(config),
        pusher=_ws.push_notifier(config),
    )


def count_fanout(outcome: FanoutOutcome) -> None:
    _ws.count("MessagesSent", outcome.devices)
    _ws.count("MessagesDelivered", outcome.delivered)
    _ws.count("PushSent", outcome.pushed)
    _ws.count("ConnectionsGone", outcome.gone)
