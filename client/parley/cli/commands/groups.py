"""`parley group create|add|remove|promote|vouch|leave|list|info`: group chats."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from parley.cli.context import Context
from parley.cli.render import group_row, safety_digits, warn
from parley.client import Client
from parley.errors import ParleyClientError, ServiceUnavailable
from parley.models import Contact

__all__ = ["group"]


async def group(ctx: Context) -> None:
    command = ctx.args.group_command
    async with ctx.opened(connect=False, online=command != "list") as client:
        await _GROUP_COMMANDS[command](ctx, client)


async def _create(ctx: Context, client: Client) -> None:
    group = await client.create_group(ctx.args.group_name, ctx.args.members)
    names = ", ".join(client.member_name(m) for m in group.members)
    ctx.print(f"Created {group.display_name} (group {group.group_id}): {names}.")


async def _add(ctx: Context, client: Client) -> None:
    group = await client.add_members(ctx.args.group, ctx.args.members)
    ctx.print(f"{group.display_name} now has {len(group.members)} members.")


async def _remove(ctx: Context, client: Client) -> None:
    group = await client.remove_members(ctx.args.group, ctx.args.members)
    ctx.print(f"{group.display_name} now has {len(group.members)} members.")
    ctx.print("Your next message to it goes with a new key they do not get.")


async def _promote(ctx: Context, client: Client) -> None:
    group = client.group(ctx.args.group)
    for member in ctx.args.members:
        group = await client.promote(group, member)
    admins = ", ".join(client.member_name(a) for a in group.admins)
    ctx.print(f"Admins of {group.display_name}: {admins}.")


async def _vouch(ctx: Context, client: Client) -> None:
    group = await client.refresh_group(client.group(ctx.args.group))
    ctx.print(f"{group.display_name} has {len(group.members)} members:")
    for member in group.members:
        role = "admin " if group.is_admin(member) else "member"
        flag = "   <- no admin signed them in" if member in group.unverified else ""
        ctx.print(f"  {role} {client.member_name(member)} ({member}){flag}")
    if not ctx.args.yes:
        try:
            answer = await asyncio.to_thread(
                input, "Vouch for every one of them, in these roles? [y/N] "
            )
        except EOFError:
            answer = ""  # no terminal, no answer: not confirmed (--yes is for scripts)
        if answer.strip().lower() not in ("y", "yes"):
            ctx.print("Nothing was signed.")
            return
    group = await client.vouch_group(group, group.members, group.admins)
    ctx.print(
        f"You signed the membership of {group.display_name} as it is"
        f" ({len(group.members)} members): every member's device now trusts them."
    )


async def _leave(ctx: Context, client: Client) -> None:
    group = await client.leave(ctx.args.group)
    ctx.print(f"You left {group.display_name}. Its history stays here.")


async def _list(ctx: Context, client: Client) -> None:
    if client.endpoints is not None:
        with contextlib.suppress(ServiceUnavailable):
            await client.refresh_groups()
    groups = client.groups()
    if not groups:
        ctx.print("No groups yet: parley group create NAME CONTACT...")
    me = client.account.user_id
    for group in groups:
        ctx.print(group_row(group, me))


async def _info(ctx: Context, client: Client) -> None:
    group = client.group(ctx.args.group)
    if group.active:
        try:
            group = await client.refresh_group(group)
        except ServiceUnavailable:
            ctx.print("(the service is out of reach: this is the group as last seen)")
    ctx.print(f"{group.display_name}   group {group.group_id}, version {group.version}")
    if not group.active:
        ctx.print("You are no longer in this group.")
        return
    ctx.print(f"{len(group.members)} members, {len(group.admins)} admin(s):")
    me = client.account.user_id
    for member in group.members:
        role = "admin" if group.is_admin(member) else "member"
        if member == me:
            ctx.print(f"  {'you':<24} {role}")
            continue
        contact = client.store.contacts.get(member) or Contact(member, None, None)
        flags = ""
        if member in group.unverified:
            unsigned = "not signed in by an admin: gets none of your keys"
            flags = "  " + warn(unsigned, color=ctx.color)
        elif contact.identity_changed:
            flags = "  " + warn("identity key changed", color=ctx.color)
        elif contact.verified:
            flags = "  verified"
        ctx.print(f"  {contact.display_name:<24} {role}{flags}")
        try:
            numbers = await client.safety_numbers(contact)
        except ParleyClientError as exc:
            ctx.print(f"      safety number unknown ({exc})")
            continue
        for device, number in sorted(numbers.items()):
            suffix = f"   (device {device})" if len(numbers) > 1 else ""
            ctx.print(f"      {safety_digits(number)}{suffix}")
    ctx.print("Compare each safety number with that member in person or on a call.")
    if group.unverified:
        ctx.print(
            "Members marked above were added without an admin's signature this device"
            " trusts. If you know them, an admin can vouch: parley group vouch GROUP."
        )


_GROUP_COMMANDS: dict[str, Callable[[Context, Client], Coroutine[Any, Any, None]]] = {
    "create": _create,
    "add": _add,
    "remove": _remove,
    "promote": _promote,
    "vouch": _vouch,
    "leave": _leave,
    "list": _list,
    "info": _info,
}
