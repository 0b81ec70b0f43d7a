"""The sans-I/O protocol: frames out, events in, no network."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from parley.protocol import (
    ACK_BATCH,
    FRAGMENT_BYTES,
    MAX_MESSAGES_PER_SEND,
    RECEIPT_ACK_DELAY_S,
    DevicesMismatched,
    FrameTooLarge,
    IncomingMessage,
    IncomingReceipt,
    OutboxEntry,
    Protocol,
    SendAccepted,
    SendRejected,
    ServerError,
    SyncComplete,
    TypingChanged,
    fragment,
)

ALICE = "a" * 32
BOB = "b" * 32
CAROL = "c" * 32
# the sync a client sends: it reads a page in `batch` events
SYNC = {"action": "sync", "batch": True}
DEV1 = "1" * 16
DEV2 = "2" * 16


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frames(proto: Protocol) -> list[dict[str, Any]]:
    return [json.loads("".join(frame)) for frame in proto.data_to_send()]


def entry(client_id: str, to: str = BOB) -> OutboxEntry:
    return OutboxEntry(client_id=client_id, to=to, payloads={DEV1: "Y2lwaGVy"})


def message_event(client_id: str = "m1", server_id: str = "s1", **over: Any) -> str:
    event = {
        "event": "message",
        "id": server_id,
        "client_id": client_id,
        "from": ALICE,
        "from_device": DEV1,
        "body": "Y2lwaGVy",
        "ts": 1_700_000_000_000,
    }
    event.update(over)
    return json.dumps(event)


def connected(**kwargs: Any) -> Protocol:
    """A protocol on a live connection; its acks go at once unless `ack_delay` says
    otherwise (what is acked is these tests' subject; when, the delayed-ack tests')."""
    kwargs.setdefault("ack_delay", 0.0)
    proto = Protocol(**kwargs)
    proto.connection_made()
    proto.data_to_send()  # the initial sync
    return proto


def test_connecting_starts_with_a_sync_and_follows_the_cursor_until_done() -> None:
    proto = Protocol()
    proto.connection_made()
    assert frames(proto) == [SYNC]

    proto.receive_data(json.dumps({"event": "synced", "more": True, "cursor": "c1"}))
    assert frames(proto) == [{**SYNC, "after": "c1"}]
    assert proto.events_received() == []
    assert not proto.synced

    proto.receive_data(json.dumps({"event": "synced", "more": False, "cursor": None}))
    assert frames(proto) == []
    assert proto.events_received() == [SyncComplete()]
    assert proto.synced


def test_nothing_is_written_while_disconnected_and_the_outbox_goes_out_on_connect() -> None:
    proto = Protocol()
    proto.send(entry("m1"))
    assert proto.data_to_send() == []

    proto.connection_made()
    assert frames(proto) == [
        SYNC,
        {"action": "send", "id": "m1", "to": BOB, "payloads": {DEV1: "Y2lwaGVy"}},
    ]


def test_one_message_per_conversation_is_in_flight_and_the_next_waits_for_sent() -> None:
    proto = connected()
    proto.send(entry("m1"))
    proto.send(entry("m2"))
    proto.send(entry("x1", to=CAROL))  # another conversation is not held up
    assert [f["id"] for f in frames(proto)] == ["m1", "x1"]

    proto.receive_data(json.dumps({"event": "sent", "id": "m1", "ts": 5}))
    assert [f["id"] for f in frames(proto)] == ["m2"]
    assert proto.events_received() == [SendAccepted(entry("m1"), 5)]
    assert [e.client_id for e in proto.pending()] == ["m2", "x1"]


def test_an_interrupted_send_is_sent_again_with_the_same_client_id_after_reconnect() -> None:
    proto = connected()
    proto.send(entry("m1"))
    proto.send(entry("m2"))
    assert [f["id"] for f in frames(proto)] == ["m1"]

    proto.connection_lost()
    proto.receive_data(json.dumps({"event": "sent", "id": "m1", "ts": 5}))  # late: ignored
    proto.events_received()
    proto.connection_made()

    out = frames(proto)
    assert out[0] == SYNC
    assert [f["id"] for f in out[1:]] == ["m1"]  # m1 again, m2 still waiting behind it


def test_an_unanswered_send_is_sent_again_after_the_timeout() -> None:
    clock = Clock()
    proto = connected(clock=clock, send_timeout=30)
    proto.send(entry("m1"))
    frames(proto)
    assert proto.next_deadline() == 1030.0

    clock.now = 1010.0
    proto.handle_timeout()
    assert frames(proto) == []

    clock.now = 1031.0
    proto.handle_timeout()
    assert [f["id"] for f in frames(proto)] == ["m1"]


def test_a_message_is_acked_only_after_it_is_reported_stored() -> None:
    proto = connected()
    proto.receive_data(message_event())
    (incoming,) = proto.events_received()
    assert isinstance(incoming, IncomingMessage)
    assert incoming.sender == ALICE
    assert incoming.client_id == "m1"
    assert frames(proto) == []  # not stored yet: no ack

    proto.message_stored(incoming)
    assert frames(proto) == [{"action": "ack", "ids": ["s1"]}]


def test_a_batch_is_read_as_its_events_one_after_another() -> None:
    proto = connected()
    synced = {"event": "synced", "more": True, "cursor": "c1"}
    batch = {
        "event": "batch",
        "events": [
            json.loads(message_event(client_id="m1", server_id="s1")),
            json.loads(message_event(client_id="m2", server_id="s2")),
            synced,
        ],
    }
    proto.receive_data(json.dumps(batch))

    got = proto.events_received()
    assert [e.client_id for e in got if isinstance(e, IncomingMessage)] == ["m1", "m2"]
    assert frames(proto) == [{**SYNC, "after": "c1"}]  # `synced` read, after the messages


def test_what_is_not_an_event_in_a_batch_is_ignored_and_the_rest_read() -> None:
    proto = connected()
    nested = {"event": "batch", "events": [json.loads(message_event(server_id="s9"))]}
    batch = {"event": "batch", "events": [7, {"no": "event"}, nested, json.loads(message_event())]}
    proto.receive_data(json.dumps(batch))
    proto.receive_data(json.dumps({"event": "batch", "events": "not a list"}))

    (incoming,) = proto.events_received()
    assert isinstance(incoming, IncomingMessage)
    assert incoming.server_id == "s1"
    assert frames(proto) == []


def test_duplicates_by_sender_and_client_id_are_acked_but_not_surfaced() -> None:
    stored: set[tuple[str, str]] = {(ALICE, "old")}
    proto = connected(is_seen=lambda sender, cid: (sender, cid) in stored)

    # already in the store from an earlier run
    proto.receive_data(message_event(client_id="old", server_id="s0"))
    assert proto.events_received() == []
    assert frames(proto) == [{"action": "ack", "ids": ["s0"]}]

    # the same message twice before it is stored (live delivery and sync)
    proto.receive_data(message_event(client_id="m1", server_id="s1"))
    proto.receive_data(message_event(client_id="m1", server_id="s1b"))
    (incoming,) = proto.events_received()
    proto.message_stored(incoming)
    assert frames(proto) == [{"action": "ack", "ids": ["s1", "s1b"]}]

    # and once more after it was stored
    proto.receive_data(message_event(client_id="m1", server_id="s1c"))
    assert proto.events_received() == []
    assert frames(proto) == [{"action": "ack", "ids": ["s1c"]}]


def test_an_ack_ticks_only_messages_whose_senders_the_app_lets_see_it() -> None:
    # Alice is known, Carol a stranger: one ack frame, a delivered tick for Alice only
    proto = connected(ticks=lambda message: message.sender == ALICE)
    proto.receive_data(message_event(client_id="a1", server_id="s1"))
    proto.receive_data(message_event(client_id="c1", server_id="s2", **{"from": CAROL}))
    for incoming in proto.events_received():
        assert isinstance(incoming, IncomingMessage)
        proto.message_stored(incoming)
    assert frames(proto) == [
        {"action": "ack", "ids": ["s1"], "delivered": ["s1"]},
        {"action": "ack", "ids": ["s2"]},
    ]
    # a copy of Alice's message (its first ack may have failed) ticks again
    proto.receive_data(message_event(client_id="a1", server_id="s1"))
    assert frames(proto) == [{"action": "ack", "ids": ["s1"], "delivered": ["s1"]}]


def test_a_dropped_message_and_the_default_protocol_tick_nobody() -> None:
    proto = connected(ticks=lambda _message: True)
    proto.receive_data(message_event(client_id="forged", server_id="s1"))
    (incoming,) = proto.events_received()
    assert isinstance(incoming, IncomingMessage)
    proto.message_dropped(incoming)
    assert frames(proto) == [{"action": "ack", "ids": ["s1"]}]

    quiet = connected()  # an app that says nothing: no ack tells anyone anything
    quiet.receive_data(message_event())
    (incoming,) = quiet.events_received()
    assert isinstance(incoming, IncomingMessage)
    quiet.message_stored(incoming)
    assert frames(quiet) == [{"action": "ack", "ids": ["s1"]}]


def test_the_same_client_id_from_another_sender_is_a_different_message() -> None:
    proto = connected()
    proto.receive_data(message_event(client_id="m1", server_id="s1"))
    proto.receive_data(message_event(client_id="m1", server_id="s2", **{"from": CAROL}))
    assert [e.sender for e in proto.events_received() if isinstance(e, IncomingMessage)] == [
        ALICE,
        CAROL,
    ]


def test_acks_made_while_offline_are_sent_on_the_next_connection() -> None:
    proto = connected()
    proto.receive_data(message_event())
    (incoming,) = proto.events_received()
    proto.connection_lost()
    assert isinstance(incoming, IncomingMessage)
    proto.message_stored(incoming)
    assert proto.data_to_send() == []
    proto.connection_made()
    assert frames(proto) == [SYNC, {"action": "ack", "ids": ["s1"]}]


def _stored(proto: Protocol, *texts: str) -> None:
    """Each message or receipt in `texts` received, then stored or applied."""
    for text in texts:
        proto.receive_data(text)
        for incoming in proto.events_received():
            if isinstance(incoming, IncomingReceipt):
                proto.receipt_stored(incoming)
            else:
                assert isinstance(incoming, IncomingMessage)
                proto.message_stored(incoming)


def test_acks_of_what_arrives_together_share_one_frame() -> None:
    clock = Clock()
    proto = connected(clock=clock, ticks=lambda message: message.client_id != "m2", ack_delay=0.2)
    assert proto.next_deadline() is None

    _stored(proto, message_event("m1", "s1"))
    clock.now = 1000.1
    _stored(proto, message_event("m2", "s2"), message_event("m3", "s3"))
    assert frames(proto) == []  # waiting for company
    assert proto.next_deadline() == pytest.approx(1000.2)  # the first ack's time

    clock.now = 1000.15
    proto.handle_timeout()  # early: nothing is due yet
    assert frames(proto) == []

    clock.now = 1000.2
    proto.handle_timeout()
    assert frames(proto) == [
        {"action": "ack", "ids": ["s1", "s2", "s3"], "delivered": ["s1", "s3"]}
    ]
    assert proto.next_deadline() is None

    # the next ack waits its own delay, counted from when it was made
    _stored(proto, message_event("m4", "s4"))
    assert frames(proto) == []
    assert proto.next_deadline() == pytest.approx(clock.now + 0.2)


def test_a_full_batch_of_acks_goes_without_waiting() -> None:
    proto = connected(clock=Clock(), ack_delay=0.2)
    _stored(proto, *(message_event(f"m{n}", f"s{n}") for n in range(ACK_BATCH)))
    (ack,) = frames(proto)
    assert ack["ids"] == [f"s{n}" for n in range(ACK_BATCH)]
    assert proto.next_deadline() is None


def test_flush_acks_sends_the_waiting_acks_at_once() -> None:
    proto = connected(clock=Clock(), ack_delay=0.2)
    _stored(proto, message_event("m1", "s1"))
    receipt = json.dumps(
        {
            "event": "receipt",
            "id": "r1",
            "from": BOB,
            "from_device": DEV2,
            "status": "read",
            "ids": ["m9"],
            "ts": 1,
        }
    )
    proto.receive_data(receipt)
    (applied,) = proto.events_received()
    assert isinstance(applied, IncomingReceipt)
    proto.receipt_stored(applied)
    assert frames(proto) == []
    proto.flush_acks()
    assert frames(proto) == [{"action": "ack", "ids": ["s1", "r1"]}]


@pytest.mark.parametrize("delay", [-0.1, 10.5, float("nan")])
def test_an_ack_delay_out_of_range_is_refused(delay: float) -> None:
    with pytest.raises(ValueError, match="ack_delay"):
        Protocol(ack_delay=delay)


def test_acks_waiting_when_the_connection_drops_go_on_the_next_one() -> None:
    clock = Clock()
    proto = connected(clock=clock, ack_delay=0.2)
    _stored(proto, message_event("m1", "s1"))
    proto.connection_lost()
    assert proto.next_deadline() is None  # nothing to do offline
    clock.now += 5
    proto.connection_made()
    assert frames(proto) == [SYNC, {"action": "ack", "ids": ["s1"]}]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("from", "not-a-user"),
        ("from_device", "xyz"),
        ("client_id", "bad id with spaces"),
        ("body", ""),
        ("body", 42),
        ("ts", "yesterday"),
    ],
)
def test_a_malformed_message_is_logged_acked_and_dropped(
    field: str, value: object, caplog: pytest.LogCaptureFixture
) -> None:
    proto = connected()
    with caplog.at_level(logging.WARNING, logger="parley.protocol"):
        proto.receive_data(message_event(**{field: value}))
    assert proto.events_received() == []
    assert frames(proto) == [{"action": "ack", "ids": ["s1"]}]
    assert "dropped message" in caplog.text


@pytest.mark.parametrize(
    "text",
    ["not json", "[1,2]", '{"no":"event"}', '{"event":"bogus"}', '{"event":"message"}', "\xff"],
)
def test_garbage_frames_are_ignored_with_a_warning(
    text: str, caplog: pytest.LogCaptureFixture
) -> None:
    proto = connected()
    with caplog.at_level(logging.WARNING, logger="parley.protocol"):
        proto.receive_data(text)
    assert proto.events_received() == []
    assert frames(proto) == []
    assert caplog.records


def receipt_event(server_id: str = "r1", ids: tuple[str, ...] = ("m1", "m2")) -> str:
    return json.dumps(
        {
            "event": "receipt",
            "id": server_id,
            "from": BOB,
            "from_device": DEV2,
            "status": "delivered",
            "ids": list(ids),
            "ts": 7,
        }
    )


def test_receipts_are_surfaced_and_acked_once_applied_at_the_latest_after_their_delay() -> None:
    clock = Clock()
    proto = connected(clock=clock)
    proto.receive_data(receipt_event())
    (receipt,) = proto.events_received()
    assert receipt == IncomingReceipt("r1", BOB, DEV2, "delivered", ("m1", "m2"), 7)
    assert frames(proto) == []
    assert proto.next_deadline() is None  # nothing to ack before it is applied
    proto.receipt_stored(receipt)
    # no tick hangs on it: it waits for an ack frame that goes anyway, or its time
    assert frames(proto) == []
    assert proto.next_deadline() == pytest.approx(1000.0 + RECEIPT_ACK_DELAY_S)
    clock.now += RECEIPT_ACK_DELAY_S - 0.01
    proto.handle_timeout()
    assert frames(proto) == []
    clock.now += 0.01
    proto.handle_timeout()
    assert frames(proto) == [{"action": "ack", "ids": ["r1"]}]
    assert proto.next_deadline() is None


def test_a_receipts_ack_rides_in_the_frame_that_acks_the_reply() -> None:
    clock = Clock()
    proto = connected(clock=clock, ticks=lambda _message: True, ack_delay=0.2)
    _stored(proto, receipt_event("r1"))  # Bob's device got what Alice sent
    clock.now += 5
    _stored(proto, receipt_event("r2", ("m3",)))
    clock.now += 20
    _stored(proto, message_event("m9", "s9"))  # Bob replies
    assert frames(proto) == []
    assert proto.next_deadline() == pytest.approx(clock.now + 0.2)  # the reply's ack
    clock.now += 0.2
    proto.handle_timeout()
    assert frames(proto) == [{"action": "ack", "ids": ["r1", "r2", "s9"], "delivered": ["s9"]}]
    assert proto.next_deadline() is None


def test_a_receipts_ack_waits_no_longer_than_a_messages_when_told_so() -> None:
    clock = Clock()
    proto = connected(clock=clock, ack_delay=0.2, receipt_ack_delay=0.2)
    _stored(proto, receipt_event())
    assert proto.next_deadline() == pytest.approx(1000.2)
    clock.now += 0.2
    proto.handle_timeout()
    assert frames(proto) == [{"action": "ack", "ids": ["r1"]}]


@pytest.mark.parametrize(
    ("ack", "receipt"), [(0.2, 0.1), (0.0, -1.0), (0.2, 3601.0), (0.2, float("nan"))]
)
def test_a_receipt_ack_delay_out_of_range_is_refused(ack: float, receipt: float) -> None:
    with pytest.raises(ValueError, match="receipt_ack_delay"):
        Protocol(ack_delay=ack, receipt_ack_delay=receipt)


def test_a_receipt_with_an_unknown_status_is_dropped_and_acked() -> None:
    proto = connected()
    proto.receive_data(
        json.dumps(
            {"event": "receipt", "id": "r1", "from": BOB, "status": "eaten", "ids": [], "ts": 1}
        )
    )
    assert proto.events_received() == []
    assert frames(proto) == [{"action": "ack", "ids": ["r1"]}]


def test_mismatched_devices_parks_the_conversation_until_payloads_are_replaced() -> None:
    proto = connected()
    proto.send(entry("m1"))
    proto.send(entry("m2"))
    frames(proto)
    proto.receive_data(
        json.dumps(
            {
                "event": "error",
                "ref": "m1",
                "code": "mismatched_devices",
                "message": "payloads do not match",
                "missing": [DEV2],
                "extra": [DEV1],
            }
        )
    )
    assert proto.events_received() == [DevicesMismatched(entry("m1"), (DEV2,), (DEV1,))]
    assert frames(proto) == []  # m2 waits behind m1

    proto.replace_payloads("m1", {DEV2: "bmV3"})
    assert frames(proto) == [{"action": "send", "id": "m1", "to": BOB, "payloads": {DEV2: "bmV3"}}]
    proto.receive_data(json.dumps({"event": "sent", "id": "m1", "ts": 9}))
    assert [f["id"] for f in frames(proto)] == ["m2"]


def test_a_rate_limited_send_waits_retry_after_then_goes_again() -> None:
    clock = Clock()
    proto = connected(clock=clock)
    proto.send(entry("m1"))
    frames(proto)
    limited = {"event": "error", "ref": "m1", "code": "rate_limited", "retry_after": 2}
    proto.receive_data(json.dumps(limited))
    (rejected,) = proto.events_received()
    assert isinstance(rejected, SendRejected)
    assert rejected.retry_after == 2
    assert proto.next_deadline() == 1002.0
    proto.handle_timeout()
    assert frames(proto) == []
    clock.now = 1002.0
    proto.handle_timeout()
    assert [f["id"] for f in frames(proto)] == ["m1"]


def test_a_permanent_send_error_drops_the_entry_and_releases_the_next() -> None:
    proto = connected()
    proto.send(entry("m1"))
    proto.send(entry("m2"))
    frames(proto)
    proto.receive_data(
        json.dumps({"event": "error", "ref": "m1", "code": "payload_too_large", "message": "big"})
    )
    (rejected,) = proto.events_received()
    assert isinstance(rejected, SendRejected)
    assert rejected.code == "payload_too_large"
    assert rejected.retry_after is None
    assert [f["id"] for f in frames(proto)] == ["m2"]


def test_an_error_that_answers_no_send_is_surfaced_as_a_server_error() -> None:
    proto = connected()
    proto.receive_data(json.dumps({"event": "error", "code": "invalid_request", "message": "no"}))
    assert proto.events_received() == [ServerError("invalid_request", "no", {})]


def test_typing_is_relayed_when_connected_and_dropped_offline() -> None:
    proto = Protocol()
    proto.send_typing(BOB, True)
    proto.connection_made()
    assert frames(proto) == [SYNC]
    proto.send_typing(BOB, True)
    assert frames(proto) == [{"action": "typing", "to": BOB, "state": "on"}]
    proto.receive_data(
        json.dumps({"event": "typing", "from": BOB, "from_device": DEV1, "state": "off"})
    )
    assert proto.events_received() == [TypingChanged(BOB, DEV1, False)]


def test_typing_in_a_group_names_the_group_and_a_malformed_group_is_ignored() -> None:
    proto = connected()
    group = "e" * 32
    proto.send_typing(f"g:{group}", True)
    assert frames(proto) == [{"action": "typing", "to": f"g:{group}", "state": "on"}]
    typing = {"event": "typing", "from": BOB, "from_device": DEV1, "state": "on"}
    proto.receive_data(json.dumps({**typing, "group": group}))
    for bad in ("g:" + group, "x", 5, ["e"]):
        proto.receive_data(json.dumps({**typing, "group": bad}))
    assert proto.events_received() == [TypingChanged(BOB, DEV1, True, group)]


def test_read_receipts_survive_a_disconnect() -> None:
    proto = Protocol()
    proto.send_receipt(ALICE, ["m1", "m2", "m1"])
    proto.connection_made()
    assert frames(proto) == [
        SYNC,
        {"action": "receipt", "to": ALICE, "status": "read", "ids": ["m1", "m2"]},
    ]


def test_read_receipts_carry_each_messages_server_time_in_batches_of_100() -> None:
    proto = connected()
    ids = [f"m{i}" for i in range(150)]
    proto.send_receipt(ALICE, [*ids, "m0"], "read", [1000 + i for i in range(150)] + [5])
    sent = frames(proto)
    assert [f["ids"] for f in sent] == [ids[:100], ids[100:]]
    assert [f["sent"] for f in sent] == [
        [1000 + i for i in range(100)],
        [1000 + i for i in range(100, 150)],
    ]
    with pytest.raises(ValueError, match="one time per client id"):
        proto.send_receipt(ALICE, ["m1", "m2"], "read", [1])
    assert frames(proto) == []


def test_frames_over_32_kb_leave_as_fragments_under_the_limit() -> None:
    proto = connected()
    big = OutboxEntry("m1", BOB, payloads={DEV1: "A" * 60_000, DEV2: "B" * 20_000})
    proto.send(big)
    (frame,) = proto.data_to_send()
    assert len(frame) == 3
    assert all(len(part.encode()) <= FRAGMENT_BYTES for part in frame)
    assert json.loads("".join(frame))["payloads"][DEV1] == "A" * 60_000


def test_fragmenting_never_splits_a_character() -> None:
    text = "é" * 10 + "x"
    pieces = fragment(text, limit=3)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 3 for p in pieces)


def test_a_frame_over_the_128_kb_message_limit_is_refused_before_queueing() -> None:
    proto = connected()
    with pytest.raises(FrameTooLarge):
        proto.send(OutboxEntry("m1", BOB, payloads={DEV1: "A" * 140_000}))
    assert proto.pending() == []


def test_cancel_releases_the_next_entry() -> None:
    proto = connected()
    proto.send(entry("m1"))
    proto.send(entry("m2"))
    frames(proto)
    proto.receive_data(
        json.dumps(
            {
                "event": "error",
                "ref": "m1",
                "code": "mismatched_devices",
                "missing": [DEV2],
                "extra": [],
            }
        )
    )
    proto.events_received()
    assert proto.cancel("m1") == entry("m1")
    assert [f["id"] for f in frames(proto)] == ["m2"]


def test_a_dropped_message_is_acked_but_not_remembered_so_a_forgery_cannot_mask_the_real_one() -> (
    None
):
    proto = connected()
    proto.receive_data(message_event(client_id="m1", server_id="forged"))
    (forged,) = proto.events_received()
    assert isinstance(forged, IncomingMessage)
    proto.message_dropped(forged)
    assert frames(proto) == [{"action": "ack", "ids": ["forged"]}]

    proto.receive_data(message_event(client_id="m1", server_id="real"))
    (real,) = proto.events_received()
    assert isinstance(real, IncomingMessage)
    assert real.server_id == "real"


def test_an_ephemeral_send_says_so_and_is_dropped_if_it_cannot_go_in_time() -> None:
    clock = Clock()
    proto = Protocol(clock=clock)
    offer = OutboxEntry(
        client_id="offer", to=BOB, payloads={DEV1: "Y2lwaGVy"}, ttl=60, ephemeral=True, ring=True
    )
    later = entry("m2")
    proto.send(offer)
    proto.send(later)
    assert proto.next_deadline() == 1060.0  # offline: it waits at most its ttl

    clock.now = 1061.0
    proto.handle_timeout()
    rejected = proto.events_received()
    assert [(e.entry.client_id, e.code, e.retry_after) for e in rejected] == [
        ("offer", "expired", None)
    ]
    assert isinstance(rejected[0], SendRejected)
    proto.connection_made()
    sent = [f for f in frames(proto) if f["action"] == "send"]
    assert [f["id"] for f in sent] == ["m2"]  # the stale offer never rings


def test_an_ephemeral_send_in_time_carries_its_flags_and_ttl() -> None:
    clock = Clock()
    proto = connected(clock=clock)
    proto.send(
        OutboxEntry(
            client_id="o", to=BOB, payloads={DEV1: "eA=="}, ttl=60, ephemeral=True, ring=True
        )
    )
    [frame] = frames(proto)
    assert frame["ephemeral"] is True
    assert frame["ring"] is True
    assert frame["ttl"] == 60
    clock.now = 1100.0  # in flight: answered or resent, never dropped mid-flight
    proto.handle_timeout()
    assert proto.events_received() == []
    plain = entry("plain").frame()
    assert "ephemeral" not in plain
    assert "ring" not in plain


# -- several messages in one frame (`more`) ---------------------------------------------


def sent(client_id: str, ts: int, *more: tuple[str, int]) -> str:
    event: dict[str, Any] = {"event": "sent", "id": client_id, "ts": ts}
    if more:
        event["more"] = [{"id": cid, "ts": at} for cid, at in more]
    return json.dumps(event)


def following(client_id: str) -> dict[str, Any]:
    return {"id": client_id, "payloads": {DEV1: "Y2lwaGVy"}}


def test_what_queued_for_one_user_goes_in_one_frame_and_one_sent_accepts_it_all() -> None:
    proto = Protocol(ack_delay=0.0)
    for client_id in ("m1", "m2", "m3"):
        proto.send(entry(client_id))
    proto.send(entry("x1", to=CAROL))
    proto.connection_made()

    assert frames(proto)[1:] == [
        {**entry("m1").frame(), "more": [following("m2"), following("m3")]},
        entry("x1", to=CAROL).frame(),
    ]
    proto.receive_data(sent("m1", 5, ("m2", 6), ("m3", 7)))
    assert proto.events_received() == [
        SendAccepted(entry("m1"), 5),
        SendAccepted(entry("m2"), 6),
        SendAccepted(entry("m3"), 7),
    ]
    assert [e.client_id for e in proto.pending()] == ["x1"]
    assert frames(proto) == []


def test_what_queues_behind_a_send_in_flight_follows_it_in_one_frame() -> None:
    proto = connected()
    proto.send(entry("m1"))
    for client_id in ("m2", "m3", "m4"):
        proto.send(entry(client_id))
    assert [f.get("more") for f in frames(proto)] == [None]

    proto.receive_data(sent("m1", 5))
    (frame,) = frames(proto)
    assert frame["id"] == "m2"
    assert [m["id"] for m in frame["more"]] == ["m3", "m4"]


def test_a_frame_takes_only_plain_messages_for_the_same_devices_in_order() -> None:
    proto = Protocol()
    proto.send(entry("m1"))
    proto.send(OutboxEntry("m2", BOB, payloads={DEV1: "YQ=="}, ttl=60))  # a timer is fine
    proto.send(OutboxEntry("m3", BOB, payloads={DEV1: "YQ==", DEV2: "Yg=="}))  # other devices
    proto.send(entry("m4"))
    proto.connection_made()

    (_, first) = frames(proto)
    assert first["more"] == [{"id": "m2", "payloads": {DEV1: "YQ=="}, "ttl": 60}]
    proto.receive_data(sent("m1", 1, ("m2", 2)))
    (second,) = frames(proto)
    assert second["id"] == "m3"
    assert "more" not in second  # m4 is for other devices than m3: it goes after

    # call signalling, and what waits on another entry, go alone
    proto.receive_data(sent("m3", 3))
    proto.send(OutboxEntry("e1", BOB, payloads={DEV1: "YQ=="}, ttl=30, ephemeral=True))
    proto.send(OutboxEntry("w1", BOB, payloads={DEV1: "YQ=="}, after=("x9",)))
    assert [("more" in f, f["id"]) for f in frames(proto)] == [(False, "m4")]
    proto.receive_data(sent("m4", 4))
    assert [("more" in f, f["id"]) for f in frames(proto)] == [(False, "e1")]


def test_a_frame_holds_at_most_the_limit_and_stays_one_websocket_frame() -> None:
    proto = Protocol()
    for i in range(MAX_MESSAGES_PER_SEND + 5):
        proto.send(entry(f"m{i}"))
    proto.connection_made()
    (_, first) = frames(proto)
    assert len(first["more"]) == MAX_MESSAGES_PER_SEND - 1

    big = "A" * 9_000
    proto = Protocol()
    for i in range(6):
        proto.send(OutboxEntry(f"b{i}", BOB, payloads={DEV1: big}))
    proto.connection_made()
    out = proto.data_to_send()[1]
    assert len(out) == 1  # one WebSocket frame: not fragmented
    assert len(out[0].encode()) <= FRAGMENT_BYTES
    assert [m["id"] for m in json.loads(out[0])["more"]] == ["b1", "b2"]


def test_an_entry_the_answer_leaves_out_is_sent_again() -> None:
    proto = Protocol()
    for client_id in ("m1", "m2", "m3"):
        proto.send(entry(client_id))
    proto.connection_made()
    frames(proto)

    proto.receive_data(sent("m1", 5, ("m2", 6), ("elsewhere", 7)))

    assert [e.entry.client_id for e in proto.events_received()] == ["m1", "m2"]  # type: ignore[union-attr]
    assert [f["id"] for f in frames(proto)] == ["m3"]


def test_a_frame_refused_for_mismatched_devices_asks_to_repair_each_of_its_entries() -> None:
    proto = Protocol()
    for client_id in ("m1", "m2"):
        proto.send(entry(client_id))
    proto.connection_made()
    frames(proto)
    mismatched = {
        "event": "error",
        "ref": "m1",
        "code": "mismatched_devices",
        "missing": [DEV2],
        "extra": [],
    }
    proto.receive_data(json.dumps(mismatched))
    assert proto.events_received() == [
        DevicesMismatched(entry("m1"), (DEV2,), ()),
        DevicesMismatched(entry("m2"), (DEV2,), ()),
    ]
    assert frames(proto) == []

    repaired = {DEV1: "Y2lwaGVy", DEV2: "bmV3"}
    proto.replace_payloads("m1", repaired)
    assert [("more" in f, f["id"]) for f in frames(proto)] == [(False, "m1")]
    proto.replace_payloads("m2", repaired)
    proto.receive_data(sent("m1", 5))
    assert frames(proto) == [{"action": "send", "id": "m2", "to": BOB, "payloads": repaired}]


def test_a_frame_refused_for_good_sends_its_entries_alone_to_learn_which_was_refused() -> None:
    proto = Protocol()
    for client_id in ("m1", "m2", "m3"):
        proto.send(entry(client_id))
    proto.connection_made()
    frames(proto)
    too_big = {"event": "error", "ref": "m1", "code": "payload_too_large", "message": "big"}

    proto.receive_data(json.dumps(too_big))
    assert proto.events_received() == []  # nobody is refused yet
    assert frames(proto) == [entry("m1").frame()]  # the first alone

    proto.receive_data(json.dumps(too_big))  # m1 it was
    (rejected,) = proto.events_received()
    assert isinstance(rejected, SendRejected)
    assert rejected.entry == entry("m1")
    (frame,) = frames(proto)
    assert (frame["id"], [m["id"] for m in frame["more"]]) == ("m2", ["m3"])


def test_a_frame_that_waits_goes_again_whole() -> None:
    clock = Clock()
    proto = Protocol(clock=clock, send_timeout=30)
    for client_id in ("m1", "m2"):
        proto.send(entry(client_id))
    proto.connection_made()
    frames(proto)

    # rate limited: after retry_after, the same frame
    limited = {"event": "error", "ref": "m1", "code": "rate_limited", "retry_after": 2}
    proto.receive_data(json.dumps(limited))
    proto.events_received()
    clock.now += 2
    proto.handle_timeout()
    (again,) = frames(proto)
    assert [m["id"] for m in again["more"]] == ["m2"]

    # unanswered: after the timeout, the same frame
    clock.now += 31
    proto.handle_timeout()
    (again,) = frames(proto)
    assert [m["id"] for m in again["more"]] == ["m2"]

    # the connection lost: on the next one, the same frame
    proto.connection_lost()
    proto.connection_made()
    (_, again) = frames(proto)
    assert [m["id"] for m in again["more"]] == ["m2"]
    proto.receive_data(sent("m1", 1, ("m2", 2)))
    assert proto.pending() == []


def test_cancelling_an_entry_of_a_frame_on_the_wire_sends_the_rest_again() -> None:
    proto = Protocol()
    for client_id in ("m1", "m2", "m3"):
        proto.send(entry(client_id))
    proto.connection_made()
    frames(proto)

    assert proto.cancel("m2") == entry("m2")
    (again,) = frames(proto)  # the frame without m2, at once
    assert (again["id"], [m["id"] for m in again["more"]]) == ("m1", ["m3"])
    # the first frame's answer, late, still names m2: nothing breaks, m2 stays gone
    proto.receive_data(sent("m1", 5, ("m2", 6), ("m3", 7)))
    assert [e.entry.client_id for e in proto.events_received()] == ["m1", "m3"]  # type: ignore[union-attr]
    assert proto.pending() == []

    # the first of a frame cancelled: the others go on their own
    for client_id in ("n1", "n2", "n3"):
        proto.send(entry(client_id))
    frames(proto)
    proto.cancel("n1")
    (rest,) = frames(proto)
    assert (rest["id"], [m["id"] for m in rest["more"]]) == ("n2", ["n3"])


def test_a_service_that_takes_fewer_messages_a_frame_gets_smaller_frames() -> None:
    proto = Protocol()
    for client_id in ("m1", "m2", "m3", "m4"):
        proto.send(entry(client_id))
    proto.connection_made()
    frames(proto)
    smaller = {
        "event": "error",
        "ref": "m1",
        "code": "payload_too_large",
        "field": "more",
        "limit": 2,
        "message": "one send carries at most 2 messages here",
    }

    proto.receive_data(json.dumps(smaller))

    assert proto.events_received() == []  # nothing refused for good
    (frame,) = frames(proto)
    assert (frame["id"], [m["id"] for m in frame["more"]]) == ("m1", ["m2"])
    proto.receive_data(sent("m1", 1, ("m2", 2)))
    (frame,) = frames(proto)
    assert (frame["id"], [m["id"] for m in frame["more"]]) == ("m3", ["m4"])
