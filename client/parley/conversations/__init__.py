"""Conversations with one person: what goes over the pairwise sessions.

`sealing.py` encrypts one plaintext for every device of a user (starting
sessions where there are none) and commits sessions and outbox entry together;
`sending.py` sends (with the copy for this account's other devices), repairs
refused sends and settles the outbox; `receiving.py` opens and stores what
arrives, receipts and reading; `payload.py` is what travels inside the
encryption; `safety.py` the safety numbers.
"""

from __future__ import annotations

from parley.conversations.receiving import Incoming, Receiving, Rejected
from parley.conversations.safety import safety_numbers
from parley.conversations.sealing import BundleFetcher, Sealed, Sealer, new_client_id
from parley.conversations.sending import MAX_DEVICE_REPAIRS, Outgoing, Sending

__all__ = [
    "MAX_DEVICE_REPAIRS",
    "BundleFetcher",
    "Incoming",
    "Outgoing",
    "Receiving",
    "Rejected",
    "Sealed",
    "Sealer",
    "Sending",
    "new_client_id",
    "safety_numbers",
]
