"""Parley client SDK: end-to-end encrypted messaging over the Parley service.

from parley import Client, sign_up, request_code

async with Client("alice") as c:
    await c.send("Bob", "hi")
    async for event in c.events():
        print(event)
"""

from __future__ import annotations

from parley.attachments import TransferError
from parley.client import Client, EventStream, request_code, sign_up
from parley.endpoints import Endpoints
from parley.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ContactNotFound,
    MessageTooLarge,
    NotFound,
    NotRegistered,
    ParleyClientError,
    PassphraseRequired,
    RateLimited,
    ServiceUnavailable,
    StoreLocked,
    WrongPassphrase,
)
from parley.group_receipts import MemberReceipt
from parley.groups import NotAGroupMember
from parley.media import Attachment, IntegrityError, Location, MediaError, Text
from parley.media import Contact as ContactCard
from parley.models import (
    Account,
    Connected,
    Contact,
    Direction,
    Disconnected,
    Event,
    Group,
    GroupUpdated,
    IdentityChanged,
    LinkedDevice,
    Message,
    MessageReceived,
    MessageSent,
    MessageState,
    ReceiptUpdate,
    SendFailed,
    Synced,
    Typing,
)

__all__ = [
    "Account",
    "ApiError",
    "Attachment",
    "AuthenticationError",
    "Client",
    "ConfigurationError",
    "Connected",
    "Contact",
    "ContactCard",
    "ContactNotFound",
    "Direction",
    "Disconnected",
    "Endpoints",
    "Event",
    "EventStream",
    "Group",
    "GroupUpdated",
    "IdentityChanged",
    "IntegrityError",
    "LinkedDevice",
    "Location",
    "MediaError",
    "MemberReceipt",
    "Message",
    "MessageReceived",
    "MessageSent",
    "MessageState",
    "MessageTooLarge",
    "NotAGroupMember",
    "NotFound",
    "NotRegistered",
    "ParleyClientError",
    "PassphraseRequired",
    "RateLimited",
    "ReceiptUpdate",
    "SendFailed",
    "ServiceUnavailable",
    "StoreLocked",
    "Synced",
    "Text",
    "TransferError",
    "Typing",
    "WrongPassphrase",
    "request_code",
    "sign_up",
]
__version__ = "0.1.0"
