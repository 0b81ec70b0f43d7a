"""Who may learn what from this device: message requests.

Someone this user *knows* is a contact the user accepted (saved with
`add_contact`, wrote to first, or whose request the user accepted) or a member of
an active group the user is in. Their messages are acked with a delivered tick,
and read receipts and typing go both ways. Anyone else's messages are a **message
request**: stored and shown, acked without a tick, no read receipt, their typing
not shown and none sent to them, until the user accepts them (`Client.accept`,
replying, or saving them). So nobody learns when this device comes online, or that
it read anything, by writing to it.

What the user accepted is told to the service (PUT / DELETE /v1/contacts/{id}):
it shows last seen to those contacts only (when the user's setting is
`contacts`), and the account's other devices read it (GET /v1/contacts) so that
every device agrees. A change made offline is told after the next connect.
"""

from __future__ import annotations

import logging
from typing import Protocol

from parley.errors import NotFound
from parley.models import Contact
from parley.protocol import IncomingMessage
from parley.store import Store

__all__ = ["ContactsApi", "accept", "knows", "remove", "requests", "sync", "ticks"]

log = logging.getLogger("parley.relationships")


class ContactsApi(Protocol):
    async def save_contact(self, user_id: str) -> None: ...

    async def remove_contact(self, user_id: str) -> None: ...

    async def saved_contacts(self) -> list[str]: ...


def knows(store: Store, user_id: str) -> bool:
    """Whether `user_id` may see delivered and read ticks and typing from this user."""
    if store.contacts.is_accepted(user_id):
        return True
    return store.groups.shares(user_id)


def ticks(store: Store, message: IncomingMessage) -> bool:
    """Whether acking `message` tells its sender it was delivered: a group message
    always (the service fans out only a member's message to members: the group is
    the relationship, even before this device has read who is in it), anyone
    else's if this user knows them."""
    return message.group is not None or knows(store, message.sender)


def accept(store: Store, user_id: str) -> bool:
    """The user accepts `user_id` (told to the service on the next sync); whether
    that is new."""
    if user_id == store.accounts.require().user_id:
        return False
    return store.contacts.set_accepted(user_id, True)


def remove(store: Store, user_id: str) -> bool:
    """The user no longer counts `user_id` as a contact (their messages are requests
    again, and they no longer see last seen); whether that is new."""
    return store.contacts.set_accepted(user_id, False)


def requests(store: Store) -> list[Contact]:
    """People who wrote and whom the user does not know yet, oldest first."""
    return [c for c in store.contacts.requests() if not knows(store, c.user_id)]


async def sync(api: ContactsApi, store: Store) -> None:
    """Tell the service what changed here, then take over what changed elsewhere
    (another device of the account). Raises the API's errors; what was not told
    stays to be told next time."""
    for user_id, accepted in store.contacts.untold():
        try:
            if accepted:
                await api.save_contact(user_id)
            else:
                await api.remove_contact(user_id)
        except NotFound:
            log.info("contact %s has no account any more; nothing to tell", user_id)
        store.contacts.mark_told(user_id, accepted)
    store.contacts.adopt_saved(set(await api.saved_contacts()))
