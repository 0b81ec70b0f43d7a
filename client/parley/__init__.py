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
from parley.devices.linking import link
from parley.endpoints import Endpoints
from parley.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ContactNotFound,
    DeviceListError,
    LinkError,
    LinkExpired,
    LinkRefused,
    LinkSignatureError,
    MalformedLinkCode,
    MessageTooLarge,
    NotFound,
    NotRegistered,
    ParleyClientError,
    PassphraseRequired,
    PinBackoff,
    RateLimited,
    RegistrationLocked,
    ServiceUnavailable,
    StoreLocked,
    UnlistedDevice,
    WrongPassphrase,
)
from parley.groups import MemberReceipt, NotAGroupMember
from parley.models import (
    Account,
    AccountMoved,
    Connected,
    Contact,
    DeviceLinked,
    DevicesChanged,
    DeviceUnlinked,
    Direction,
    Disconnected,
    Event,
    Group,
    GroupMembersUnverified,
    GroupUpdated,
    HistoryImported,
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
    "AccountMoved",
    "ApiError",
    "Attachment",
    "AuthenticationError",
    "Client",
    "ConfigurationError",
    "Connected",
    "Contact",
    "ContactCard",
    "ContactNotFound",
    "DeviceLinked",
    "DeviceListError",
    "DeviceUnlinked",
    "DevicesChanged",
    "Direction",
    "Disconnected",
    "Endpoints",
    "Event",
    "EventStream",
    "Group",
    "GroupMembersUnverified",
    "GroupUpdated",
    "HistoryImported",
    "IdentityChanged",
    "IntegrityError",
    "LinkError",
    "LinkExpired",
    "LinkRefused",
    "LinkSignatureError",
    "LinkedDevice",
    "Location",
    "MalformedLinkCode",
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
    "PinBackoff",
    "RateLimited",
    "ReceiptUpdate",
    "RegistrationLocked",
    "SendFailed",
    "ServiceUnavailable",
    "StoreLocked",
    "Synced",
    "Text",
    "TransferError",
    "Typing",
    "UnlistedDevice",
    "WrongPassphrase",
    "link",
    "request_code",
    "sign_up",
]
__version__ = "0.1.0"
