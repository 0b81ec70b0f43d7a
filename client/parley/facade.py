"""What the call mixins of `parley.Client` stand on: the profile's store and
account, its messages and conversations, and sending. `Client` provides each;
a mixin that needs them inherits this instead of declaring them again."""

from __future__ import annotations

from parley.content import Content
from parley.models import Account, Contact, Event, Group, Message
from parley.store import Store

__all__ = ["ProfileFacade"]


class ProfileFacade:
    """The members `parley.Client` gives its call mixins."""

    @property
    def store(self) -> Store:
        raise NotImplementedError

    @property
    def account(self) -> Account:
        raise NotImplementedError

    def message(self, message_id: int) -> Message:
        raise NotImplementedError

    def conversation(self, key: str | Contact | Group) -> Contact | Group:
        raise NotImplementedError

    async def send_content(self, to: str | Contact | Group, content: str | Content) -> Message:
        raise NotImplementedError

    def _emit(self, event: Event) -> None:
        raise NotImplementedError
