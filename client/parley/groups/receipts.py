"""The ticks of our group messages, kept in the store, and reading a group.

A group message is delivered once every device of every member has it and
read once every member has read it (`ticks.GroupReceipts` per message). A
member who leaves no longer holds that back. Everything here is synchronous
and runs inside the caller's store transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from parley.errors import ParleyClientError
from parley.groups.ticks import GroupReceipts, MemberReceipt
from parley.models import Account, Contact, Event, Group, Message, MessageState, ReceiptUpdate
from parley.protocol import IncomingReceipt
from parley.store import Store

__all__ = ["RECENT_TICKS", "GroupTicks"]

_TICK_STATES = {"delivered": MessageState.DELIVERED, "read": MessageState.READ}
_SETTLED = frozenset({MessageState.READ, MessageState.FAILED})
# How far back a member leaving updates the ticks of our messages.
RECENT_TICKS = 200


class GroupTicks:
    """Per-member receipts of what this account said in its groups."""

    def __init__(self, store: Store, account: Account) -> None:
        self.store = store
        self.account = account

    def recipients(self, group: Group) -> dict[str, set[str]]:
        """Each other member's devices as we know them: whose acks make `delivered`."""
        me = self.account.user_id
        return {m: set(self.store.contacts.identities(m)) for m in group.members if m != me}

    def start(self, message: Message, group: Group) -> None:
        """Our message goes to the group's members as they are now."""
        self.store.receipts.save(
            message.id, GroupReceipts(self.account.user_id, self.recipients(group))
        )

    def receipt(self, receipt: IncomingReceipt, messages: Iterable[Message]) -> list[Event]:
        """A member's receipt for some of our group messages: per-member detail moves,
        and a message's state follows the whole group (every member device / member)."""
        moved: dict[tuple[str, MessageState], list[Message]] = {}
        for message in messages:
            ticks = self.store.receipts.get(message.id)
            if ticks is None:
                continue
            if receipt.status == "delivered" and receipt.sender_device is None:
                continue  # a delivery is counted per device
            device = receipt.sender_device or ""
            if not ticks.apply(receipt.sender, device, receipt.status, receipt.ts):
                continue
            assert message.group_id is not None
            for state, done in self._save(message, ticks):
                moved.setdefault((message.group_id, state), []).extend(done)
        contact = self.store.contacts.get(receipt.sender) or Contact(receipt.sender, None, None)
        return [
            ReceiptUpdate(contact, state, tuple(done), self.store.groups.get(group_id))
            for (group_id, state), done in moved.items()
        ]

    def members_gone(self, group: Group, gone: Iterable[str]) -> list[ReceiptUpdate]:
        """Members left the group: their silence no longer holds back the ticks of
        our recent messages to it (WhatsApp counts the members still there)."""
        gone = set(gone)
        if not gone:
            return []
        moved: dict[MessageState, list[Message]] = {}
        for message in self.store.messages.history(group.conversation, RECENT_TICKS):
            if not message.outgoing or message.state in _SETTLED:
                continue
            ticks = self.store.receipts.get(message.id)
            if ticks is None or not gone & {m.user_id for m in ticks.members()}:
                continue
            for user_id in gone:
                ticks.forget(user_id)
            for state, done in self._save(message, ticks):
                moved.setdefault(state, []).extend(done)
        # the update names a member who left: it is their going that completed it
        who = self.store.contacts.get(min(gone)) or Contact(min(gone), None, None)
        return [
            ReceiptUpdate(who, state, tuple(done), group) for state, done in moved.items() if done
        ]

    def _save(
        self, message: Message, ticks: GroupReceipts
    ) -> list[tuple[MessageState, list[Message]]]:
        """Keep the ticks; the message's state follows the group's, if it moved."""
        self.store.receipts.save(message.id, ticks)
        state = _TICK_STATES.get(ticks.status)
        if state is None:
            return []
        advanced = self.store.messages.advance(
            self.account.user_id, message.peer, [message.client_id], state
        )
        return [(state, advanced)] if advanced else []

    def ticks(self, message: Message) -> list[MemberReceipt]:
        """Per-member detail of one of our group messages."""
        if message.group_id is None or not message.outgoing:
            raise ParleyClientError("ticks per member exist only for group messages you sent")
        ticks = self.store.receipts.get(message.id)
        return ticks.members() if ticks is not None else []

    def mark_read(self, group: Group) -> dict[str, list[Message]]:
        """Every unread message of the group becomes read; returned per sender (each
        of them is told, so that they see when every member has read it)."""
        by_sender: dict[str, list[str]] = {}
        with self.store.transaction():
            for message in self.store.messages.unread(group.conversation):
                by_sender.setdefault(message.sender, []).append(message.client_id)
            return {
                sender: self.store.messages.advance(
                    sender, group.conversation, ids, MessageState.READ
                )
                for sender, ids in by_sender.items()
            }
