"""What one message costs: AWS requests, DynamoDB capacity and Lambda invocations.

The real handlers run in-process against moto and are counted as bench.metering
describes: every AWS request, the capacity DynamoDB reports (moto: a flat 1 unit
per write or query whatever the item size) and the capacity by DynamoDB's own
sizing rules (writes 1 WCU per started KB, plus the same again for the mailbox's
LSI; eventually consistent reads 0.5 RCU per started 4 KB of items read).

Scenarios (both people online and connected before counting starts):
  (a) one message: send, the recipient's ack (which sends `delivered` back to the
      online sender), the sender's ack of that receipt;
  (b) a burst of ten messages, acked in one frame, then the one batched receipt acked.

The sender's frames are the SDK's: its outbox (parley.protocol.Protocol) is given
the messages and writes the frames, answered by the real WsSend. Ten messages
queued together (an outbox sent on reconnect, a forward, what piles up behind a
send in flight) go in one `send` frame.
"""

from __future__ import annotations

import base64
import json
import secrets

from bench.metering import Counts, Device, Service, invoke, service, ws_event
from bench.report import Figure, print_table
from parley.protocol import OutboxEntry, Protocol
from parley_server.catalogue import Setting
from parley_server.store.aws import client
from parley_server.store.users import UsersStore
from tests.device_lists import list_devices

__all__ = ["CIPHERTEXT_BYTES", "count_conversation", "main", "run"]

CIPHERTEXT_BYTES = 256  # a short text message after Double Ratchet encryption
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
    """Both scenarios; `quick` changes nothing (the counts are exact, not sampled)."""
    figures: list[Figure] = []
    for group, messages in (("(a) one message", 1), ("(b) burst of 10", 10)):
        figures.extend(_figures(group, count_conversation(messages), messages))
    return figures


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
