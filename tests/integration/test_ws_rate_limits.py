"""Budgets on the WebSocket routes past `send`'s own rate: read receipts and typing
per device, and one user's 1:1 messages to another. A refused frame changes nothing
and is answered with a `rate_limited` error that says when to try again. Each test
sends a burst that two windows cannot both hold, so a window ending mid-test does
not matter."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from parley_server.catalogue import Setting
from tests.conftest import FakeAws
from tests.integration.ws_harness import Harness, harness


@pytest.fixture
def ws(aws: FakeAws, function_env: Any) -> Iterator[Harness]:
    with harness(aws, function_env) as h:
        yield h


def _limits(ws: Harness, **limits: int) -> None:
    ws.aws.settings[Setting.LIMITS] = json.dumps(limits)


def _rate_limited(errors: list[dict[str, Any]]) -> None:
    assert errors, "the burst must go past the budget"
    assert {e["code"] for e in errors} == {"rate_limited"}
    assert all(e["retry_after"] >= 1 for e in errors)


def test_read_receipts_past_a_devices_budget_are_refused(ws: Harness) -> None:
    _limits(ws, receipts_per_s=1000, receipts_per_minute=2)
    (alice,) = ws.user()
    bob = ws.connect(ws.user()[0])

    for _ in range(5):
        receipt = {"to": alice.user_id, "status": "read", "ids": [secrets.token_hex(4)]}
        assert ws.frame(bob, {"action": "receipt", **receipt}) == {"statusCode": 200}

    errors = ws.events(bob, "error")
    _rate_limited(errors)
    assert len(ws.mailbox_items(alice)) == 5 - len(errors)


def test_typing_past_a_devices_budget_is_refused(ws: Harness) -> None:
    _limits(ws, typing_per_s=1000, typing_per_minute=2)
    alice = ws.connect(ws.user()[0])
    bob = ws.connect(ws.user()[0])

    for state in ("on", "off", "on", "off", "on"):
        ws.frame(alice, {"action": "typing", "to": bob.user_id, "state": state})

    errors = ws.events(alice, "error")
    _rate_limited(errors)
    assert len(ws.events(bob, "typing")) == 5 - len(errors)


def test_one_user_may_send_another_only_so_many_messages_an_hour(ws: Harness) -> None:
    _limits(ws, messages_to_user_per_hour=2)
    alice = ws.connect(ws.user()[0])
    (bob,) = ws.user()
    (carol,) = ws.user()

    answers = [ws.send(alice, bob.user_id, {bob.device_id: b"x"}) for _ in range(5)]

    errors = [a for a in answers if a["event"] == "error"]
    _rate_limited(errors)
    assert len(ws.mailbox_items(bob)) == 5 - len(errors)
    assert ws.send(alice, carol.user_id, {carol.device_id: b"x"})["event"] == "sent"
