"""Sending to a group: encrypted once with this device's sender key, which goes
first to every member over the pairwise sessions (sealed like any 1:1
message), the group message waiting for those sends (`OutboxEntry.after`).

When the group's version moves, the next send makes a fresh key; when the
service says a send is stale, the caller reads the group again and `regroup`
rotates, hands out and re-encrypts under the same client id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import partial

from parley.answers import b64
from parley.content import Content, Text
from parley.conversations import (
    MAX_DEVICE_REPAIRS,
    Sealer,
    Sending,
    actions,
    new_client_id,
    payload,
)
from parley.conversations.sealing import check_entry_size
from parley.conversations.sending import ttl_of
from parley.crypto.sender_keys import MAX_GROUP_PLAINTEXT_LEN
from parley.errors import ContactNotFound, MessageTooLarge
from parley.groups.admins import signed_admin
from parley.groups.errors import NotAGroupMember
from parley.groups.receipts import GroupTicks
from parley.groups.sender_keys import SenderKeys
from parley.models import Contact, Event, Group, Message
from parley.protocol import OutboxEntry
from parley.store import OwnSenderKey

__all__ = ["GroupResend", "GroupSending"]

log = logging.getLogger("parley.groups")


@dataclass(frozen=True)
class GroupResend:
    """A stale group message re-encrypted for the group's current version, and the
    sender-key messages it must wait for (queue those first)."""

    body: str
    version: int
    distributions: list[OutboxEntry]


class GroupSending:
    """The outgoing half of one device's group messaging."""

    def __init__(
        self, sealer: Sealer, sending: Sending, keys: SenderKeys, ticks: GroupTicks
    ) -> None:
        self.sealer = sealer
        self.sending = sending
        self.keys = keys
        self.ticks = ticks
        self.store = sealer.store
        self.account = sealer.account

    async def prepare(
        self, group: Group, content: str | Content
    ) -> tuple[Message, list[OutboxEntry], list[Event]]:
        """Encrypt once with our sender key for the group (a fresh one if the group
        moved on), store message and outbox entries. Returns the message and the
        entries to queue in order: the sender-key messages first, then the message."""
        if isinstance(content, str):
            content = Text(content)
        if not group.active or not group.is_member(self.account.user_id):
            raise NotAGroupMember(f"you are not a member of {group.display_name}")
        plaintext = payload.encode(content)
        if len(plaintext) > MAX_GROUP_PLAINTEXT_LEN:
            raise MessageTooLarge(f"a group message holds at most {MAX_GROUP_PLAINTEXT_LEN} bytes")
        async with self.sealer.lock(group.conversation):
            events = await self._sessions_for_key(group)
            now = self.sealer.clock()
            with self.store.transaction():
                own, distributions = self._distribute(group, now)
                entry = OutboxEntry(
                    client_id=new_client_id(),
                    to=group.conversation,
                    body=b64(own.key.encrypt(plaintext)),
                    version=group.version,
                    after=tuple(d.client_id for d in distributions),
                    ttl=ttl_of(content),
                )
                check_entry_size(entry)
                self.store.sender_keys.save_own(group.group_id, own, now)
                message = self.sending.add_outgoing(group.conversation, entry, content, now)
                assert message is not None  # a fresh random client id
                events += actions.on_stored(
                    self.store,
                    self.account.user_id,
                    message,
                    now=now,
                    admins=partial(signed_admin, self.store),
                )
                if content.kind not in actions.ACTIONS_NOT_SHOWN:
                    self.ticks.start(message, group)
                self.store.outbox.add(entry, plaintext, now)
        return message, [*distributions, entry], events

    async def regroup(
        self, entry: OutboxEntry, group: Group
    ) -> tuple[GroupResend | None, list[Event]]:
        """The server found `entry` encrypted for an old version of `group` (given here
        as just read from the service): rotate our sender key, send it to the members
        now in the group, re-encrypt. None: give up (not a member, or tried enough)."""
        attempts = self.sending.attempt(entry.client_id)
        plaintext = self.store.outbox.plaintext(entry.client_id)
        me = self.account.user_id
        if attempts > MAX_DEVICE_REPAIRS or plaintext is None or not group.is_member(me):
            log.warning("giving up on group message %s after %d tries", entry.client_id, attempts)
            return None, []
        async with self.sealer.lock(group.conversation):
            events = await self._sessions_for_key(group)
            now = self.sealer.clock()
            with self.store.transaction():
                own, distributions = self._distribute(group, now)
                body = b64(own.key.encrypt(plaintext))
                after = tuple(d.client_id for d in distributions)
                check_entry_size(replace(entry, body=body, version=group.version, after=after))
                self.store.sender_keys.save_own(group.group_id, own, now)
                self.store.outbox.update_group(entry.client_id, body, group.version, after)
                message = self.store.messages.get(me, entry.client_id)
                if message is not None:
                    self.ticks.start(message, group)  # it now goes to these members
        return GroupResend(body, group.version, distributions), events

    def needs_new_key(self, group: Group) -> bool:
        """Whether the next message to the group makes or hands out a sender key
        (first message, membership moved, or a member still lacks it)."""
        own = self.store.sender_keys.own(group.group_id)
        if own is None or own.version != group.version:
            return True
        return bool(self._need_key(group, own))

    def _need_key(self, group: Group, own: OwnSenderKey) -> list[str]:
        """Who must be given our sender key: members who lack it, and this account
        itself (its other devices) when it has others."""
        return self.keys.needs_key(group, own, with_self=bool(self.sealer.own_devices))

    async def _sessions_for_key(self, group: Group) -> list[Event]:
        """Pairwise sessions with every member our sender key must go to (X3DH with
        those we never wrote to). A member with no usable device is left out."""
        own = self.keys.sender_key(group)
        events: list[Event] = []
        for member in self._need_key(group, own):
            if member == self.account.user_id:
                contact = self.sealer.me()
            else:
                contact = self.store.contacts.get(member) or Contact(member, None, None)
            try:
                events += await self.sealer.ensure_sessions(contact)
            except ContactNotFound as exc:
                log.warning("group %s: cannot give %s our key: %s", group.group_id, member, exc)
        return events

    def _distribute(self, group: Group, now: float) -> tuple[OwnSenderKey, list[OutboxEntry]]:
        """Our sender key for the group and the pairwise messages that give it to each
        member who lacks it (sessions advanced, entries in the outbox). Call inside a
        transaction, with the members' sessions started."""
        own = self.keys.sender_key(group)
        need = self._need_key(group, own)
        if not need:
            return own, []
        plaintext = self.keys.distribution(group, own)
        entries: list[OutboxEntry] = []
        for member in need:
            sealed = self.sealer.seal_existing(member, plaintext)
            if sealed is None:
                continue  # no usable device (warned when sessions were started)
            entry = OutboxEntry(client_id=new_client_id(), to=member, payloads=sealed.payloads)
            self.sealer.commit(sealed, entry, plaintext, now)
            entries.append(entry)
        return self.keys.with_distributed(own, [e.to for e in entries]), entries
