"""Who a name stands for: contacts by name, phone or user id, a conversation (a
contact or else a group), and adding a contact found in the service's directory."""

from __future__ import annotations

from parley import relationships
from parley.api import ApiClient
from parley.errors import ContactNotFound, ParleyClientError
from parley.groups.membership import Membership
from parley.models import Contact, Group
from parley.store import Store

__all__ = ["add_contact", "find_contact", "find_conversation"]


async def add_contact(api: ApiClient, store: Store, phone: str, name: str) -> Contact:
    """Find `phone` in the directory and save it as `name`."""
    if not name.strip():
        raise ValueError("a contact needs a name")
    user_id = await api.lookup(phone)
    if user_id == store.accounts.require().user_id:
        raise ParleyClientError("that is this account's own number")
    other = store.contacts.find(name)
    if other is not None and other.user_id != user_id and other.name == name:
        raise ParleyClientError(f"another contact is already called {name!r}")
    store.contacts.add(user_id, name.strip(), phone)
    relationships.accept(store, user_id)
    return find_contact(store, user_id)


def find_contact(store: Store, key: str | Contact) -> Contact:
    """A contact by name, phone or user id (ContactNotFound if none)."""
    if isinstance(key, Contact):
        found = store.contacts.get(key.user_id)
    else:
        found = store.contacts.find(key)
    if found is None:
        raise ContactNotFound(f"no contact {key!r}: add one with add_contact(phone, name)")
    return found


def find_conversation(
    store: Store, groups: Membership, key: str | Contact | Group
) -> Contact | Group:
    """A contact (by name, phone or user id) or else a group (by name or id)."""
    if isinstance(key, Group):
        return groups.group(key)
    if isinstance(key, Contact):
        return find_contact(store, key)
    found = store.contacts.find(key)
    if found is not None:
        return found
    try:
        return groups.group(key)
    except ContactNotFound:
        raise ContactNotFound(
            f"no contact {key!r} and no group of that name: add one with add_contact(phone, name)"
        ) from None
