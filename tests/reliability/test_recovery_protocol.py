"""How an app recovers what a fault left waiting, through the client SDK's
sans-I/O protocol: the rule the chaos suite found missing, one frame at a time.

An error event with no client id (`ref`) answers an ack or a sync. When it says
the server failed (service_unavailable, internal_error), nothing was changed:
the envelopes still wait, and only a sync hands them back. Without one, a
connected app would hold them until its next reconnect.
"""

from __future__ import annotations

import json

import pytest

from parley.protocol import IncomingMessage, Protocol, ServerError

ALICE = "a" * 32
DEVICE = "1" * 16


def _frames(proto: Protocol) -> list[dict[str, object]]:
    return [json.loads("".join(frame)) for frame in proto.data_to_send()]


def _connected() -> Protocol:
    proto = Protocol(ack_delay=0.0)  # acks at once: what is acked again is the subject
    proto.connection_made()
    _frames(proto)  # the sync of the connect
    proto.receive_data(json.dumps({"event": "synced", "more": False, "cursor": None}))
    proto.events_received()
    return proto


@pytest.mark.parametrize("code", ["service_unavailable", "internal_error"])
def test_a_failed_ack_or_sync_makes_the_app_sync_again(code: str) -> None:
    proto = _connected()

    proto.receive_data(json.dumps({"event": "error", "code": code, "message": "try again"}))

    assert _frames(proto) == [{"action": "sync", "batch": True}]
    assert [type(e) for e in proto.events_received()] == [ServerError]


def test_the_message_handed_back_is_acked_again_and_not_shown_twice() -> None:
    proto = _connected()
    message = {
        "event": "message",
        "id": f"m#{ALICE}#{DEVICE}#c1",
        "client_id": "c1",
        "from": ALICE,
        "from_device": DEVICE,
        "body": "eA==",
        "ts": 1,
    }
    proto.receive_data(json.dumps(message))
    (shown,) = proto.events_received()
    assert isinstance(shown, IncomingMessage)
    proto.message_stored(shown)
    assert _frames(proto) == [{"action": "ack", "ids": [message["id"]]}]

    proto.receive_data(json.dumps({"event": "error", "code": "service_unavailable"}))
    assert _frames(proto) == [{"action": "sync", "batch": True}]
    proto.receive_data(json.dumps(message))  # the sync hands it back

    assert [type(e) for e in proto.events_received()] == [ServerError]
    assert _frames(proto) == [{"action": "ack", "ids": [message["id"]]}]


@pytest.mark.parametrize("code", ["unknown_ids", "invalid_request", "rate_limited"])
def test_errors_that_are_the_frames_own_fault_do_not_sync(code: str) -> None:
    proto = _connected()

    proto.receive_data(json.dumps({"event": "error", "code": code, "message": "no"}))

    assert _frames(proto) == []
