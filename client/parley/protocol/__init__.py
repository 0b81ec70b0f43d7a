"""The WebSocket protocol of Parley, sans I/O.

`Protocol` turns calls ("send this envelope", "this message is stored") into
frames to write, and text received from the server into typed events. It does
no I/O and keeps no clock of its own (one is injected), so every rule of the
protocol is tested without a network:

- sync on every connect, repeated with the server's cursor while it says `more`;
- the outbox is FIFO per conversation and only its head's frame is in flight,
  because the server orders a sender's messages by the time it stores them;
  what queued behind the head for the same user's devices goes in the head's
  frame (`more`, up to MAX_MESSAGES_PER_SEND, within one 32 KB WebSocket frame),
  which the server stores in the frame's order and answers with one `sent`;
- an unanswered or interrupted send is sent again with the SAME client id (the
  server refuses a second envelope while the first is pending);
- incoming messages are deduplicated by (sender, client id) and acked only once
  the caller reports them stored (or deliberately dropped); an ack waits up to
  ACK_DELAY_S for others, so what arrives together is acked in one frame
  (`flush_acks` sends them at once, before a close); the ack of a receipt, on
  which no tick hangs, waits for the next ack frame (at most RECEIPT_ACK_DELAY_S);
- frames above API Gateway's 32 KB frame limit leave as several fragments;
- an entry may wait for others (`after`): a group message goes out only once
  the sender keys it needs have been stored by the server, so every member
  meets the key before the message;
- a group send refused as `stale_group` waits for a re-encrypted body
  (`replace_group_body`) and goes again with the same client id.

Usage by a transport::

    proto.connection_made()
    for frame in proto.data_to_send(): await ws.send(frame if len(frame) > 1 else frame[0])
    proto.receive_data(text); for event in proto.events_received(): ...
"""

from __future__ import annotations

from parley.protocol.events import (
    DevicesChangedNotice,
    DevicesMismatched,
    GroupStale,
    IncomingMessage,
    IncomingReceipt,
    PrekeysLow,
    ProtocolEvent,
    SendAccepted,
    SendRejected,
    ServerError,
    SyncComplete,
    TypingChanged,
)
from parley.protocol.frames import (
    FRAGMENT_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGES_PER_SEND,
    FrameTooLarge,
    OutboxEntry,
    check_size,
    fragment,
)
from parley.protocol.machine import ACK_BATCH, ACK_DELAY_S, RECEIPT_ACK_DELAY_S, Protocol

__all__ = [
    "ACK_BATCH",
    "ACK_DELAY_S",
    "FRAGMENT_BYTES",
    "MAX_MESSAGES_PER_SEND",
    "MAX_MESSAGE_BYTES",
    "RECEIPT_ACK_DELAY_S",
    "DevicesChangedNotice",
    "DevicesMismatched",
    "FrameTooLarge",
    "GroupStale",
    "IncomingMessage",
    "IncomingReceipt",
    "OutboxEntry",
    "PrekeysLow",
    "Protocol",
    "ProtocolEvent",
    "SendAccepted",
    "SendRejected",
    "ServerError",
    "SyncComplete",
    "TypingChanged",
    "check_size",
    "fragment",
]
