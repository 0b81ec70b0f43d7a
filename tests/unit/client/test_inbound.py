"""The dispatch table of protocol events: every event the protocol can hand in
has its handler (a missing one would be a KeyError on a live connection)."""

from __future__ import annotations

from typing import Any, get_args

from parley.inbound import Inbound
from parley.protocol import ProtocolEvent


def test_every_protocol_event_has_a_handler() -> None:
    unused: Any = None  # the table is built from the methods alone
    inbound = Inbound(unused, unused, unused, unused, emit=lambda _: None, relist=unused)
    assert set(inbound.handlers) == set(get_args(ProtocolEvent))
