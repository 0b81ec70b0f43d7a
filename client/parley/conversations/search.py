"""The search and star calls of `parley.Client`: find messages in the local history
by their text, and star the ones to find again.

Both stay on this device. A search opens the sealed texts newest first and keeps
no index (`parley.store.search` says why); a star is a local bookmark, not synced
to the account's other devices (`parley.store.stars`).
"""

from __future__ import annotations

from collections.abc import Callable

from parley.errors import ParleyClientError
from parley.facade import ProfileFacade
from parley.models import Contact, Group, Message
from parley.store.search import DEFAULT_LIMIT

__all__ = ["SearchCalls", "StarRefused"]


class StarRefused(ParleyClientError):
    """This message cannot be starred: a reaction, edit or delete, or deleted for everyone."""


class SearchCalls(ProfileFacade):
    """Search and stars, for a facade over a profile's store."""

    _clock: Callable[[], float]

    def search(
        self,
        text: str,
        *,
        conversation: str | Contact | Group | None = None,
        limit: int = DEFAULT_LIMIT,
        scan: int | None = None,
    ) -> list[Message]:
        """Messages whose text has every word of `text` as a word or the start of one
        (case, width and diacritics ignored: "cafe" finds "Café"), newest first: at
        most `limit`, in `conversation` or in all, looking at the `scan` most recent
        messages at most (None: all of them). A text, a file's name and caption, a
        place's or a card's name are what match; a message edited, by its new text;
        never one deleted for everyone or gone. ValueError: `text` is blank."""
        peer = None if conversation is None else _key(self.conversation(conversation))
        return self.store.search.find(
            text, peer=peer, limit=limit, scan=scan, now_ms=self._now_ms()
        )

    def star(self, message: Message | int) -> Message:
        """Star a message on this device (again: no change); the message, starred.
        `StarRefused` for a reaction, edit or delete, or a message deleted for everyone."""
        message_id = self.message(_id(message)).id
        refused = self.store.stars.add(message_id, self._clock())
        if refused is not None:
            raise StarRefused(refused)
        return self.message(message_id)

    def unstar(self, message: Message | int) -> Message:
        """Take its star away (none: no change); the message, not starred."""
        message_id = self.message(_id(message)).id
        self.store.stars.remove(message_id)
        return self.message(message_id)

    def starred(self, conversation: str | Contact | Group | None = None) -> list[Message]:
        """The messages starred on this device, in `conversation` or in all, newest first."""
        peer = None if conversation is None else _key(self.conversation(conversation))
        return self.store.stars.listed(peer, now_ms=self._now_ms())

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _id(message: Message | int) -> int:
    return message if isinstance(message, int) else message.id


def _key(conversation: Contact | Group) -> str:
    return conversation.conversation if isinstance(conversation, Group) else conversation.user_id
