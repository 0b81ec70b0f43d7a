"""`parley contacts add|list|requests|accept|remove` and `parley safety-number`: the
people you talk to, message requests from people you do not know, and checking that
nobody is in the middle."""

from __future__ import annotations

from parley.cli.context import Context
from parley.cli.render import contact_row, identity_warning, safety_digits

__all__ = ["contacts", "safety_number"]


async def contacts(ctx: Context) -> None:
    if ctx.args.contacts_command == "add":
        async with ctx.opened(connect=False) as client:
            contact = await client.add_contact(ctx.args.phone, ctx.args.name)
            ctx.print(f"Added {contact.name} ({contact.phone}, user {contact.user_id}).")
        return
    if ctx.args.contacts_command in ("accept", "remove"):
        async with ctx.opened(connect=False) as client:
            if ctx.args.contacts_command == "accept":
                contact = await client.accept(ctx.args.name)
                ctx.print(f"Accepted {contact.display_name}: ticks and typing go both ways.")
            else:
                contact = await client.remove_contact(ctx.args.name)
                ctx.print(f"{contact.display_name} is no longer a contact.")
        return
    if ctx.args.contacts_command == "requests":
        async with ctx.opened(connect=False) as client:
            requests = client.message_requests()
            if not requests:
                ctx.print("No message requests.")
            for contact in requests:
                ctx.print(contact_row(contact, color=ctx.color))
            if requests:
                ctx.print("They see no ticks from you until: parley contacts accept NAME")
        return
    async with ctx.opened(connect=False) as client:
        known = client.contacts()
        if not known:
            ctx.print("No contacts yet: parley contacts add PHONE NAME")
        for contact in known:
            ctx.print(contact_row(contact, color=ctx.color))


async def safety_number(ctx: Context) -> None:
    async with ctx.opened(connect=False) as client:
        contact = client.contact(ctx.args.name)
        numbers = await client.safety_numbers(contact)
        ctx.print(f"Safety number with {contact.display_name}:")
        for device, number in sorted(numbers.items()):
            suffix = f"   (device {device})" if len(numbers) > 1 else ""
            ctx.print(f"  {safety_digits(number)}{suffix}")
        ctx.print("Compare it with theirs in person or on a call: the same digits on both")
        ctx.print("phones mean nobody is in the middle.")
        if ctx.args.mark_verified:
            client.mark_verified(contact)
            ctx.print(f"Marked {contact.display_name} as verified.")
        elif contact.identity_changed:
            ctx.print(identity_warning(contact, color=ctx.color))
