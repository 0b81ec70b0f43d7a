"""Deleting an account for good (DELETE /v1/account).

Who may: a signed-in device of the account (its access token), with a fresh
code texted to the account's number for this purpose (`otp.DELETE_ACCOUNT`).
The code proves the caller holds the phone number now, not just a token that a
stolen laptop or a leaked log could carry (docs/API.md says why).

What goes, in this order, so that a failure at any point leaves an account that
the same device can finish deleting by asking again (without a new code):

1. the calling device is marked *deleting*: from here on the deletion has been
   authorised, and asking again with this device's token finishes it;
2. every other device is marked too: senders stop seeing the account (their
   sends get `unknown_user`) and its tokens are refused everywhere else;
3. the phone number is released, so it can sign up afresh as a new account;
4. open WebSocket connections are closed (as signing a device out does);
5. every group is left the way a member leaves (logic.groups.leave_deleted_account):
   the version moves, so members rotate their sender keys; a group left without an
   admin gets its longest-standing member as admin; a group left empty is deleted.
   The service cannot sign for the account: a group's chain records the leave as
   the service's own, unsigned entry;
6. contact records (both directions), media objects and their records, and per
   device: its mailbox, its keys, its push endpoint and the record naming it its
   token's holder (an endpoint another device has verified since is left to it),
   its refresh tokens;
7. the account's records (profile, devices, contacts, media ids), the calling
   device's record last: until then its token still reaches this call.

Every step is safe to repeat: it deletes what is there and skips what is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from parley_server.logic import devices, groups, otp
from parley_server.logic.media import object_key
from parley_server.logic.ports import Caller
from parley_server.logic.tokens import family_of
from parley_server.models.errors import NotFound
from parley_server.store.users import AccountItem

if TYPE_CHECKING:
    from parley_server.config import Limits
    from parley_server.logic.devices import CloserPort
    from parley_server.logic.tokens import Keys
    from parley_server.store.connections import ConnectionsStore
    from parley_server.store.groups import GroupsStore
    from parley_server.store.mailbox import Mailbox
    from parley_server.store.media import MediaStore
    from parley_server.store.otp import OtpStore
    from parley_server.store.prekeys import PrekeysStore
    from parley_server.store.push import PushNotifier
    from parley_server.store.tokens import RefreshStore
    from parley_server.store.users import UsersStore

__all__ = ["AccountStores", "Deleted", "delete_account"]


class AccountStores(msgspec.Struct, frozen=True):
    """Everything an account has data in."""

    users: UsersStore
    otps: OtpStore
    refresh_tokens: RefreshStore
    prekeys: PrekeysStore
    mailbox: Mailbox
    media: MediaStore
    push: PushNotifier
    connections: ConnectionsStore
    gateway: CloserPort
    groups: GroupsStore


class Deleted(msgspec.Struct):
    """What this call removed (a call that finishes an earlier one counts only its part)."""

    devices: int = 0
    connections: int = 0
    groups_left: int = 0
    contacts: int = 0
    media: int = 0
    envelopes: int = 0
    keys: int = 0
    push_endpoints: int = 0
    refresh_tokens: int = 0


def delete_account(
    caller: Caller,
    code: str,
    *,
    keys: Keys,
    stores: AccountStores,
    limits: Limits,
    now: float,
) -> Deleted:
    """Delete the caller's account and everything the service holds for it.

    InvalidCode / TooManyAttempts / BadRequest (from the code check) change
    nothing. DependencyUnavailable mid-way leaves the deletion started: the same
    device asks again (any code) and it finishes.
    """
    users = stores.users
    uid = caller.user_id
    if not users.is_deleting(uid, caller.device_id):
        phone = users.phone_of(uid)
        if phone is None:
            raise NotFound("no such account")
        otp.verify_code(
            phone,
            code,
            keys=keys,
            otps=stores.otps,
            limits=limits,
            now=now,
            purpose=otp.DELETE_ACCOUNT,
        )
        users.mark_deleting(uid, caller.device_id)
    done = Deleted()
    items = users.account_items(uid)
    for item in items:
        if item.device_id is not None and item.device_id != caller.device_id:
            users.mark_deleting(uid, item.device_id)
    phone = users.phone_of(uid)
    if phone is not None:
        users.release_phone(phone, uid)
    done.connections = devices.close_connections(
        uid,
        stores.connections.of_user(uid, now=now),
        connections=stores.connections,
        gateway=stores.gateway,
    )
    done.groups_left = _leave_groups(caller, stores.groups, now=now)
    own = f"DEVICE#{caller.device_id}"
    _erase(uid, items, stores, done)
    users.delete_records(uid, [item.sk for item in items if item.sk != own])
    # a sign-in that found the number just before it was released may have added a
    # device since the records were read: one more look catches it
    late = [item for item in users.account_items(uid) if item.sk != own]
    if late:
        _erase(uid, late, stores, done)
        users.delete_records(uid, [item.sk for item in late])
    users.delete_records(uid, [own])
    return done


def _leave_groups(caller: Caller, store: GroupsStore, *, now: float) -> int:
    """Leave every group as a member leaves one; how many were left."""
    left = 0
    for membership in store.memberships(caller.user_id):
        try:
            groups.leave_deleted_account(caller.user_id, membership.group_id, now=now, groups=store)
        except NotFound:
            continue  # left already (the index lags a moment behind), or the group is gone
        left += 1
    return left


def _erase(user_id: str, items: list[AccountItem], stores: AccountStores, done: Deleted) -> None:
    """Everything the records `items` point to, outside the account's own partition."""
    contacts = [item.contact for item in items if item.contact is not None]
    stores.users.forget_contact(user_id, contacts)
    done.contacts += len(contacts)
    for item in items:
        if item.media_id is not None:
            stores.media.delete_object(object_key(user_id, item.media_id))
            stores.media.delete_record(item.media_id)
            done.media += 1
        if item.device_id is not None:
            device_id = item.device_id
            done.devices += 1
            done.envelopes += stores.mailbox.clear(user_id, device_id)
            done.keys += stores.prekeys.forget_device(user_id, device_id)
            claim = (
                stores.users.release_push_claim(
                    item.push_platform, item.push_token, user_id, device_id
                )
                if item.push_platform and item.push_token
                else "absent"
            )
            # an endpoint whose token another device has verified since is theirs now
            if item.push_endpoint and claim != "other":
                stores.push.forget(item.push_endpoint)
                done.push_endpoints += 1
            done.refresh_tokens += stores.refresh_tokens.forget_family(
                family_of(user_id, device_id)
            )
