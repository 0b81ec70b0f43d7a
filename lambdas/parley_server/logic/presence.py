"""Last seen, and who may see it.

Each user picks who sees their last seen: nobody, contacts, or everybody
(default: contacts). A contact is someone the user has exchanged keys with (a
bundle claim in either direction records both), i.e. someone they have started
a conversation with. As on WhatsApp, it is reciprocal: who shows nobody their
last seen sees nobody's. Whether someone is online right now is not offered:
that would need the live connections, which the HTTP API does not read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley_server.ids import is_user_id
from parley_server.models.errors import BadRequest, NotFound
from parley_server.store.users import PRESENCE_SETTINGS

if TYPE_CHECKING:
    from parley_server.logic.ports import Caller
    from parley_server.store.users import PresenceSetting, UsersStore

__all__ = ["last_seen", "set_visibility"]


def last_seen(caller: Caller, target: str, *, users: UsersStore) -> float | None:
    """When `target` was last online, or None when unknown or not visible to the caller."""
    if not is_user_id(target):
        raise BadRequest("user_id must be 32 lowercase hex characters", field="user_id")
    viewer, profile, is_contact = users.presence_view(caller.user_id, target)
    if profile is None:
        raise NotFound("no such user")
    if target == caller.user_id:
        return profile.last_seen
    if viewer is None or viewer.presence == "nobody":
        return None
    if profile.presence == "everybody" or (profile.presence == "contacts" and is_contact):
        return profile.last_seen
    return None


def set_visibility(caller: Caller, setting: str, *, users: UsersStore) -> None:
    """Choose who sees the caller's last seen."""
    for option in PRESENCE_SETTINGS:
        if option == setting:
            chosen: PresenceSetting = option
            break
    else:
        raise BadRequest(f"last_seen must be one of {', '.join(PRESENCE_SETTINGS)}")
    users.set_presence(caller.user_id, chosen)
