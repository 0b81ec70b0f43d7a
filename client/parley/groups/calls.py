"""The group calls of `parley.Client`: this account's groups by name or id, and
the membership use cases (`Membership`) behind them."""

from __future__ import annotations

from collections.abc import Sequence

from parley.groups.membership import Membership
from parley.models import Contact, Group

__all__ = ["GroupCalls"]


class GroupCalls:
    """Groups and their membership, for a facade that has a `Membership`."""

    @property
    def _groups(self) -> Membership:
        raise NotImplementedError

    def groups(self) -> list[Group]:
        """The groups this account is in, as last seen (see `refresh_groups`)."""
        return self._groups.store.groups.all()

    def group(self, key: str | Group) -> Group:
        """A group by name (case-insensitive) or id, as last seen (ContactNotFound if
        none; ParleyClientError if several active groups have that name)."""
        return self._groups.group(key)

    async def create_group(self, name: str, members: Sequence[str | Contact] = ()) -> Group:
        """A new group with these contacts; this account is its first admin."""
        return await self._groups.create(name, members)

    async def refresh_group(self, group: str | Group) -> Group:
        """Read the group from the service. If this account is no longer in it, it is
        kept as inactive (history stays) and its sender keys are deleted."""
        return await self._groups.refresh(group)

    async def refresh_groups(self) -> list[Group]:
        """Bring every group up to date with the service; the groups this account is in."""
        return await self._groups.refresh_all()

    async def add_members(self, group: str | Group, members: Sequence[str | Contact]) -> Group:
        """Add contacts to the group (admins only; `parley.ApiError` "not_admin" else)."""
        return await self._groups.add(group, members)

    async def remove_members(self, group: str | Group, members: Sequence[str | Contact]) -> Group:
        """Remove members from the group (admins only). Our next message to it goes
        with a fresh sender key that they never get."""
        return await self._groups.remove(group, members)

    async def vouch_group(
        self,
        group: str | Group,
        members: Sequence[str | Contact],
        admins: Sequence[str | Contact],
    ) -> Group:
        """Sign the group's membership (admins only): `members` and `admins` are the
        ones you checked (contacts or user ids; yourself included or not). If the
        service lists anyone else, or not one of them, or other admins, nothing is
        signed (`ParleyClientError`). Members no admin's signed change let in
        (`Group.unverified`, `GroupMembersUnverified`) are then trusted by every
        member's device, and the admins listed as admins."""
        me = self._groups.account.user_id
        ids = {self._groups.member_id(m) for m in members} | {me}
        admin_ids = {self._groups.member_id(m) for m in admins}
        if self._groups.group(group).is_admin(me):
            admin_ids.add(me)
        return await self._groups.vouch(group, sorted(ids), sorted(admin_ids))

    async def leave(self, group: str | Group) -> Group:
        """Leave the group: it stays in the history, inactive, without its keys."""
        return await self._groups.leave(group)

    async def promote(self, group: str | Group, member: str | Contact) -> Group:
        """Make a member an admin (admins only)."""
        return await self._groups.promote(group, member)

    async def dismiss_admin(self, group: str | Group, member: str | Contact) -> Group:
        """An admin becomes a plain member again (admins only; never the last admin)."""
        return await self._groups.dismiss_admin(group, member)

    def member_name(self, user_id: str) -> str:
        """How to show a group member: "you", the contact's name, or a short id."""
        store = self._groups.store
        if user_id == store.accounts.require().user_id:
            return "you"
        contact = store.contacts.get(user_id)
        return contact.display_name if contact else f"user {user_id[:8]}"
