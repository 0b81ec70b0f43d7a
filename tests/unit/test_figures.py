"""The reliability figures (tests/reliability/figures.py) add up across workers."""

from __future__ import annotations

from tests.reliability.figures import Figures


def test_figures_of_two_workers_add_up_and_print_once() -> None:
    first, second, shown = Figures(), Figures(), Figures()
    first.record("chaos", "lost", 0)
    first.record("fuzz", "WsSend accepted", 3)
    second.record("fuzz", "WsSend accepted", 4)
    second.record("fuzz", "WsAck refused", 2.5)

    shown.merge(first.dump())
    shown.merge(second.dump())

    assert shown.dump() == {
        "chaos": {"lost": 0},
        "fuzz": {"WsSend accepted": 7, "WsAck refused": 2.5},
    }
    assert shown.lines() == [
        "chaos:",
        "  lost  0",
        "fuzz:",
        "  WsSend accepted  7",
        "  WsAck refused    2.50",
    ]
