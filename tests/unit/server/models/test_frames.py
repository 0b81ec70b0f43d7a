from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_server.models.errors import BadRequest, PayloadTooLarge
from parley_server.models.frames import (
    BATCH_BYTES,
    MAX_EPHEMERAL_TTL_S,
    MAX_IDS_PER_FRAME,
    MAX_MESSAGES_PER_SEND,
    AckFrame,
    DirectSendFrame,
    DirectTypingFrame,
    GroupSendFrame,
    GroupTypingFrame,
    MessageEnvelope,
    Position,
    ReceiptEnvelope,
    ReceiptFrame,
    SyncFrame,
    batch_event,
    batches,
    decode_cursor,
    encode_cursor,
    event_bytes,
    frame_ref,
    make_ord,
    parse_frame,
    parse_send,
    parse_server_id,
    parse_typing,
    receipt_id,
)

BOB = "b" * 32
ALICE = "a" * 32
DEV1 = "1" * 16
DEV2 = "2" * 16
LIMIT = 64 * 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def send(**fields: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"action": "send", "id": "c1", "to": BOB, "payloads": {DEV1: b64(b"x")}}
    frame.update(fields)
    return {k: v for k, v in frame.items() if v is not ...}


def refused(raw: dict[str, Any]) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_send(raw, max_payload_bytes=LIMIT)
    return caught.value


def test_send_frame_decodes_one_ciphertext_per_device() -> None:
    frame = parse_send(
        send(payloads={DEV1: b64(b"one"), DEV2: b64(b"two")}), max_payload_bytes=LIMIT
    )
    assert frame.client_id == "c1"
    assert isinstance(frame, DirectSendFrame)
    assert frame.to == BOB
    assert dict(frame.payloads) == {DEV1: b"one", DEV2: b"two"}


def test_send_frame_ignores_a_forged_from() -> None:
    frame = parse_send(send(**{"from": ALICE, "from_device": DEV2}), max_payload_bytes=LIMIT)
    assert not hasattr(frame, "sender")
    assert isinstance(frame, DirectSendFrame)
    assert frame.to == BOB


def test_a_send_may_ask_its_envelopes_to_be_kept_less_long() -> None:
    direct = parse_send(send(ttl=86400), max_payload_bytes=LIMIT)
    group = parse_send(
        send(to="g:" + "c" * 32, payloads=..., body=b64(b"sk"), ttl=604800),
        max_payload_bytes=LIMIT,
    )
    assert (direct.ttl_s, group.ttl_s) == (86400, 604800)
    assert parse_send(send(), max_payload_bytes=LIMIT).ttl_s is None


def test_group_send_carries_one_body() -> None:
    frame = parse_send(
        send(to="g:" + "c" * 32, payloads=..., body=b64(b"sk")), max_payload_bytes=LIMIT
    )
    assert isinstance(frame, GroupSendFrame)
    assert frame.group_id == "c" * 32
    assert frame.body == b"sk"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": ...}, "id"),
        ({"id": 7}, "id"),
        ({"id": "has#hash"}, "id"),
        ({"id": "x" * 65}, "id"),
        ({"to": ...}, "to"),
        ({"to": "B" * 32}, "to"),
        ({"to": "g:nothex"}, "to"),
        ({"payloads": ...}, "payloads"),
        ({"payloads": {}}, "payloads"),
        ({"payloads": [b64(b"x")]}, "payloads"),
        ({"payloads": {"not-a-device": b64(b"x")}}, "payloads"),
        ({"payloads": {DEV1: 5}}, f"payloads.{DEV1}"),
        ({"payloads": {DEV1: ""}}, f"payloads.{DEV1}"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": -5}, "ttl"),
        ({"ttl": 86400.5}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"ttl": "86400"}, "ttl"),
        ({"ttl": 366 * 24 * 3600}, "ttl"),
    ],
)
def test_send_frame_missing_or_mistyped_fields_are_named(
    fields: dict[str, Any], field: str
) -> None:
    error = refused(send(**fields))
    assert error.code == "invalid_request"
    assert error.details["field"] == field


# -- ephemeral and ringing sends (call signalling) ------------------------------------

GROUP = "g:" + "c" * 32


def test_an_ephemeral_send_lives_its_short_ttl_and_may_ring() -> None:
    quiet = parse_send(send(ephemeral=True, ttl=60), max_payload_bytes=LIMIT)
    ringing = parse_send(
        send(ephemeral=True, ring=True, ttl=MAX_EPHEMERAL_TTL_S), max_payload_bytes=LIMIT
    )
    assert isinstance(quiet, DirectSendFrame)
    assert isinstance(ringing, DirectSendFrame)
    assert (quiet.ephemeral, quiet.ring, quiet.ttl_s) == (True, False, 60)
    assert (ringing.ephemeral, ringing.ring, ringing.ttl_s) == (True, True, 300)
    # false, or null, is the default: an ordinary send
    plain = parse_send(send(ephemeral=False, ring=None), max_payload_bytes=LIMIT)
    assert isinstance(plain, DirectSendFrame)
    assert (plain.ephemeral, plain.ring, plain.ttl_s) == (False, False, None)
    # a group send may say false (the default) too
    group = parse_send(
        send(to=GROUP, payloads=..., body=b64(b"sk"), ephemeral=False, ring=False),
        max_payload_bytes=LIMIT,
    )
    assert isinstance(group, GroupSendFrame)


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"ephemeral": True}, "ttl", "ephemeral send needs `ttl`"),
        ({"ephemeral": True, "ttl": MAX_EPHEMERAL_TTL_S + 1}, "ttl", "from 1 to 300"),
        ({"ephemeral": True, "ttl": 86400}, "ttl", "from 1 to 300"),
        ({"ephemeral": True, "ttl": 0}, "ttl", "whole seconds"),
        ({"ephemeral": True, "ttl": 30.5}, "ttl", "whole seconds"),
        ({"ring": True, "ttl": 60}, "ring", "`ring` needs `ephemeral`"),
        ({"ring": True, "ephemeral": False, "ttl": 60}, "ring", "`ring` needs `ephemeral`"),
        ({"ring": True}, "ring", "`ring` needs `ephemeral`"),
        ({"ephemeral": "true", "ttl": 60}, "ephemeral", "true or false"),
        ({"ephemeral": 1, "ttl": 60}, "ephemeral", "true or false"),
        ({"ephemeral": [], "ttl": 60}, "ephemeral", "true or false"),
        ({"ephemeral": True, "ring": "yes", "ttl": 60}, "ring", "true or false"),
        ({"ephemeral": True, "ring": 0, "ttl": 60}, "ring", "true or false"),
        (
            {"to": GROUP, "payloads": ..., "body": b64(b"sk"), "ephemeral": True, "ttl": 60},
            "ephemeral",
            "group calls are not supported",
        ),
        (
            {"to": GROUP, "payloads": ..., "body": b64(b"sk"), "ring": True, "ttl": 60},
            "ring",
            "group calls are not supported",
        ),
        (
            {"to": GROUP, "payloads": ..., "body": b64(b"sk"), "ephemeral": "no"},
            "ephemeral",
            "true or false",
        ),
    ],
)
def test_each_bad_ephemeral_or_ringing_send_is_refused_naming_its_field(
    fields: dict[str, Any], field: str, says: str
) -> None:
    error = refused(send(**fields))
    assert error.code == "invalid_request"
    assert error.details["field"] == field
    assert says in error.message


def test_a_send_frame_cannot_be_made_ringing_without_being_ephemeral() -> None:
    with pytest.raises(ValueError, match="ephemeral"):
        DirectSendFrame("c1", BOB, {DEV1: b"x"}, ttl_s=60, ring=True)
    with pytest.raises(ValueError, match="1 to 300"):
        DirectSendFrame("c1", BOB, {DEV1: b"x"}, ttl_s=None, ephemeral=True)


def test_send_frame_with_bad_base64_is_refused() -> None:
    error = refused(send(payloads={DEV1: "not base64!"}))
    assert error.code == "invalid_base64"
    assert error.details["field"] == f"payloads.{DEV1}"


def test_send_frame_payload_over_the_limit_is_refused_and_at_the_limit_accepted() -> None:
    at_limit = parse_send(send(payloads={DEV1: b64(b"\0" * LIMIT)}), max_payload_bytes=LIMIT)
    assert isinstance(at_limit, DirectSendFrame)
    assert len(at_limit.payloads[DEV1]) == LIMIT
    error = refused(send(payloads={DEV1: b64(b"\0" * (LIMIT + 1))}))
    assert isinstance(error, PayloadTooLarge)
    assert error.details["limit"] == LIMIT


@pytest.mark.parametrize("body", [None, "", "nope", "[1, 2]", '"text"'])
def test_a_frame_that_is_not_a_json_object_is_invalid_json(body: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_frame(body)
    assert caught.value.code == "invalid_json"


def test_frame_ref_is_the_client_id_only_when_it_looks_like_one() -> None:
    assert frame_ref({"id": "abc-1"}) == "abc-1"
    assert frame_ref({"id": 3}) is None
    assert frame_ref({"id": "x#y"}) is None


def test_ack_frame_takes_server_ids_and_drops_repeats() -> None:
    sid = f"m#{ALICE}#{DEV1}#c1"
    rid = f"r#{ALICE}#{DEV1}#read-{'0' * 32}"
    assert AckFrame.parse({"ids": [sid, rid, sid]}).ids == (sid, rid)


@pytest.mark.parametrize(
    "ids",
    [None, [], "m#x", [3], ["c1"], [f"x#{ALICE}#{DEV1}#c1"], {"a": 1}],
)
def test_ack_frame_refuses_what_is_not_a_list_of_server_ids(ids: Any) -> None:
    with pytest.raises(BadRequest):
        AckFrame.parse({"ids": ids})


def test_ack_frame_ticks_only_what_it_names_as_delivered() -> None:
    sid, other = f"m#{ALICE}#{DEV1}#c1", f"m#{ALICE}#{DEV1}#c2"
    assert AckFrame.parse({"ids": [sid, other]}).delivered == frozenset()
    assert AckFrame.parse({"ids": [sid, other], "delivered": None}).delivered == frozenset()
    assert AckFrame.parse({"ids": [sid, other], "delivered": [other]}).delivered == {other}


@pytest.mark.parametrize(
    "delivered",
    ["m#x", [3], [f"m#{ALICE}#{DEV1}#c9"], {"a": 1}],
)
def test_ack_frame_refuses_delivered_ids_outside_its_ids(delivered: Any) -> None:
    with pytest.raises(BadRequest) as refused:
        AckFrame.parse({"ids": [f"m#{ALICE}#{DEV1}#c1"], "delivered": delivered})
    assert refused.value.details["field"] == "delivered"


def test_ack_frame_refuses_more_ids_than_a_frame_may_hold() -> None:
    ids = [f"m#{ALICE}#{DEV1}#c{i}" for i in range(MAX_IDS_PER_FRAME + 1)]
    with pytest.raises(PayloadTooLarge):
        AckFrame.parse({"ids": ids})


def test_receipt_frame_is_read_only_with_client_ids() -> None:
    frame = ReceiptFrame.parse({"to": ALICE, "status": "read", "ids": ["c1", "c2"]})
    assert (frame.to, frame.status, frame.ids) == (ALICE, "read", ("c1", "c2"))
    for bad in (
        {"to": ALICE, "status": "delivered", "ids": ["c1"]},
        {"to": ALICE, "status": "read", "ids": ["c#1"]},
        {"to": "x", "status": "read", "ids": ["c1"]},
        {"status": "read", "ids": ["c1"]},
    ):
        with pytest.raises(BadRequest):
            ReceiptFrame.parse(bad)


def test_receipt_frame_may_date_each_id_and_a_bad_dating_is_refused() -> None:
    frame = ReceiptFrame.parse(
        {"to": ALICE, "status": "read", "ids": ["c1", "c2", "c1"], "sent": [10, 20, 30]}
    )
    assert (frame.ids, frame.sent) == (("c1", "c2"), (10, 20))
    assert ReceiptFrame.parse({"to": ALICE, "status": "read", "ids": ["c1"]}).sent is None
    for sent in ([10], [10, 20, 30, 40], [10, "20"], [10, True], [10, -1], [10, 2**53], {}):
        with pytest.raises(BadRequest) as refused:
            ReceiptFrame.parse({"to": ALICE, "status": "read", "ids": ["c1", "c2"], "sent": sent})
        assert refused.value.details["field"] == "sent"


def test_typing_frame_states() -> None:
    assert parse_typing({"to": BOB, "state": "on"}).state == "on"
    assert parse_typing({"to": BOB, "state": "off"}).state == "off"
    with pytest.raises(BadRequest):
        parse_typing({"to": BOB, "state": "maybe"})


def test_typing_frame_is_to_a_user_or_a_group() -> None:
    assert parse_typing({"to": BOB, "state": "on"}) == DirectTypingFrame(BOB, "on")
    group = "e" * 32
    assert parse_typing({"to": f"g:{group}", "state": "off"}) == GroupTypingFrame(group, "off")
    for bad in ("g:", f"g:{group}x", "g:" + "E" * 32, f"G:{group}", "", 5, None, [BOB]):
        with pytest.raises(BadRequest) as refused:
            parse_typing({"to": bad, "state": "on"})
        assert refused.value.to_dict()["field"] == "to"


def test_cursor_round_trips_and_forged_cursors_are_refused() -> None:
    position = Position(make_ord(1_700_000_000.5, "0a0b0c0d"), f"m#{ALICE}#{DEV1}#c1")
    assert decode_cursor(encode_cursor(position)) == position
    assert SyncFrame.parse({"after": encode_cursor(position)}).after == position
    assert SyncFrame.parse({}).after is None
    forged = base64.urlsafe_b64encode(b'["1", "USER#x"]').decode()
    for bad in (forged, "!!!", "x" * 300, 5):
        with pytest.raises(BadRequest) as caught:
            SyncFrame.parse({"after": bad})
        assert caught.value.details["field"] == "after"


def test_ord_sorts_by_time_and_carries_milliseconds() -> None:
    early, late = make_ord(1_700_000_000.000001, "ffffffff"), make_ord(1_700_000_000.000002, "0")
    assert early < late
    envelope = MessageEnvelope(BOB, DEV1, ALICE, DEV2, "c1", b"x", early, 0)
    assert envelope.ts == 1_700_000_000_000


def test_message_event_names_the_sender_and_its_server_id_parses_back() -> None:
    envelope = MessageEnvelope(BOB, DEV1, ALICE, DEV2, "c1", b"\x01\x02", make_ord(2.5, "ab"), 9)
    event = envelope.event()
    assert event == {
        "event": "message",
        "id": f"m#{ALICE}#{DEV2}#c1",
        "client_id": "c1",
        "from": ALICE,
        "from_device": DEV2,
        "body": "AQI=",
        "ts": 2500,
    }
    parsed = parse_server_id(event["id"])
    assert parsed is not None
    assert (parsed.kind, parsed.sender, parsed.sender_device, parsed.key) == (
        "m",
        ALICE,
        DEV2,
        "c1",
    )


def test_receipt_id_depends_on_what_the_receipt_says_not_on_order() -> None:
    assert receipt_id("read", ["a", "b"]) == receipt_id("read", ["b", "a"])
    assert receipt_id("read", ["a"]) != receipt_id("delivered", ["a"])
    envelope = ReceiptEnvelope(ALICE, DEV1, BOB, DEV2, "read", ("a", "b"), make_ord(1.0, "0"), 9)
    assert envelope.event()["id"] == f"r#{BOB}#{DEV2}#{receipt_id('read', ['a', 'b'])}"
    assert envelope.event()["ids"] == ["a", "b"]


# -- several messages in one send (`more`) ----------------------------------------------


def test_a_send_may_carry_more_messages_to_the_same_user_in_order() -> None:
    frame = parse_send(
        send(
            ttl=60,
            more=[
                {"id": "c2", "payloads": {DEV1: b64(b"two")}},
                {"id": "c3", "payloads": {DEV1: b64(b"three")}, "ttl": 3600},
            ],
        ),
        max_payload_bytes=LIMIT,
    )
    assert isinstance(frame, DirectSendFrame)
    assert [(m.client_id, m.to, dict(m.payloads), m.ttl_s) for m in frame.messages] == [
        ("c1", BOB, {DEV1: b"x"}, 60),
        ("c2", BOB, {DEV1: b"two"}, None),
        ("c3", BOB, {DEV1: b"three"}, 3600),
    ]


@pytest.mark.parametrize(
    ("more", "field"),
    [
        ([], "more"),
        ({"id": "c2"}, "more"),
        (["c2"], "more.0"),
        ([{"id": "c2", "payloads": {DEV1: b64(b"y")}, "to": ALICE}], "more.0"),
        ([{"id": "c2", "payloads": {DEV1: b64(b"y")}, "ring": True}], "more.0"),
        ([{"payloads": {DEV1: b64(b"y")}}], "more.0.id"),
        ([{"id": "c 2", "payloads": {DEV1: b64(b"y")}}], "more.0.id"),
        ([{"id": "c1", "payloads": {DEV1: b64(b"y")}}], "more.0.id"),
        (
            [{"id": "c2", "payloads": {DEV1: b64(b"y")}}, {"id": "c2", "payloads": {}}],
            "more.1.id",
        ),
        ([{"id": "c2"}], "more.0.payloads"),
        ([{"id": "c2", "payloads": {"nope": b64(b"y")}}], "more.0.payloads"),
        ([{"id": "c2", "payloads": {DEV1: "!!"}}], f"more.0.payloads.{DEV1}"),
        ([{"id": "c2", "payloads": {DEV1: b64(b"y")}, "ttl": 0}], "more.0.ttl"),
        ([{"id": "c2", "payloads": {DEV1: b64(b"y")}, "ttl": True}], "more.0.ttl"),
    ],
)
def test_a_bad_message_in_more_is_refused_naming_where(more: Any, field: str) -> None:
    assert refused(send(more=more)).details["field"] == field


def test_more_is_refused_on_a_group_send_and_an_ephemeral_one() -> None:
    one = [{"id": "c2", "payloads": {DEV1: b64(b"y")}}]
    group = {"action": "send", "id": "g1", "to": "g:" + "c" * 32, "body": "eA==", "more": one}
    assert refused(group).details["field"] == "more"
    assert refused(send(ephemeral=True, ttl=30, more=one)).details["field"] == "more"


def test_one_send_carries_at_most_the_limit_of_messages() -> None:
    def more(n: int) -> list[dict[str, Any]]:
        return [{"id": f"m{i}", "payloads": {DEV1: b64(b"y")}} for i in range(n)]

    full = parse_send(send(more=more(MAX_MESSAGES_PER_SEND - 1)), max_payload_bytes=LIMIT)
    assert isinstance(full, DirectSendFrame)
    assert len(full.messages) == MAX_MESSAGES_PER_SEND
    with pytest.raises(PayloadTooLarge) as caught:
        parse_send(send(more=more(MAX_MESSAGES_PER_SEND)), max_payload_bytes=LIMIT)
    assert caught.value.details["limit"] == MAX_MESSAGES_PER_SEND


# -- batches ------------------------------------------------------------------------------


def _event(n: int, size: int) -> dict[str, Any]:
    return {"event": "message", "id": f"s{n}", "body": "x" * size}


@given(st.lists(st.integers(min_value=0, max_value=40_000), max_size=40))
def test_batches_keep_the_order_and_fill_each_post_up_to_a_billed_message(
    sizes: list[int],
) -> None:
    events = [_event(n, size) for n, size in enumerate(sizes)]

    runs = batches(events)

    assert [event for run in runs for event in run] == events
    for run, following in zip(runs, [*runs[1:], None], strict=False):
        posted = batch_event(run)
        if len(run) > 1:
            assert posted == {"event": "batch", "events": run}
            assert event_bytes(posted) <= BATCH_BYTES
        else:
            assert posted is run[0]  # alone: the event itself, as a client without batches reads
        if following is not None:  # nothing that would have fit went to the next post
            assert event_bytes(batch_event([*run, following[0]])) > BATCH_BYTES


def test_an_event_too_large_to_share_a_post_goes_alone() -> None:
    big, small = _event(1, BATCH_BYTES), _event(2, 10)
    assert batches([small, big, small]) == [[small], [big], [small]]
    assert batches([small, small]) == [[small, small]]
    assert batches([small, small], together=False) == [[small], [small]]


def test_a_batch_of_exactly_a_billed_message_is_one_post_and_a_byte_more_is_two() -> None:
    small = _event(1, 100)
    room = BATCH_BYTES - event_bytes(batch_event([small, _event(2, 0)]))
    exact, over = _event(2, room), _event(2, room + 1)

    assert event_bytes(batch_event([small, exact])) == BATCH_BYTES
    assert batches([small, exact]) == [[small, exact]]
    assert batches([small, over]) == [[small], [over]]
