"""The message calls of `parley.Client` beyond sending: reply, react, edit, delete
(for everyone or only here), forward, and the disappearing timer of a conversation.

Each is a message inside the end-to-end encryption (parley.content.context and
parley.content.actions), sent to the conversation its target is in, and
applied here at once as every other device of the conversation applies it
(parley.conversations.actions). The client refuses what the receiving devices
would drop: an edit or delete past its window, someone else's message, a
reaction that is not one emoji.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from parley.content import (
    Attachment,
    ContactCard,
    Context,
    Delete,
    Edit,
    Location,
    Quote,
    Reaction,
    Shown,
    Text,
    TimerChange,
    excerpt_of,
    with_context,
)
from parley.conversations import actions
from parley.errors import ParleyClientError
from parley.facade import ProfileFacade
from parley.ids import group_id_of
from parley.models import Contact, Group, Message

__all__ = ["MAX_FORWARD_CHATS", "MEDIA_REUSE_S", "ActionRefused", "MessageCalls"]

# At most this many chats per forward, as WhatsApp limits the spread of a message.
MAX_FORWARD_CHATS = 5
# A forwarded file points at the same object in media storage while it is this young:
# the service keeps an object 30 days after its upload, and a week is left for the
# recipients to fetch it. An older one is uploaded again (downloaded first if need be).
MEDIA_REUSE_S = 23 * 24 * 3600


class ActionRefused(ParleyClientError):
    """The rules do not allow this edit, delete or timer change (the reason says why)."""


class MessageCalls(ProfileFacade):
    """Replies, reactions, edits, deletes and timers, for a facade that sends."""

    async def download(self, message: Message | int) -> Path:
        raise NotImplementedError

    async def _upload_again(self, attachment: Attachment, path: Path) -> Attachment:
        raise NotImplementedError

    async def _delete_media(self, media_id: str) -> None:
        raise NotImplementedError

    def _signed_admin(self, group_id: str, user_id: str) -> bool:
        """Whether the group's verified signed chain makes `user_id` a trusted admin."""
        raise NotImplementedError

    def _target(self, message: Message | int) -> Message:
        return self.message(message if isinstance(message, int) else message.id)

    def _where(self, message: Message) -> Contact | Group:
        group_id = group_id_of(message.peer)
        return self.conversation(group_id if group_id is not None else message.peer)

    async def reply(self, message: Message | int, content: str | Shown) -> Message:
        """Send `content` (a text or any shown kind) to the conversation of `message`,
        quoting it: every device shows what it answers, even once it is gone."""
        target = self._target(message)
        if target.deleted is not None:
            raise ActionRefused("a deleted message cannot be replied to")
        shown = Text(content) if isinstance(content, str) else content
        ctx = getattr(shown, "ctx", None) or Context()
        quote = Quote(target.target, target.kind, excerpt_of(target.text))
        return await self.send_content(
            self._where(target), with_context(shown, Context(quote, ctx.forwarded, ctx.timer))
        )

    async def react(self, message: Message | int, emoji: str) -> Message:
        """React to a message with one emoji; another reaction replaces it and "" takes
        it back. `parley.content.ContentError` (a ValueError) if `emoji` is not one."""
        target = self._target(message)
        if target.deleted is not None:
            raise ActionRefused("a deleted message cannot be reacted to")
        return await self.send_content(self._where(target), Reaction(target.target, emoji))

    async def edit(self, message: Message | int, text: str) -> Message:
        """Change the text of a text message this account sent, for
        `actions.RULES.edit_window_s` (15 minutes) after it was sent; every device
        shows the new text, marked edited."""
        target = self._target(message)
        refused = actions.edit_refused(target, self.account.user_id, _now_ms())
        if refused:
            raise ActionRefused(refused)
        return await self.send_content(self._where(target), Edit(target.target, text))

    async def delete_for_everyone(self, message: Message | int) -> Message:
        """Delete a message on every device of the conversation: one's own for
        `actions.RULES.delete_window_s` (48 hours) after sending, or, for a group
        admin, anyone's in the group. Its content and files go everywhere, and a file
        this account uploaded is deleted from media storage (if the service is out
        of reach, it expires on the service's 30-day schedule)."""
        target = self._target(message)
        if target.deleted is not None:
            raise ActionRefused("the message was deleted already")
        by = actions.delete_refused_or_by(
            target, self.account.user_id, _now_ms(), self._signed_admin
        )
        if by not in ("author", "admin"):
            raise ActionRefused(by)
        attachment = target.attachment
        sent = await self.send_content(self._where(target), Delete(target.target))
        me = self.account.user_id
        if (
            attachment is not None
            and target.sender == me
            and not self.store.messages.shares_file(me, attachment.media_id, target.id)
        ):
            # the object was ours and no other message of ours points to it: it goes too
            await self._delete_media(attachment.media_id)
        return sent

    def delete_for_me(self, message: Message | int) -> None:
        """Delete a message (and its downloaded file) from this device only; one of
        ours not sent yet is not sent at all."""
        target = self._target(message)
        with self.store.transaction():
            if target.outgoing:
                self.store.outbox.remove(target.client_id)  # not sent yet: it never goes
            path = self.store.messages.erase(target.id)
        actions.remove_file(path)

    async def forward(
        self, message: Message | int, to: Sequence[str | Contact | Group]
    ) -> list[Message]:
        """Send a copy of a message (text, file, location, contact card) to up to
        MAX_FORWARD_CHATS chats, marked forwarded (and "forwarded many times" after
        FORWARDED_MANY hops: the count travels inside the encryption). A file is not
        uploaded again while its object is young enough (MEDIA_REUSE_S); the copies
        do not reply to anything and carry each chat's own disappearing timer."""
        target = self._target(message)
        chats = [self.conversation(key) for key in to]
        if not 1 <= len(chats) <= MAX_FORWARD_CHATS:
            raise ActionRefused(f"a message is forwarded to 1 to {MAX_FORWARD_CHATS} chats")
        content = target.content
        if target.kind in ("payment", "payment_status"):
            raise ActionRefused("a payment request or answer cannot be forwarded")
        if target.deleted is not None or not isinstance(content, SHOWN_KINDS):
            raise ActionRefused("only a message that is still there can be forwarded")
        hops = (content.ctx.forwarded if content.ctx is not None else 0) + 1
        if isinstance(content, Attachment) and _now_ms() - target.ts > MEDIA_REUSE_S * 1000:
            path = target.file if target.file is not None and target.file.exists() else None
            content = await self._upload_again(content, path or await self.download(target))
        copy = with_context(content, Context(forwarded=hops))
        return [await self.send_content(chat, copy) for chat in chats]

    def disappearing(self, conversation: str | Contact | Group) -> int:
        """The conversation's disappearing timer in seconds (0: off)."""
        return self.store.messages.timer_of(_key(self.conversation(conversation)))

    async def set_disappearing(self, conversation: str | Contact | Group, seconds: int) -> Message:
        """Set the disappearing timer of a chat (either person) or a group (admins
        only): off (0), 24 hours, 7 days or 90 days (`parley.content.TIMER_CHOICES`).
        Everyone in the conversation sees the change; messages sent from then on
        carry the timer and vanish from every device that long after being read
        (received) or sent, and the service keeps them no longer than that."""
        target = self.conversation(conversation)
        me = self.account.user_id
        if isinstance(target, Group) and not self._signed_admin(target.group_id, me):
            raise ActionRefused("only a group admin changes its disappearing timer")
        return await self.send_content(target, TimerChange(seconds))


# what may be forwarded: the kinds shown as messages of their own
SHOWN_KINDS = (Text, Location, ContactCard, Attachment)


def _key(conversation: Contact | Group) -> str:
    return conversation.conversation if isinstance(conversation, Group) else conversation.user_id


def _now_ms() -> int:
    return int(time.time() * 1000)
