"""What one message costs: AWS requests, DynamoDB capacity and Lambda invocations.

The real handlers run in-process against moto and are counted as bench.metering
describes: every AWS request, the capacity DynamoDB reports (moto: a flat 1 unit
per write or query whatever the item size) and the capacity by DynamoDB's own
sizing rules (writes 1 WCU per started KB, plus the same again for the mailbox's
LSI; eventually consistent reads 0.5 RCU per started 4 KB of items read).

Scenarios (both people online and connected before counting starts):
  (a) one message: send, the recipient's ack (which sends `delivered` back to the
      online sender), the sender's ack of that receipt;
  (b) a burst of ten messages, acked in one frame, then the one batched receipt acked;
  (c) a conversation: Alice and Bob take turns, each message a reply to the one
      before, REPLY_GAP_S later; both apps close at the end.

The sender's frames are the SDK's: its outbox (parley.protocol.Protocol) is given
the messages and writes the frames, answered by the real WsSend. Ten messages
queued together (an outbox sent on reconnect, a forward, what piles up behind a
send in flight) go in one `send` frame. In (c) both people are the SDK's protocol
on a clock of the bench's: every frame, acks included, is one the SDK would write,
when it would write it (a receipt's ack waits for the frame that acks the reply).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass

from bench.metering import Counts, Device, Service, invoke, service, ws_event
from bench.report import Figure, print_table
from parley.protocol import IncomingMessage, IncomingReceipt, OutboxEntry, Protocol
from parley_server.catalogue import Setting
from parley_server.store.aws import client
from parley_server.store.mailbox import Mailbox
from parley_server.store.users import UsersStore
from tests.device_lists import list_devices

__all__ = [
    "CIPHERTEXT_BYTES",
    "REPLIES",
    "REPLY_GAP_S",
    "count_conversation",
    "count_replies",
    "main",
    "run",
]

CIPHERTEXT_BYTES = 256  # a short text message after Double Ratchet encryption
REPLIES = 20  # messages in scenario (c)
REPLY_GAP_S = 5.0  # from one message of (c) to its reply
# the bursts are the point here; the rate limiter still takes its write
_LIMITS = {"send_rate_per_s": 10_000}


def _person(service: Service, phone: str) -> Device:
    users = UsersStore(client("dynamodb"), service.settings[Setting.USERS_TABLE])
    person = Device.new()
    users.create_user(person.user_id, phone, 0)
    users.add_device(person.user_id, person.device_id, 0)
    users.activate_device(person.user_id, person.device_id)
    list_devices(users, person.user_id, [person.device_id])  # sends reach listed devices
    invoke(service, "WsConnect", ws_event("$connect", person))
    return person


def _conversation(service: Service, messages: int) -> Counts:
    """Alice sends `messages` to Bob; Bob acks them in one frame; Alice acks the receipt."""
    alice, bob = _person(service, "+15550000001"), _person(service, "+15550000002")
    meter = service.meter
    meter.reset()
    body = base64.b64encode(secrets.token_bytes(CIPHERTEXT_BYTES)).decode()
    outbox = Protocol()
    for i in range(messages):
        outbox.send(OutboxEntry(f"m{i}", bob.user_id, payloads={bob.device_id: body}))
    outbox.connection_made()
    while outbox.pending():
        frames = [json.loads("".join(parts)) for parts in outbox.data_to_send()]
        sends = [frame for frame in frames if frame["action"] == "send"]
        assert sends, f"nothing left to send, {len(outbox.pending())} unanswered"
        for frame in sends:
            answer = invoke(service, "WsSend", ws_event("send", alice, frame))["body"]
            assert json.loads(answer)["event"] == "sent", answer
            outbox.receive_data(answer)
    delivered = [e["id"] for e in meter.events(bob.connection_id) if e["event"] == "message"]
    assert len(delivered) == messages
    # Bob knows Alice: his ack ticks (parley.relationships)
    ack = {"action": "ack", "ids": delivered, "delivered": delivered}
    invoke(service, "WsAck", ws_event("ack", bob, ack))
    receipts = [e["id"] for e in meter.events(alice.connection_id) if e["event"] == "receipt"]
    assert len(receipts) == 1, receipts
    invoke(service, "WsAck", ws_event("ack", alice, {"action": "ack", "ids": receipts}))
    assert not any(e["event"] == "error" for c in meter.posted for e in meter.events(c))
    return meter.counts()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_ROUTES = {"send": "WsSend", "ack": "WsAck", "sync": "WsSync"}


@dataclass
class _App:
    """One person's device as the SDK drives it: its protocol, on the bench's clock."""

    service: Service
    device: Device
    proto: Protocol
    read: int = 0  # posts to the device read so far

    def step(self) -> bool:
        """Read what was posted to the device and write what the protocol has due;
        whether anything happened."""
        busy = False
        posts = self.service.meter.posted.get(self.device.connection_id, [])
        while self.read < len(posts):
            self._receive(json.dumps(posts[self.read]))
            self.read += 1
            busy = True
        self.proto.handle_timeout()
        for parts in self.proto.data_to_send():
            frame = json.loads("".join(parts))
            route = frame["action"]
            answer = invoke(self.service, _ROUTES[route], ws_event(route, self.device, frame))
            if isinstance(answer.get("body"), str):
                self._receive(answer["body"])
            busy = True
        return busy

    def _receive(self, text: str) -> None:
        self.proto.receive_data(text)
        for event in self.proto.events_received():
            if isinstance(event, IncomingMessage):
                self.proto.message_stored(event)
            elif isinstance(event, IncomingReceipt):
                self.proto.receipt_stored(event)


def _replies(service: Service, messages: int, gap_s: float) -> Counts:
    """Alice and Bob take turns, each message `gap_s` after the one it answers; then
    both close (what acks wait go first, as the SDK's transport sends them)."""
    clock = _Clock()
    people = [_person(service, "+15550000001"), _person(service, "+15550000002")]
    apps = [_App(service, p, Protocol(ticks=lambda _message: True, clock=clock)) for p in people]

    def run_until(until: float) -> None:
        """Everything the apps do until the clock reads `until`."""
        while True:
            while any([app.step() for app in apps]):
                pass
            due = [d for d in (app.proto.next_deadline() for app in apps) if d is not None]
            if not due or min(due) > until:
                clock.now = until
                return
            clock.now = max(clock.now, min(due))

    for app in apps:
        app.proto.connection_made()  # its sync
    run_until(clock.now)
    service.meter.reset()
    for app in apps:
        app.read = 0
    body = base64.b64encode(secrets.token_bytes(CIPHERTEXT_BYTES)).decode()
    for n in range(messages):
        me, you = apps[n % 2], apps[1 - n % 2]
        me.proto.send(
            OutboxEntry(f"m{n}", you.device.user_id, payloads={you.device.device_id: body})
        )
        run_until(clock.now + gap_s)
    for app in apps:
        app.proto.flush_acks()
    run_until(clock.now)
    meter = service.meter
    for i, (me, you) in enumerate((apps, apps[::-1])):
        sent = len(range(i, messages, 2))
        shown = [e for e in meter.events(you.device.connection_id) if e["event"] == "message"]
        ticks = [e for e in meter.events(me.device.connection_id) if e["event"] == "receipt"]
        assert len(shown) == len(ticks) == sent, (len(shown), len(ticks), sent)
    assert not any(e["event"] == "error" for c in meter.posted for e in meter.events(c))
    assert not any(app.proto.pending() for app in apps)
    for person in people:
        left = _mailbox(service, person)
        assert not left, f"left in {person.user_id}'s mailbox: {left}"
    return meter.counts()


def _mailbox(service: Service, person: Device) -> list[str]:
    """The server ids still waiting for `person`'s device (not counted)."""
    mailbox = Mailbox(client("dynamodb"), service.settings[Setting.MAILBOX_TABLE])
    with service.meter.uncounted():
        page = mailbox.page(person.user_id, person.device_id, after=None, limit=100, now=0)
    return [envelope.server_id for envelope in page.envelopes]


def count_replies(messages: int = REPLIES, gap_s: float = REPLY_GAP_S) -> Counts:
    """What scenario (c) asks of AWS, setup not counted."""
    with service(_LIMITS) as running:
        return _replies(running, messages, gap_s)


def count_conversation(messages: int) -> Counts:
    """What a conversation of `messages` messages (scenario (a) or (b)) asks of AWS,
    setup not counted."""
    with service(_LIMITS) as running:
        return _conversation(running, messages)


def _figures(group: str, counts: Counts, messages: int) -> list[Figure]:
    total = sum(counts.requests.values())
    breakdown = ", ".join(f"{op} {n}" for op, n in sorted(counts.requests.items()))
    per = 1 / messages
    return [
        Figure(group, "AWS requests / message", total * per, "requests", breakdown),
        Figure(
            group,
            "DynamoDB capacity / message (reported)",
            counts.reported_units * per,
            "CU",
            "sum of ReturnConsumedCapacity=TOTAL (moto: flat 1 per write or query)",
        ),
        Figure(
            group,
            "DynamoDB capacity / message (sized)",
            counts.sized_units * per,
            "CU",
            f"WCU+RCU by DynamoDB's item size rules, incl. LSI; {CIPHERTEXT_BYTES} B ciphertext",
        ),
        Figure(
            group,
            "Lambda invocations / message",
            sum(counts.invocations.values()) * per,
            "invocations",
            ", ".join(f"{fn} {n}" for fn, n in sorted(counts.invocations.items())),
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    """The three scenarios; `quick` changes nothing (the counts are exact, not sampled)."""
    figures: list[Figure] = []
    for group, messages in (("(a) one message", 1), ("(b) burst of 10", 10)):
        figures.extend(_figures(group, count_conversation(messages), messages))
    figures.extend(_figures(f"(c) {REPLIES} replies", count_replies(), REPLIES))
    return figures


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
