"""Group membership use cases: create, read, add and remove members, leave, and
admins, through the service's group API; each answer is kept in the store and
shown as a `GroupUpdated` event.

Every change is signed by this device (`chain.sign_change`) and every group read
from the service is checked against its signed chain of changes
(`chain.apply`): a member no valid signed change of an admin vouches for is
*unverified*, gets none of our sender keys, and is shown as a
`GroupMembersUnverified` warning. A change the service refuses as stale
(`group_changed`: someone else's change came first) is read again and signed
anew.

The service takes at most MAX_IDS_PER_GROUP_CHANGE ids per change: larger
changes go in chunks. Removing members lets their silence stop holding back
the ticks of our recent messages (`receipts.GroupTicks.members_gone`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from parley.api import MAX_IDS_PER_GROUP_CHANGE, ApiClient
from parley.conversations.sealing import Sealer
from parley.devices.lists import verify_list
from parley.errors import ApiError, ContactNotFound, DeviceListError, NotFound, ParleyClientError
from parley.groups import chain
from parley.groups.chain import ChainError, ChainState, Entry, Kind
from parley.groups.errors import NotAGroupMember
from parley.groups.receipts import GroupTicks
from parley.ids import group_id_of, is_group_id, is_user_id
from parley.models import Account, Contact, Event, Group, GroupMembersUnverified, GroupUpdated
from parley.store import Store

__all__ = ["Membership"]

log = logging.getLogger("parley.groups")

# A change that lost a race to another member's is read again and re-signed this often.
CHANGE_TRIES = 4
# Pages of a group's chain read at once (100 changes each): a service that says
# "more" forever is not followed further.
MAX_CHAIN_PAGES = 1000


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
        sealer: Callable[[], Sealer],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._api = api
        self._emit = emit
        self._ticks = ticks
        self._has_service = has_service
        self._sealer = sealer
        self._clock = clock
        self.refreshing: dict[str, asyncio.Task[None]] = {}
        self._relearned: set[str] = set()  # authors whose device list was fetched again

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
        """The id of a group by name or id (an id not seen here yet is taken as is)."""
        if isinstance(group, Group):
            return group.group_id
        return group if is_group_id(group) else self.group(group).group_id

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
        name = name.strip()
        if not name:
            raise ValueError("a group needs a name")
        me = self.account.user_id
        ids = sorted({self.member_id(m) for m in members} - {me})
        first, rest = ids[:MAX_IDS_PER_GROUP_CHANGE], ids[MAX_IDS_PER_GROUP_CHANGE:]
        group_id = uuid.uuid4().hex
        change = self._sign(group_id, "create", 1, b"", members=first, name=name)
        group = await self._api().create_group(change)
        if group.group_id != group_id:
            raise ApiError(200, "bad_answer", "the service made another group than asked")
        group = await self._follow(group, None, chain.parse_entry(change))
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
        state = self._chain(group.group_id)
        if state is None or state.seq != group.head:
            # not checked against its signed changes as it is stored (a group from a
            # history transfer, or kept before they existed): nobody is verified yet
            return self._checked(group, None)
        return group

    async def refresh(self, group: str | Group) -> Group:
        """Read the group and its new signed changes from the service. If this account
        is no longer in it, it is kept as inactive (history stays) and its sender keys
        are deleted."""
        group_id = self.group_id(group)
        state = self._chain(group_id)
        entries: list[Entry] = []
        after = state.seq if state else 0
        malformed = False
        try:
            for _ in range(MAX_CHAIN_PAGES):
                fresh, page, more = await self._api().group_changes(group_id, after)
                try:
                    entries += [chain.parse_entry(item) for item in page]
                except ChainError as exc:
                    log.warning("group %s: a malformed change: %s", group_id, exc)
                    malformed = True  # nothing of this read is trusted
                    break
                if not more or not page:
                    break
                after = entries[-1].seq
        except NotFound:
            return self.left(group_id)
        if not fresh.is_member(self.account.user_id):
            return self.left(group_id)
        if malformed:
            return self.keep(self._checked(fresh, None))
        return await self._verify(fresh, state, entries)

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
        ids = sorted({self.member_id(m) for m in members} - {self.account.user_id})
        if not ids:
            raise ValueError("name at least one member to add")
        current: Group | None = None
        for start in range(0, len(ids), MAX_IDS_PER_GROUP_CHANGE):
            chunk = ids[start : start + MAX_IDS_PER_GROUP_CHANGE]
            current = await self._change(group_id, "add", chunk)
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
        for user_id in dict.fromkeys(ids):
            answer = await self._change(group_id, "remove", [user_id])
            if answer is not None:
                current = answer
        return current

    async def leave(self, group: str | Group) -> Group:
        """Leave the group: it stays in the history, inactive, without its keys."""
        group_id = self.group_id(group)
        with contextlib.suppress(NotFound, NotAGroupMember):  # already out of it
            await self._change(group_id, "leave")
        return self.left(group_id)

    async def promote(self, group: str | Group, member: str | Contact) -> Group:
        """Make a member an admin (admins only)."""
        group_id, user_id = self.group_id(group), self.member_id(member)
        return self._kept(await self._change(group_id, "promote", [user_id]), group_id)

    async def dismiss_admin(self, group: str | Group, member: str | Contact) -> Group:
        """An admin becomes a plain member again (admins only; never the last admin)."""
        group_id, user_id = self.group_id(group), self.member_id(member)
        return self._kept(await self._change(group_id, "dismiss", [user_id]), group_id)

    async def vouch(
        self, group: str | Group, members: Sequence[str], admins: Sequence[str]
    ) -> Group:
        """Sign the group's membership (admins only): `members` and `admins` are the
        user ids the user checked; if the service lists anyone else, or not one of
        them, or other admins, nothing is signed (ParleyClientError). Every member
        listed becomes verified on every device that trusts this account as an admin,
        and every admin listed a trusted admin: vouching for someone you do not know
        lets them read along."""
        group_id = self.group_id(group)
        approved = (frozenset(members), frozenset(admins))
        answer = await self._change(group_id, "vouch", approved=approved)
        return self._kept(answer, group_id)

    def _kept(self, group: Group | None, group_id: str) -> Group:
        if group is None:  # the service ended the group under us
            raise NotAGroupMember(f"you are not a member of group {group_id}")
        return group

    # --- signed changes --------------------------------------------------------------------

    def _sign(
        self,
        group_id: str,
        kind: Kind,
        seq: int,
        prev: bytes,
        *,
        members: Sequence[str] = (),
        admins: Sequence[str] = (),
        name: str = "",
    ) -> dict[str, str]:
        account = self.account
        return chain.sign_change(
            self._sealer().identity,
            group_id=group_id,
            seq=seq,
            prev=prev,
            at=int(self._clock() * 1000),
            author=account.user_id,
            device=account.device_id,
            kind=kind,
            name=name,
            members=members,
            admins=admins,
        )

    async def _change(
        self,
        group_id: str,
        kind: Kind,
        members: Sequence[str] = (),
        *,
        approved: tuple[frozenset[str], frozenset[str]] | None = None,
    ) -> Group | None:
        """Sign `kind` on top of the chain as last verified here and send it; on a
        `group_changed` refusal read the group again and sign anew. A vouch signs the
        members as the service lists them, only if they are the `approved` ones.
        None when this account left or the group ended."""
        group = self.store.groups.get(group_id)
        if group is None or group.version == 0 or not group.active:
            group = await self.refresh(group_id)
        for attempt in range(CHANGE_TRIES):
            if not group.active:
                raise NotAGroupMember(f"you are not a member of group {group_id}")
            state = self._chain(group_id)
            if state is not None and state.seq == group.head:
                seq, prev = state.seq + 1, state.head
            elif state is None and group.head == 0:
                # a group from before signed changes: only a vouch starts its chain
                seq, prev = group.rev + 1, b""
            elif kind == "leave":
                # leaving needs no agreement on the chain: sign it where the service
                # says the chain is (it can only take this account out)
                seq, prev = await self._served_head(group)
            else:
                raise ChainError(
                    f"group {group_id}'s signed changes do not follow on from what this"
                    " device verified: it cannot change the group"
                )
            if kind == "vouch":
                if (
                    approved is None
                    or (frozenset(group.members), frozenset(group.admins)) != approved
                ):
                    raise ParleyClientError(
                        f"the members or admins of {group.display_name} are not the ones you"
                        " checked: look at them again"
                    )
                members = group.members
            admins = [m for m in group.members if m in group.admins] if kind == "vouch" else ()
            signed = self._sign(group_id, kind, seq, prev, members=members, admins=admins)
            try:
                answer = await self._api().change_group(group_id, signed)
            except ApiError as exc:
                if exc.code != "group_changed" or attempt == CHANGE_TRIES - 1:
                    raise
                group = await self.refresh(group_id)
                continue
            if answer is None:
                return None
            return await self._follow(answer, state, chain.parse_entry(signed))
        raise AssertionError("unreachable")

    async def _served_head(self, group: Group) -> tuple[int, bytes]:
        """Where the service says the chain of `group` is: the seq a change made now
        takes, and the hash of the last change it serves (b"" if none), from its bytes
        as served: a leave needs only to follow on from it, whatever this device makes
        of the chain."""
        fresh, page, _ = await self._api().group_changes(group.group_id, max(0, group.head - 1))
        if fresh.head == 0:
            return fresh.rev + 1, b""
        last = page[0] if page and isinstance(page[0], dict) else {}
        body = last.get("body")
        if last.get("seq") != fresh.head or not isinstance(body, str):
            raise ChainError(f"the service does not serve change {fresh.head} of its chain")
        try:
            return fresh.rev + 1, chain.change_hash(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ChainError("the service serves its head change garbled") from exc

    async def _follow(self, answer: Group, state: ChainState | None, own: Entry) -> Group:
        """Keep the service's answer to our change: our own entry extends the chain we
        verified (or starts it, if none was) when it is the head now; if others'
        changes came after it, read them."""
        if answer.head == own.seq and (state is None) == (not own.prev):
            try:
                folded = chain.apply(state, own, signed=True, group_id=answer.group_id)
            except ChainError:
                return await self.refresh(answer.group_id)
            self.store.groups.save_chain(
                answer.group_id, folded.seq, folded.head, folded.to_json(), self._clock()
            )
            return self.keep(self._checked(answer, folded))
        if state is not None and answer.head == state.seq:
            return self.keep(self._checked(answer, state))  # a change that changed nothing
        if state is None and answer.head == 0:
            return self.keep(self._checked(answer, None))  # a group from before chains
        return await self.refresh(answer.group_id)

    def _chain(self, group_id: str) -> ChainState | None:
        stored = self.store.groups.chain(group_id)
        if stored is None:
            return None
        seq, head, seats = stored
        return ChainState.from_json(group_id, seq, head, seats)

    async def _verify(self, fresh: Group, state: ChainState | None, entries: list[Entry]) -> Group:
        """Fold the new entries into the chain verified so far and keep the group with
        the members no signed change vouches for marked. A chain that does not follow
        on, or does not reach the head the service names, leaves every member
        unverified (and what was verified before is kept, to continue from)."""
        group_id = fresh.group_id
        folded = state
        try:
            for entry in entries:
                signed = await self._signed(entry)
                folded = chain.apply(folded, entry, signed=signed, group_id=group_id)
        except ChainError as exc:
            log.warning("group %s: its signed changes are refused: %s", group_id, exc)
            return self.keep(self._checked(fresh, None))
        if folded is not None and folded is not state:
            self.store.groups.save_chain(
                group_id, folded.seq, folded.head, folded.to_json(), self._clock()
            )
        if folded is None or folded.seq != fresh.head:
            if fresh.head or state is not None:
                log.warning(
                    "group %s: the service's chain ends at %s, but it says its head is %d",
                    group_id,
                    folded.seq if folded else "nothing",
                    fresh.head,
                )
            return self.keep(self._checked(fresh, None))
        return self.keep(self._checked(fresh, folded))

    def _checked(self, group: Group, state: ChainState | None) -> Group:
        me = self.account.user_id
        others = [m for m in group.members if m != me]
        unverified = others if state is None else state.unverified(others)
        return replace(group, unverified=tuple(unverified))

    async def _signed(self, entry: Entry) -> bool:
        """Whether the entry carries a valid signature of a device its author's
        account lists, under the account identity pinned here for the author (or, if
        none is pinned yet, the one its certificate names)."""
        if not entry.signature or not entry.device or entry.certificate is None:
            return False
        sealer = self._sealer()
        account = self.account
        if entry.author == account.user_id and entry.device == account.device_id:
            return chain.signature_valid(entry, sealer.identity.public_key)
        try:
            listed = verify_list(entry.certificate, user_id=entry.author)
        except DeviceListError as exc:
            log.warning("group change %d: bad certificate: %s", entry.seq, exc)
            return False
        key = listed.identity_of(entry.device)
        if key is None or not chain.signature_valid(entry, key):
            log.warning("group change %d by %s: bad signature", entry.seq, entry.author)
            return False
        if self._pinned(entry.author) in (None, listed.account_identity):
            return True
        # our pin differs: the author may have moved to a new phone since we looked
        if entry.author not in self._relearned and entry.author != account.user_id:
            self._relearned.add(entry.author)
            contact = self.store.contacts.get(entry.author) or Contact(entry.author, None, None)
            try:
                for event in await sealer.refresh_list(contact):
                    self._emit(event)
            except ParleyClientError as exc:
                log.warning("could not check the device list of %s: %s", entry.author, exc)
        if self._pinned(entry.author) == listed.account_identity:
            return True
        log.warning(
            "group change %d: %s signed it under another account identity than pinned",
            entry.seq,
            entry.author,
        )
        return False

    def _pinned(self, user_id: str) -> bytes | None:
        sealer = self._sealer()
        if user_id == self.account.user_id:
            return sealer.pinned_own_identity()
        listed = sealer.verified_list(user_id)
        return None if listed is None else listed.account_identity

    # --- keeping what the service says ---------------------------------------------------

    def keep(self, group: Group) -> Group:
        """Store the group as the service showed it; show what changed."""
        previous = self.store.groups.save(group, self._clock())
        seen = _visible(previous) if previous is not None else None
        if seen != _visible(group):
            update = GroupUpdated(group, previous if previous and previous.version else None)
            self._emit(update)
            if update.removed:
                with self.store.transaction():
                    for event in self._ticks().members_gone(group, update.removed):
                        self._emit(event)
        before = set(previous.unverified) if previous is not None else set()
        if set(group.unverified) - before:
            self._emit(GroupMembersUnverified(group, group.unverified))
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


def _visible(group: Group) -> tuple[Any, ...]:
    """What a `GroupUpdated` shows: not the service's change counters."""
    return (
        group.name,
        group.version,
        group.members,
        group.admins,
        group.created_by,
        group.created_at,
        group.active,
    )
