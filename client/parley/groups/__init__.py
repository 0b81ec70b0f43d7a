"""Groups: membership, sender-key messaging and the ticks of group messages.

`membership.py` (create, read, add and remove members, leave, admins: the
service's answers kept and shown as events), `sending.py` (a message encrypted
once with this device's sender key, the key handed to members over the
pairwise sessions, a stale send caught up with), `sender_keys.py` (sender keys
in and out, messages held for a key), `receipts.py` (ticks of what we sent,
reading a group) over `ticks.py` (the pure per-message aggregate).

Only the pure parts are imported here, so that the store can use `ticks.py`.
"""

from __future__ import annotations

from parley.groups.errors import NotAGroupMember
from parley.groups.ticks import GroupReceipts, MemberReceipt, Tick

__all__ = ["GroupReceipts", "MemberReceipt", "NotAGroupMember", "Tick"]
