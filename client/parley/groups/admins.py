"""Who is a group's admin for what members do to each other's messages (a delete
for everyone, the disappearing timer): an admin by the group's signed chain as
this device verified it, never merely one the service lists."""

from __future__ import annotations

from parley.groups.chain import ChainState
from parley.store import Store

__all__ = ["signed_admin"]


def signed_admin(store: Store, group_id: str, user_id: str) -> bool:
    """Whether the group's verified chain makes `user_id` a trusted admin. A group
    without a verified chain has no such admin."""
    stored = store.groups.chain(group_id)
    if stored is None:
        return False
    seq, head, seats = stored
    return ChainState.from_json(group_id, seq, head, seats).trusted(user_id)
