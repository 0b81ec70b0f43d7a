"""What a delivered message costs on AWS, in USD per million, at list prices.

A model in code: it takes what the other benchmarks count (bench.message_cost for
1:1 messages, bench.group_cost for group messages: AWS requests by service and
operation, DynamoDB capacity, Lambda invocations, the events posted to
connections) and prices it with the one dated table below. Nothing here is a
hand-written per-message figure; what the counts cannot know (how long a Lambda
invocation takes on AWS, how people use the app) is an explicit assumption in
one place, so it can be argued with and changed.

How each service is billed, and what the model charges for it:
  - API Gateway WebSocket: every message in either direction, metered in 32 KB
    increments (frames from clients, route responses, @connections posts), plus
    connection minutes.
  - Lambda: requests, plus GB-seconds at each function's configured memory
    (catalogue FUNCTIONS; arm64). Billed duration is modelled: a fixed cost per
    invocation plus the in-region latency of each AWS call it makes.
  - DynamoDB on demand: write and read request units, by DynamoDB's item size
    rules (split into reads and writes call by call).
  - SQS FIFO (group fan-out): requests, including the event source's receive and
    delete of each job.
  - SNS mobile push, S3 requests and storage, HTTP API requests, and data
    transfer out to the internet.

  - Kinesis Video Streams (calls): TURN streaming minutes, signalling messages and
    signalling channels active in a month (the call relay pool, stacks/calls.py).

Scenarios ("messaging core": every count measured): a 1:1 message with both
people online (send, delivery, ack, delivered receipt and its ack), ten in a
burst acked together, and one group message to 10, 100 and 1024 members, each
member acking it. The "typical day" figure adds, per delivered message, the
connection, push and media usage of the USAGE assumptions.

Calls (a model, nothing counted): a minute of a 1:1 call relayed through TURN on
both sides, one call's set-up (both parties fetch relays), and the relay pool's
monthly cost. The call's own signalling (offer, answer, ICE candidates) travels as
ephemeral 1:1 sends, priced like any 1:1 message.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from bench import group_cost, message_cost
from bench.metering import Counts
from bench.report import Figure, print_table
from parley_server.catalogue import FUNCTIONS
from stacks.media_spec import MEDIA_EXPIRY_DAYS

__all__ = [
    "PRICES",
    "PRICES_AS_OF",
    "USAGE",
    "CallAssumptions",
    "Latency",
    "Prices",
    "Usage",
    "UsageAssumptions",
    "call_setup",
    "cost",
    "main",
    "relay_pool_month",
    "relayed_call_minute",
    "run",
]

# -- prices: the one table ----------------------------------------------------------------

PRICES_AS_OF = "2026-11-30"


@dataclass(frozen=True)
class Prices:
    """AWS list prices, us-east-1, on-demand, after any free tier, first volume tier.

    Sources (AWS pricing pages):
      https://aws.amazon.com/api-gateway/pricing/      WebSocket, HTTP API
      https://aws.amazon.com/lambda/pricing/           requests, arm64 GB-s
      https://aws.amazon.com/dynamodb/pricing/on-demand/  (halved in November 2024)
      https://aws.amazon.com/sns/pricing/              mobile push notifications
      https://aws.amazon.com/sqs/pricing/              FIFO requests (per 64 KB)
      https://aws.amazon.com/s3/pricing/               S3 Standard
      https://aws.amazon.com/ec2/pricing/on-demand/    data transfer out to the internet
      https://aws.amazon.com/kinesis/video-streams/pricing/  WebRTC: signalling channels
        active in the month, signalling messages, TURN streaming minutes
    """

    ws_messages_per_million: float = 1.00  # first 1 billion a month
    ws_connection_minutes_per_million: float = 0.25
    http_requests_per_million: float = 1.00  # HTTP API, first 300 million a month
    lambda_requests_per_million: float = 0.20
    lambda_arm64_gb_second: float = 0.0000133334  # first 7.5 billion GB-s a month
    dynamodb_write_units_per_million: float = 0.625
    dynamodb_read_units_per_million: float = 0.125
    sns_mobile_push_per_million: float = 0.50
    sqs_fifo_requests_per_million: float = 0.50
    s3_puts_per_thousand: float = 0.005
    s3_gets_per_thousand: float = 0.0004
    s3_gb_month: float = 0.023
    transfer_out_per_gb: float = 0.09  # first 10 TB a month; falls to $0.05 above 150 TB
    # Kinesis Video Streams with WebRTC. A channel is billed for a month once anything
    # connects to it in that month; TURN minutes are metered in 1-minute increments.
    kvs_channel_month: float = 0.03
    kvs_signaling_messages_per_million: float = 2.25
    kvs_turn_minutes_per_thousand: float = 0.12


PRICES = Prices()
WS_METERING_BYTES = 32 * 1024  # API Gateway bills WebSocket messages per 32 KB
SQS_METERING_BYTES = 64 * 1024
_GB = 1024**3


# -- assumptions: what the counts cannot know ---------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Billed Lambda time: a fixed cost per invocation plus each AWS call, in-region.

    DynamoDB's single-item calls take single-digit milliseconds in-region; the
    @connections API, SNS and SQS a little more. The local stack's unloaded
    send-to-`sent` time (bench.throughput) is the same order, over moto.
    """

    per_invocation_ms: float = 3.0  # Powertools, event parsing, JSON
    per_call_ms: Mapping[str, float] = field(
        default_factory=lambda: {
            "dynamodb": 5.0,
            "apigatewaymanagementapi": 10.0,
            "sns": 20.0,
            "sqs": 10.0,
        }
    )
    other_call_ms: float = 10.0


@dataclass(frozen=True)
class UsageAssumptions:
    """How people use the app, per device and day: only the "typical day" figure uses these.

    100 billion messages a day over ~2.5 billion daily users is about 40 received
    per user per day; a phone holds its WebSocket while the app is open.
    """

    messages_received_per_device_day: float = 40.0
    sessions_per_device_day: float = 20.0  # app opened: connect, sync, disconnect
    connected_minutes_per_device_day: float = 60.0
    offline_share: float = 0.5  # messages whose recipient is offline: one push each
    media_share: float = 0.05  # messages that carry an attachment
    media_bytes: int = 300 * 1024  # the encrypted attachment
    # One session, per the handlers: the authorizer reads the device (GetItem), $connect
    # puts the connection, sync queries the mailbox and posts `synced`, $disconnect deletes
    # the connection and updates last seen.
    session_invocations: Mapping[str, int] = field(
        default_factory=lambda: {"WsAuthorizer": 1, "WsConnect": 1, "WsSync": 1, "WsDisconnect": 1}
    )
    session_calls: Mapping[str, int] = field(
        default_factory=lambda: {"dynamodb": 5, "apigatewaymanagementapi": 1}
    )
    session_write_units: float = 3.0
    session_read_units: float = 1.0  # two eventually consistent reads of small items
    session_ws_messages: int = 2  # `sync` in, `synced` out


@dataclass(frozen=True)
class CallAssumptions:
    """What a relayed call and its set-up ask of AWS: the calls model uses these.

    KVS meters TURN per relayed peer: each participant whose media goes through TURN
    holds an allocation of its own, and each allocation's minutes are billed (in
    1-minute increments). A 1:1 call relayed on both sides is therefore two
    participants' minutes for every minute of the call; one relayed on one side only
    (the other reached directly) is one.
    """

    relayed_participants: int = 2
    # GET /v1/calls/relays, once per party: the authorizer's device read (consistent),
    # the rate limiter's UpdateItem, then one GetIceServerConfig (the channel's endpoint
    # is asked once per process, so per call it is nothing)
    parties: int = 2
    relay_fetch_calls: Mapping[str, int] = field(
        default_factory=lambda: {"dynamodb": 2, "kinesisvideo": 1}
    )
    relay_fetch_write_units: float = 1.0
    relay_fetch_read_units: float = 1.0
    # Whether GetIceServerConfig is billed as a signalling message the pricing page does
    # not say; counted as one (an upper bound: a hundred-thousandth of a cent each).
    signaling_messages_per_fetch: float = 1.0


USAGE = UsageAssumptions()
LATENCY = Latency()
CALLS = CallAssumptions()


# -- what some traffic asks of AWS --------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Billable quantities of some traffic, and how many messages it delivered."""

    deliveries: float
    ws_messages: float = 0.0  # metered (32 KB) units, both directions
    ws_connection_minutes: float = 0.0
    http_requests: float = 0.0
    lambda_invocations: Mapping[str, float] = field(default_factory=dict)
    lambda_gb_seconds: float = 0.0
    write_units: float = 0.0
    read_units: float = 0.0
    sqs_requests: float = 0.0
    sns_publishes: float = 0.0
    s3_puts: float = 0.0
    s3_gets: float = 0.0
    s3_gb_months: float = 0.0
    transfer_out_bytes: float = 0.0
    kvs_channel_months: float = 0.0
    kvs_signaling_messages: float = 0.0
    turn_minutes: float = 0.0

    def per_delivery(self) -> Usage:
        """The same quantities for one delivered message."""
        return self.scaled(1 / self.deliveries)

    def scaled(self, k: float) -> Usage:
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = (
                {fn: n * k for fn, n in value.items()} if isinstance(value, Mapping) else value * k
            )
        return Usage(**values)

    def __add__(self, other: Usage) -> Usage:
        values: dict[str, Any] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            values[f.name] = (
                dict(Counter(mine) + Counter(theirs))
                if isinstance(mine, Mapping)
                else mine + theirs
            )
        return Usage(**values)


def cost(usage: Usage, prices: Prices = PRICES) -> dict[str, float]:
    """USD by service for `usage`."""
    p = prices
    million = 1e6
    return {
        "API Gateway WebSocket": usage.ws_messages * p.ws_messages_per_million / million
        + usage.ws_connection_minutes * p.ws_connection_minutes_per_million / million,
        "Lambda": sum(usage.lambda_invocations.values()) * p.lambda_requests_per_million / million
        + usage.lambda_gb_seconds * p.lambda_arm64_gb_second,
        "DynamoDB": usage.write_units * p.dynamodb_write_units_per_million / million
        + usage.read_units * p.dynamodb_read_units_per_million / million,
        "SQS": usage.sqs_requests * p.sqs_fifo_requests_per_million / million,
        "SNS": usage.sns_publishes * p.sns_mobile_push_per_million / million,
        "HTTP API": usage.http_requests * p.http_requests_per_million / million,
        "S3": usage.s3_puts * p.s3_puts_per_thousand / 1000
        + usage.s3_gets * p.s3_gets_per_thousand / 1000
        + usage.s3_gb_months * p.s3_gb_month,
        "data transfer out": usage.transfer_out_bytes / _GB * p.transfer_out_per_gb,
        "Kinesis Video Streams": usage.kvs_channel_months * p.kvs_channel_month
        + usage.kvs_signaling_messages * p.kvs_signaling_messages_per_million / million
        + usage.turn_minutes * p.kvs_turn_minutes_per_thousand / 1000,
    }


# -- from the counting benchmarks to Usage -------------------------------------------------

_MEMORY_MB = {spec.id: spec.memory_mb for spec in FUNCTIONS}


def _gb_seconds(invocations: Mapping[str, float], calls: Mapping[str, float]) -> float:
    """Modelled billed GB-s: each invocation's fixed time at its function's memory, plus
    every AWS call's latency at the invocation-weighted memory of the functions involved."""
    total = sum(invocations.values())
    if not total:
        return 0.0
    memory_gb = {fn: _MEMORY_MB.get(fn, 512) / 1024 for fn in invocations}
    fixed = sum(n * LATENCY.per_invocation_ms * memory_gb[fn] for fn, n in invocations.items())
    mean_gb = sum(n * memory_gb[fn] for fn, n in invocations.items()) / total
    waiting = sum(
        n * LATENCY.per_call_ms.get(service, LATENCY.other_call_ms) for service, n in calls.items()
    )
    return (fixed + waiting * mean_gb) / 1000


def _metered(size: int, increment: int) -> int:
    return max(1, math.ceil(size / increment))


def _usage(*, deliveries: int, counts: Counts) -> Usage:
    """Usage of a counted scenario: its requests, invocations, capacity, and the
    WebSocket frames in and out as they were (each metered per started 32 KB)."""
    by_service: Counter[str] = Counter()
    for name, n in counts.requests.items():
        by_service[name.split(".", 1)[0]] += n
    posts = [
        json.dumps(e, separators=(",", ":")).encode() for es in counts.posted.values() for e in es
    ]
    frames_in = sum(_metered(size, WS_METERING_BYTES) for size in counts.frames_in)
    answers = sum(_metered(size, WS_METERING_BYTES) for size in counts.answers_out)
    posts_out = sum(_metered(len(p), WS_METERING_BYTES) for p in posts)
    # the SQS event source receives and deletes each job (batch size 1): not the
    # function's calls, so not in the meter, but billed all the same
    jobs = counts.invocations.get("GroupFanout", 0)
    sqs = by_service.get("sqs", 0) + 2 * jobs
    return Usage(
        deliveries=deliveries,
        ws_messages=frames_in + answers + posts_out,
        lambda_invocations=dict(counts.invocations),
        lambda_gb_seconds=_gb_seconds(counts.invocations, by_service),
        write_units=counts.write_units,
        read_units=counts.read_units,
        sqs_requests=sqs,
        sns_publishes=sum(n for name, n in counts.requests.items() if name == "sns.Publish"),
        transfer_out_bytes=sum(len(p) for p in posts) + sum(counts.answers_out),
    )


def one_to_one(messages: int) -> Usage:
    """bench.message_cost's conversation of `messages` messages, as Usage."""
    return _usage(deliveries=messages, counts=message_cost.count_conversation(messages))


def one_to_one_replies() -> Usage:
    """bench.message_cost's conversation of replies (scenario (c)), as Usage."""
    return _usage(deliveries=message_cost.REPLIES, counts=message_cost.count_replies())


def group_message(members: int) -> Usage:
    """bench.group_cost's group message to `members` members, every member acking, as Usage."""
    acked = group_cost.count_group_message(members).acked
    return _usage(deliveries=members - 1, counts=acked)  # everyone but the sender


def typical_overheads(assumptions: UsageAssumptions = USAGE) -> Usage:
    """Per delivered message: the connections, pushes and media of a typical day."""
    a = assumptions
    per_message = 1 / a.messages_received_per_device_day
    sessions = a.sessions_per_device_day * per_message
    session_invocations = {fn: n * sessions for fn, n in a.session_invocations.items()}
    session_calls = {svc: n * sessions for svc, n in a.session_calls.items()}
    connections = Usage(
        deliveries=0,
        ws_messages=a.session_ws_messages * sessions,
        ws_connection_minutes=a.connected_minutes_per_device_day * per_message,
        lambda_invocations=session_invocations,
        lambda_gb_seconds=_gb_seconds(session_invocations, session_calls),
        write_units=a.session_write_units * sessions,
        read_units=a.session_read_units * sessions,
    )
    push = Usage(deliveries=0, sns_publishes=a.offline_share)
    # A message for an offline device reaches it in the `batch` its next sync posts,
    # beside `synced` (a session's share, about one short message here, fits one
    # 32 KB post): the delivery post the core counts is not made for it.
    in_sync = Usage(deliveries=0, ws_messages=-a.offline_share)
    # an attachment: POST /v1/media (a record put, an S3 PUT) and, for the recipient,
    # GET /v1/media/{id} (a record read, a HEAD) then the presigned GET of the object
    media_calls = {"dynamodb": 2.0, "s3": 1.0}
    media_invocations = {"HttpApi": 2.0}
    media = Usage(
        deliveries=0,
        http_requests=2,
        lambda_invocations=media_invocations,
        lambda_gb_seconds=_gb_seconds(media_invocations, media_calls),
        write_units=1,
        read_units=0.5,
        s3_puts=1,
        s3_gets=2,
        s3_gb_months=a.media_bytes / _GB * MEDIA_EXPIRY_DAYS / 30,
        transfer_out_bytes=a.media_bytes,
    ).scaled(a.media_share)
    return connections + push + in_sync + media


# -- calls --------------------------------------------------------------------------------


def relayed_call_minute(assumptions: CallAssumptions = CALLS) -> Usage:
    """One minute of a 1:1 call whose media goes through TURN: a TURN streaming
    minute per relayed participant (their allocations are metered apart)."""
    return Usage(deliveries=1, turn_minutes=float(assumptions.relayed_participants))


def call_setup(assumptions: CallAssumptions = CALLS) -> Usage:
    """One call's relay fetches: each party's GET /v1/calls/relays (an HTTP API
    request, an HttpApi invocation, its DynamoDB units, one GetIceServerConfig)."""
    a = assumptions
    invocations = {"HttpApi": float(a.parties)}
    calls = {service: n * a.parties for service, n in a.relay_fetch_calls.items()}
    return Usage(
        deliveries=1,
        http_requests=a.parties,
        lambda_invocations=invocations,
        lambda_gb_seconds=_gb_seconds(invocations, calls),
        write_units=a.relay_fetch_write_units * a.parties,
        read_units=a.relay_fetch_read_units * a.parties,
        kvs_signaling_messages=a.signaling_messages_per_fetch * a.parties,
    )


def relay_pool_month(channels: int) -> Usage:
    """The call relay pool for a month: every channel counted active (a request for its
    TURN credentials is counted as use; whether KVS calls that a connection it does
    not say)."""
    return Usage(deliveries=1, kvs_channel_months=float(channels))


def _call_figures() -> list[Figure]:
    from stacks.settings import ParleySettings

    group = f"cost (us-east-1 list prices of {PRICES_AS_OF})"
    minute = sum(cost(relayed_call_minute()).values())
    setup = cost(call_setup())
    channels = ParleySettings().call_relay_channels
    pool = sum(cost(relay_pool_month(channels)).values())
    p = PRICES
    return [
        Figure(
            group,
            "relayed call minute",
            minute,
            "USD / minute",
            f"relayed call minute: ${minute:.6f} = {CALLS.relayed_participants} participants "
            f"relayed x ${p.kvs_turn_minutes_per_thousand} per 1,000 TURN streaming minutes "
            "(KVS meters each relayed peer's allocation, per started minute); a call that "
            "goes peer to peer costs nothing here",
        ),
        Figure(
            group,
            "call set-up: relays for both parties",
            sum(setup.values()) * 1e6,
            "USD / M calls",
            f"{CALLS.parties} x GET /v1/calls/relays (HTTP API request, HttpApi invocation, "
            "limiter write, device read, one GetIceServerConfig counted as a KVS signalling "
            f"message); {_breakdown(setup)}; the call's own signalling is ephemeral 1:1 sends",
        ),
        Figure(
            group,
            "call relay pool",
            pool,
            "USD / month",
            f"{channels} signalling channels (callRelayChannels) x ${p.kvs_channel_month} "
            "per channel active in a month",
        ),
    ]


# -- figures ------------------------------------------------------------------------------


def _breakdown(usd: Mapping[str, float]) -> str:
    total = sum(usd.values()) or 1.0
    shown = sorted(((v, k) for k, v in usd.items() if v > 0), reverse=True)
    return ", ".join(f"{k} ${v * 1e6:.3f} ({v / total:.0%})" for v, k in shown)


def _figure(name: str, usage: Usage, how: str) -> Figure:
    usd = cost(usage.per_delivery())
    return Figure(
        f"cost (us-east-1 list prices of {PRICES_AS_OF})",
        name,
        sum(usd.values()) * 1e6,
        "USD / M delivered",
        f"{how}; {_breakdown(usd)}",
    )


def _scenarios(quick: bool) -> Iterable[tuple[str, Usage, str]]:
    yield "1:1 message", one_to_one(1), "send, delivery, ack, receipt, receipt ack (measured)"
    if not quick:
        yield "1:1 burst of 10", one_to_one(10), "ten sends acked in one frame (measured)"
        yield (
            "1:1 conversation",
            one_to_one_replies(),
            f"{message_cost.REPLIES} messages, each a reply {message_cost.REPLY_GAP_S:g} s "
            "after the one before; each receipt's ack rides in the frame that acks the "
            "reply (measured)",
        )
    for members in (10,) if quick else group_cost.SIZES:
        yield (
            f"group of {members}",
            group_message(members),
            f"one message, {members - 1} deliveries, each acked (measured)",
        )


def run(quick: bool = False) -> list[Figure]:
    """Price every scenario; `quick`: the single 1:1 message and a group of 10 only."""
    figures: list[Figure] = []
    core: Usage | None = None
    conversation: Usage | None = None
    for name, usage, how in _scenarios(quick):
        core = core or usage
        if name == "1:1 conversation":
            conversation = usage
        figures.append(_figure(f"{name}: messaging core", usage, how))
    assert core is not None
    figures.append(
        Figure(
            f"cost (us-east-1 list prices of {PRICES_AS_OF})",
            "1:1 message: billed WebSocket messages",
            core.per_delivery().ws_messages,
            "messages",
            "frames in and out per delivered 1:1 message, each metered per 32 KB "
            "(send, its answer, the delivery, the ack, the receipt, its ack)",
        )
    )
    if conversation is not None:
        figures.append(
            Figure(
                f"cost (us-east-1 list prices of {PRICES_AS_OF})",
                "1:1 conversation: billed WebSocket messages",
                conversation.per_delivery().ws_messages,
                "messages",
                "per message of the conversation above (send, its answer, the delivery, "
                "the ack, the receipt; the receipt's ack shares the reply's ack frame)",
            )
        )
    typical = core.per_delivery() + replace(typical_overheads(), deliveries=0)
    a = USAGE
    figures.append(
        _figure(
            "1:1 message, typical day",
            typical,
            f"the 1:1 core plus, per message: {a.sessions_per_device_day:g} sessions and "
            f"{a.connected_minutes_per_device_day:g} connected minutes per "
            f"{a.messages_received_per_device_day:g} messages, "
            f"{a.offline_share:.0%} pushed and delivered in their sync's post, "
            f"{a.media_share:.0%} with a "
            f"{a.media_bytes // 1024} KB attachment (assumed)",
        )
    )
    per_message = sum(cost(typical.per_delivery()).values())
    figures.append(
        Figure(
            f"cost (us-east-1 list prices of {PRICES_AS_OF})",
            "100 billion messages a day",
            per_message * 100e9,
            "USD / day",
            "the typical-day cost per message x 1e11, at first-tier list prices "
            "(volume tiers and savings plans lower it)",
        )
    )
    figures.extend(_call_figures())
    return figures


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
