"""The cost model's arithmetic: every price comes from the one table, WebSocket
messages are metered per 32 KB, Lambda time is charged at each function's memory,
and the capacity the counting benchmarks size is split into reads and writes
call by call. No measured figure is checked here."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields, replace
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.hooks import HierarchicalEmitter

from bench import cost, message_cost
from bench.cost import PRICES, Prices, Usage
from bench.metering import Counts, Meter, capacity
from parley.protocol import RECEIPT_ACK_DELAY_S
from parley_server.catalogue import Setting as S
from parley_server.catalogue import function
from parley_server.store.schema import TABLES


def _everything() -> Usage:
    """One of every billable quantity."""
    return Usage(
        deliveries=1,
        ws_messages=1,
        ws_connection_minutes=1,
        http_requests=1,
        lambda_invocations={"WsSend": 1},
        lambda_gb_seconds=1,
        write_units=1,
        read_units=1,
        sqs_requests=1,
        sns_publishes=1,
        s3_puts=1,
        s3_gets=1,
        s3_gb_months=1,
        transfer_out_bytes=1,
        kvs_channel_months=1,
        kvs_signaling_messages=1,
        turn_minutes=1,
    )


def test_a_million_websocket_messages_cost_the_list_price() -> None:
    usd = cost.cost(Usage(deliveries=1, ws_messages=1e6))
    assert usd["API Gateway WebSocket"] == pytest.approx(PRICES.ws_messages_per_million)
    assert sum(usd.values()) == pytest.approx(PRICES.ws_messages_per_million)


@pytest.mark.parametrize("price", [f.name for f in fields(Prices)])
def test_every_price_in_the_table_is_charged(price: str) -> None:
    """Doubling any one price raises the bill: no price lives outside the table."""
    usage = _everything()
    doubled = replace(PRICES, **{price: getattr(PRICES, price) * 2})
    assert sum(cost.cost(usage, doubled).values()) > sum(cost.cost(usage, PRICES).values())


def test_prices_are_dated() -> None:
    # DynamoDB's on-demand prices in the table are those since November 2024
    assert date.fromisoformat(cost.PRICES_AS_OF) >= date(2024, 11, 1)


def _conversation(posted_bytes: int, frame_bytes: int, answer_bytes: int = 80) -> Usage:
    event = {"event": "message", "body": "x" * posted_bytes}
    counts = Counts(
        requests=Counter({"apigatewaymanagementapi.PostToConnection": 1}),
        invocations=Counter({"WsSend": 1}),
        read_units=0,
        write_units=0,
        reported_units=0,
        posted={"c1": [event]},
        frames_in=(frame_bytes,),
        answers_out=(answer_bytes,),
    )
    return cost._usage(deliveries=1, counts=counts)


def test_websocket_messages_are_metered_in_32_kb_increments() -> None:
    small = _conversation(posted_bytes=300, frame_bytes=500)
    # the send frame, its `sent` route response, one post
    assert small.ws_messages == 3
    large = _conversation(posted_bytes=40 * 1024, frame_bytes=70 * 1024)
    # a 70 KB frame is 3 increments, a 40 KB post 2, the route response 1
    assert large.ws_messages == 6
    # what goes out is paid for as sent: the posts and the answers, byte for byte
    assert large.transfer_out_bytes - small.transfer_out_bytes == 40 * 1024 - 300
    longer = _conversation(posted_bytes=300, frame_bytes=500, answer_bytes=180)
    assert longer.transfer_out_bytes - small.transfer_out_bytes == 100


def test_lambda_time_is_charged_at_each_functions_configured_memory() -> None:
    spec = function("HttpApi")
    alone = cost._gb_seconds({"HttpApi": 1}, {})
    assert alone == pytest.approx(cost.LATENCY.per_invocation_ms / 1000 * spec.memory_mb / 1024)
    # each AWS call adds its in-region latency
    with_call = cost._gb_seconds({"HttpApi": 1}, {"dynamodb": 1})
    extra = cost.LATENCY.per_call_ms["dynamodb"] / 1000 * spec.memory_mb / 1024
    assert with_call == pytest.approx(alone + extra)


def test_usage_per_delivery_divides_every_quantity() -> None:
    ten = _everything().scaled(10)
    one = ten.per_delivery()
    assert one == _everything()


def test_sessions_pushes_and_media_add_to_each_message() -> None:
    overhead = cost.typical_overheads()
    assert overhead.ws_connection_minutes > 0
    assert overhead.sns_publishes == pytest.approx(cost.USAGE.offline_share)
    assert overhead.s3_puts == pytest.approx(cost.USAGE.media_share)
    usd = cost.cost(overhead)
    for service in ("API Gateway WebSocket", "Lambda", "DynamoDB", "SNS", "S3", "HTTP API"):
        assert usd[service] > 0, service


def test_an_offline_devices_message_rides_in_its_syncs_post_not_one_of_its_own() -> None:
    a = cost.USAGE
    sessions = a.sessions_per_device_day / a.messages_received_per_device_day
    overhead = cost.typical_overheads()
    # each session's `sync` in and `synced` out, less the offline share's delivery posts
    assert overhead.ws_messages == pytest.approx(a.session_ws_messages * sessions - a.offline_share)


class _Model:
    def __init__(self, name: str) -> None:
        self.name = name


def _item(size: int) -> dict[str, Any]:
    """An item of `size` bytes by DynamoDB's rules (a 2-byte name, a string value)."""
    return {"pk": {"S": "x" * (size - 2)}}


def test_the_meter_gives_each_calls_units_to_reads_or_writes() -> None:
    meter = Meter()
    events = HierarchicalEmitter()
    meter.watch(SimpleNamespace(meta=SimpleNamespace(events=events)))

    def call(operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        """The hooks botocore runs for one call, in its order."""
        model = _Model(operation)
        context: dict[str, Any] = {}
        events.emit(
            f"before-parameter-build.dynamodb.{operation}",
            params=params,
            model=model,
            context=context,
        )
        events.emit(f"before-call.dynamodb.{operation}", model=model, params={}, context=context)
        events.emit(
            f"after-call.dynamodb.{operation}",
            http_response=None,
            parsed=parsed,
            model=model,
            context=context,
        )

    call("PutItem", {"TableName": "t", "Item": _item(1500)}, {})  # set-up, before the reset
    meter.reset()
    assert (meter.read_units, meter.write_units) == (0.0, 0.0)
    call("Query", {"TableName": "t"}, {"Items": [_item(100)]})  # eventually consistent
    call("PutItem", {"TableName": "t", "Item": _item(1500)}, {})  # two started KB
    call("DeleteItem", {"TableName": "t", "Key": _item(40)}, {"Attributes": _item(300)})
    assert (meter.read_units, meter.write_units) == (0.5, 3.0)
    counts = meter.counts()
    assert counts.sized_units == 3.5
    assert counts.requests == {"dynamodb.Query": 1, "dynamodb.PutItem": 1, "dynamodb.DeleteItem": 1}


def test_a_mailbox_write_also_pays_for_its_local_index_entry() -> None:
    mailbox = next(f"parley-bench-{t.id.lower()}" for t in TABLES if t.setting is S.MAILBOX_TABLE)
    envelope = {**_item(300), "ord": {"S": "0001"}}
    assert capacity("PutItem", {"TableName": mailbox, "Item": envelope}, {}) == (0.0, 2.0)
    assert capacity("PutItem", {"TableName": "other", "Item": envelope}, {}) == (0.0, 1.0)
    # a strongly consistent read: 1 RCU per started 4 KB
    query = {"TableName": mailbox, "ConsistentRead": True}
    assert capacity("Query", query, {"Items": [_item(5000)]}) == (2.0, 0.0)


def test_a_batch_write_pays_for_each_item_it_deletes_by_that_items_size() -> None:
    mailbox = next(f"parley-bench-{t.id.lower()}" for t in TABLES if t.setting is S.MAILBOX_TABLE)
    envelope = {**_item(1500), "ord": {"S": "0001"}}
    key = _item(40)
    params = {"RequestItems": {mailbox: [{"DeleteRequest": {"Key": key}}] * 2}}
    # two started KB and the index entry's one; an item that was not there: its key
    deleted = {mailbox: [envelope, key]}
    assert capacity("BatchWriteItem", params, {}, deleted) == (0.0, 2.0 + 2.0 + 1.0)
    # unknown, each is sized by its key: the floor, never nothing
    assert capacity("BatchWriteItem", params, {}) == (0.0, 2.0)


def test_one_to_one_usage_splits_exactly_the_capacity_message_cost_sizes() -> None:
    """The counts come from bench.message_cost, and reads + writes add up to its total."""
    usage = cost.one_to_one(1)
    figures = {f.name: f.value for f in message_cost.run() if f.group.startswith("(a)")}
    sized = figures["DynamoDB capacity / message (sized)"]
    assert usage.read_units + usage.write_units == pytest.approx(sized)
    assert usage.read_units > 0
    assert usage.write_units > 0
    invocations: dict[str, Any] = dict(usage.lambda_invocations)
    assert sum(invocations.values()) == figures["Lambda invocations / message"]


def test_a_burst_goes_as_the_sdk_sends_it_and_its_frames_are_metered_as_they_were() -> None:
    counts = message_cost.count_conversation(10)
    # the SDK's outbox put the ten in one `send` frame; one ack, one receipt ack
    assert counts.invocations == Counter({"WsSend": 1, "WsAck": 2})
    assert len(counts.frames_in) == 3
    assert len(counts.answers_out) == 1  # `sent`: an ack has no route response
    usage = cost.one_to_one(10)
    # in: 3 frames; out: `sent`, the 10 messages in one `batch` post (the recipient
    # dialled with batch=1, as the SDK does), 1 receipt
    assert usage.ws_messages == 3 + 1 + 1 + 1
    posts = [post for posted in counts.posted.values() for post in posted]
    assert sorted(post["event"] for post in posts) == ["batch", "receipt"]
    (batch,) = [post for post in posts if post["event"] == "batch"]
    assert [event["event"] for event in batch["events"]] == ["message"] * 10
    # writes, each under 1 KB: 2 rate-limit updates; 10 envelopes and the receipt,
    # each with its index entry; the 10 envelopes deleted in one BatchWriteItem and
    # the receipt by a DeleteItem, each with its index entry too
    assert counts.write_units == 2 + 10 * 2 + 2 + 10 * 2 + 2


def test_a_conversation_acks_each_receipt_in_the_frame_that_acks_the_reply() -> None:
    counts = message_cost.count_replies(6, gap_s=5.0)  # asserts every mailbox is empty
    # a send and an ack frame a message; every receipt but the last rode in the
    # frame that acked its reply, and the last is acked as its app closes
    assert counts.invocations == Counter({"WsSend": 6, "WsAck": 6 + 1})
    assert counts.requests["dynamodb.BatchWriteItem"] == 5  # the ack of a reply and a receipt
    assert counts.requests["dynamodb.DeleteItem"] == 2  # alone: the first message, the last receipt
    alone = message_cost.count_replies(2, gap_s=RECEIPT_ACK_DELAY_S + 1)
    # a reply later than a receipt's ack waits: that ack goes on its own
    assert alone.invocations == Counter({"WsSend": 2, "WsAck": 4})


# -- calls --------------------------------------------------------------------------------


def test_a_relayed_call_minute_is_a_turn_minute_for_each_relayed_participant() -> None:
    usd = cost.cost(cost.relayed_call_minute())
    per_turn_minute = PRICES.kvs_turn_minutes_per_thousand / 1000
    assert usd["Kinesis Video Streams"] == pytest.approx(2 * per_turn_minute)
    assert sum(usd.values()) == pytest.approx(2 * 0.12 / 1000)  # $0.00024 at list price
    # one side relayed, the other reached directly: half
    one_side = replace(cost.CALLS, relayed_participants=1)
    assert sum(cost.cost(cost.relayed_call_minute(one_side)).values()) == pytest.approx(
        per_turn_minute
    )


def test_a_call_set_up_is_each_partys_relay_fetch() -> None:
    setup = cost.call_setup()
    assert setup.http_requests == 2
    assert dict(setup.lambda_invocations) == {"HttpApi": 2}
    assert setup.kvs_signaling_messages == 2
    assert setup.turn_minutes == 0
    usd = cost.cost(setup)
    assert usd["HTTP API"] == pytest.approx(2 * PRICES.http_requests_per_million / 1e6)
    assert usd["Kinesis Video Streams"] == pytest.approx(
        2 * PRICES.kvs_signaling_messages_per_million / 1e6
    )
    assert usd["Lambda"] > 2 * PRICES.lambda_requests_per_million / 1e6  # requests and time
    assert usd["DynamoDB"] > 0
    # a set-up costs less than a cent per thousand calls
    assert sum(usd.values()) * 1000 < 0.01


def test_the_relay_pool_costs_each_active_channel_a_month() -> None:
    assert sum(cost.cost(cost.relay_pool_month(4)).values()) == pytest.approx(
        4 * PRICES.kvs_channel_month
    )


def test_bench_prints_what_a_relayed_call_minute_costs() -> None:
    figures = {f.name: f for f in cost.run(quick=True)}
    minute = figures["relayed call minute"]
    assert minute.value == pytest.approx(0.00024)
    assert minute.unit == "USD / minute"
    assert minute.how.startswith("relayed call minute: $0.000240")
    assert figures["call relay pool"].value == pytest.approx(0.12)
    assert figures["call set-up: relays for both parties"].unit == "USD / M calls"
