"""Group membership use cases: create, read, add and remove members, leave, and
admins, through the service's group API; each answer is kept in the store and
shown as a `GroupUpdated` event.

The service takes at most MAX_IDS_PER_GROUP_CHANGE ids per change: larger
changes go in chunks. Removing members lets their silence stop holding back
the ticks of our recent messages (`receipts.GroupTicks.members_gone`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from parley.api import MAX_IDS_PER_GROUP_CHANGE, ApiClient
from parley.errors import ContactNotFound, NotFound, ParleyClientError
from parley.groups.errors import NotAGroupMember
from parley.groups.receipts import GroupTicks
from parley.ids import group_id_of, is_user_id
from parley.models import Account, Contact, Event, Group, GroupUpdated
from parley.store import Store

__all__ = ["Membership"]

log = logging.getLogger("parley.groups")


class Membership:
    """This account's groups as the service has them, kept in the store."""

    def __init__(
        self,
        store: Store,
        api: Callable[[], ApiClient],
        emit: Callable[[Event], None],
        *,
        ticks: Callable[[], GroupTicks],
        has_service: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._api = api
        self._emit = emit
        self._ticks = ticks
        self._has_service = has_service
        self._clock = clock
        self.refreshing: dict[str, asyncio.Task[None]] = {}

    @property
    def account(self) -> Account:
        return self.store.accounts.require()

    # --- finding -------------------------------------------------------------------------

    def group(self, key: str | Group) -> Group:
        """A group by name (case-insensitive) or id, as last seen (ContactNotFound if
        none; ParleyClientError if several active groups have that name)."""
        if isinstance(key, Group):
            key = key.group_id
        key = group_id_of(key) or key
        found = self.store.groups.find(key)
        if not found:
            raise ContactNotFound(f"no group {key!r}")
        exact = [g for g in found if g.group_id == key]
        if exact:
            return exact[0]
        active = [g for g in found if g.active]
        if len(active) > 1:
            ids = ", ".join(g.group_id for g in active)
            raise ParleyClientError(f"several groups are called {key!r}: use its id ({ids})")
        return found[0]

    def group_id(self, group: str | Group) -> str:
        return group.group_id if isinstance(group, Group) else self.group(group).group_id

    def member_id(self, member: str | Contact) -> str:
        """A contact (by name, phone or user id) or a bare user id."""
        if isinstance(member, Contact):
            return member.user_id
        found = self.store.contacts.find(member)
        if found is not None:
            return found.user_id
        if is_user_id(member):
            return member
        raise ContactNotFound(f"no contact {member!r}: add one with add_contact(phone, name)")

    # --- use cases -----------------------------------------------------------------------

    async def create(self, name: str, members: Sequence[str | Contact] = ()) -> Group:
        """A new group with these contacts; this account is its first admin."""
        ids = [self.member_id(m) for m in members]
        first, rest = ids[:MAX_IDS_PER_GROUP_CHANGE], ids[MAX_IDS_PER_GROUP_CHANGE:]
        group = self.keep(await self._api().create_group(name, first))
        return await self.add(group, rest) if rest else group

    async def for_sending(self, group: Group, needs_new_key: Callable[[Group], bool]) -> Group:
        """The group to encrypt a message for: read from the service if known only by
        its id, or if a new sender key is about to go out (to the members as they are
        now, if the service can tell)."""
        if group.version == 0:
            return await self.refresh(group)  # known only by its id so far
        if self._has_service() and needs_new_key(group):
            try:
                return await self.refresh(group)
            except ParleyClientError as exc:
                log.info("sending to %s as last seen: %s", group.group_id, exc)
        return group

    async def refresh(self, group: str | Group) -> Group:
        """Read the group from the service. If this account is no longer in it, it is
        kept as inactive (history stays) and its sender keys are deleted."""
        group_id = self.group_id(group)
        try:
            fresh = await self._api().group(group_id)
        except NotFound:
            return self.left(group_id)
        if not fresh.is_member(self.account.user_id):
            return self.left(group_id)
        return self.keep(fresh)

    async def refresh_all(self) -> list[Group]:
        """Bring every group up to date with the service; the groups this account is in."""
        listed = await self._api().groups()
        for summary in listed:
            known = self.store.groups.get(summary.group_id)
            if known is None or known.version != summary.version or not known.active:
                await self.refresh(summary.group_id)
        seen = {s.group_id for s in listed}
        for group in self.store.groups.all():
            if group.group_id not in seen:
                # the list can lag behind a change; the group itself is always current
                await self.refresh(group)
        return self.store.groups.all()

    async def add(self, group: str | Group, members: Sequence[str | Contact]) -> Group:
        """Add contacts to the group (admins only; `parley.ApiError` "not_admin" else)."""
        group_id = self.group_id(group)
        ids = [self.member_id(m) for m in members]
        if not ids:
            raise ValueError("name at least one member to add")
        current: Group | None = None
        for start in range(0, len(ids), MAX_IDS_PER_GROUP_CHANGE):
            chunk = ids[start : start + MAX_IDS_PER_GROUP_CHANGE]
            current = self.keep(await self._api().add_group_members(group_id, chunk))
        assert current is not None
        return current

    async def remove(self, group: str | Group, members: Sequence[str | Contact]) -> Group:
        """Remove members from the group (admins only)."""
        group_id = self.group_id(group)
        ids = [self.member_id(m) for m in members]
        if self.account.user_id in ids:
            raise ValueError("to leave a group use leave()")
        if not ids:
            raise ValueError("name at least one member to remove")
        current = self.group(group_id)
        for user_id in ids:
            answer = await self._api().remove_group_member(group_id, user_id)
            if answer is not None:
                current = self.keep(answer)
        return current

    async def leave(self, group: str | Group) -> Group:
        """Leave the group: it stays in the history, inactive, without its keys."""
        group_id = self.group_id(group)
        with contextlib.suppress(NotFound):  # already out of it
            await self._api().remove_group_member(group_id, self.account.user_id)
        return self.left(group_id)

    async def promote(self, group: str | Group, member: str | Contact) -> Group:
        """Make a member an admin (admins only)."""
        group_id, user_id = self.group_id(group), self.member_id(member)
        return self.keep(await self._api().promote_admin(group_id, user_id))

    async def dismiss_admin(self, group: str | Group, member: str | Contact) -> Group:
        """An admin becomes a plain member again (admins only; never the last admin)."""
        group_id, user_id = self.group_id(group), self.member_id(member)
        return self.keep(await self._api().dismiss_admin(group_id, user_id))

    # --- keeping what the service says ---------------------------------------------------

    def keep(self, group: Group) -> Group:
        """Store the group as the service showed it; show what changed."""
        previous = self.store.groups.save(group, self._clock())
        if previous != group:
            update = GroupUpdated(group, previous if previous and previous.version else None)
            self._emit(update)
            if update.removed:
                with self.store.transaction():
                    for event in self._ticks().members_gone(group, update.removed):
                        self._emit(event)
        return group

    def left(self, group_id: str) -> Group:
        """This account is out of the group: kept inactive, without its keys."""
        previous = self.store.groups.get(group_id)
        self.store.groups.leave(group_id)
        now = self.store.groups.get(group_id)
        if now is None:  # never seen: nothing to keep
            raise NotAGroupMember(f"you are not a member of group {group_id}")
        if previous != now and now.version:
            self._emit(GroupUpdated(now, previous))
        return now

    # --- in the background ---------------------------------------------------------------

    def refresh_soon(self, group_ids: Iterable[str]) -> None:
        """Read these groups from the service in the background (once at a time each)."""
        if not self._has_service():
            return
        for group_id in group_ids:
            if group_id in self.refreshing:
                continue
            task = asyncio.create_task(self._refresh_quietly(group_id))
            self.refreshing[group_id] = task

    async def _refresh_quietly(self, group_id: str) -> None:
        try:
            await self.refresh(group_id)
        except ParleyClientError as exc:
            log.warning("could not read group %s from the service: %s", group_id, exc)
        finally:
            self.refreshing.pop(group_id, None)

    async def wait_read(self) -> None:
        """Until the groups being read in the background are read."""
        while self.refreshing:
            await asyncio.gather(*self.refreshing.values(), return_exceptions=True)

    async def catch_up(self, group_id: str, tries: int) -> Group | None:
        """Read a group again after the service said a send to it was stale (a few
        tries); None if it cannot be read or this account is not in it."""
        for attempt in range(tries):
            try:
                return await self.refresh(group_id)
            except NotAGroupMember:
                return None
            except ParleyClientError as exc:
                log.warning("could not read group %s (try %d): %s", group_id, attempt + 1, exc)
                await asyncio.sleep(0.2 * 2**attempt)
        return None
