"""Parley client SDK: end-to-end encrypted messaging over the Parley service.

from parley import Client, sign_up, request_code

async with Client("alice") as c:
    await c.send("Bob", "hi")
    async for event in c.events():
        print(event)
"""

from __future__ import annotations

from parley.attachments.crypto import IntegrityError
from parley.attachments.transfer import TransferError
from parley.client import Client, EventStream
from parley.content import Attachment, ContactCard, Location, MediaError, Text
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
from parley.groups import MemberReceipt, NotAGroupMember
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
from parley.signup import request_code, sign_up

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
