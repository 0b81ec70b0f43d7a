"""`parley signup`, `parley whoami` and `parley account code|delete`: the account
of a profile, from its creation to its deletion."""

from __future__ import annotations

import asyncio
import sys

from parley.cli.context import Context
from parley.errors import ParleyClientError, PassphraseRequired, RateLimited, RegistrationLocked
from parley.local_sms import code_from_local_sms, sms_count
from parley.profiles import profile_dir
from parley.signup import request_code, sign_up
from parley.store.vault import Protection

__all__ = ["account", "signup", "whoami"]


async def signup(ctx: Context) -> None:
    args = ctx.args
    endpoints = ctx.endpoints()
    phone: str = args.phone
    before = 0
    if args.code_from_local_sms:
        if not endpoints.sms_url:
            raise ParleyClientError("--code-from-local-sms works only against the local stack")
        before = await sms_count(endpoints.sms_url, phone)
    try:
        answer = await request_code(phone, endpoints=endpoints)
        ctx.print(f"A code was sent to {phone} (valid {answer.get('expires_in', 300)} s).")
    except RateLimited as exc:
        if not (args.code or args.code_from_local_sms):
            raise
        ctx.print(f"(a code was sent moments ago; retry in {exc.retry_after:.0f} s if needed)")
    if args.code:
        code = args.code
    elif args.code_from_local_sms:
        assert endpoints.sms_url is not None
        code = await code_from_local_sms(endpoints.sms_url, phone, after=before)
        ctx.print("Read the code from the local SMS sink.")
    else:
        code = (await asyncio.to_thread(input, "Code: ")).strip()
    passphrase = ctx.passphrase
    pin = ctx.ask_pin("Registration lock PIN: ") if args.pin else None
    for _ in range(3):
        try:
            account = await sign_up(
                ctx.profile,
                phone,
                code,
                endpoints=endpoints,
                passphrase=passphrase,
                allow_plaintext=ctx.insecure,
                pin=pin,
            )
            break
        except PassphraseRequired:
            if passphrase:
                raise
            ctx.print("No OS keyring here: choose a passphrase to protect this profile.")
            passphrase = ctx.ask_passphrase(confirm=True)
        except RegistrationLocked as exc:
            # the code is not used up: it works again with the PIN
            ctx.print(_locked(exc, pin is not None))
            if pin is not None or not sys.stdin.isatty():
                raise ParleyClientError(
                    "not signed up: this number has a registration lock"
                    + ("" if pin is not None else " (run again with --pin)")
                ) from exc
            pin = ctx.ask_pin("Registration lock PIN: ")
    else:
        raise ParleyClientError("not signed up")
    ctx.print(f"Signed up as {account.phone}: user {account.user_id}, device {account.device_id}")
    ctx.print("This device is the account's primary device (link others: `parley link`).")
    ctx.print(f"Profile {ctx.profile!r} is in {profile_dir(ctx.profile)}")


async def whoami(ctx: Context) -> None:
    async with ctx.opened(connect=False) as client:
        account = client.account
        store = client.store
        ctx.print(f"profile    {ctx.profile}  ({store.path.parent})")
        ctx.print(f"phone      {account.phone}")
        ctx.print(f"user id    {account.user_id}")
        ctx.print(f"device id  {account.device_id}")
        if account.role is not None:
            ctx.print(f"role       {account.role}, key index {account.key_index}")
        identity = store.accounts.identity().public_key.hex()
        ctx.print(f"identity   {identity[:16]}…")
        protection = store.protection
        label = {
            Protection.KEYRING: "encrypted, key in the OS keyring",
            Protection.PASSPHRASE: "encrypted with a passphrase (Argon2id)",
            Protection.PLAINTEXT_DEV: "NOT ENCRYPTED (plaintext dev mode)",
        }[protection]
        ctx.print(f"store      {label}")
        ctx.print(f"prekeys    {store.prekeys.one_time_count()} one-time prekeys held locally")


def _locked(exc: RegistrationLocked, tried: bool) -> str:
    """What a registration lock refusal means, with the tries left or the wait."""
    text = "Wrong PIN." if tried else "This number's account has a registration lock (a PIN)."
    if exc.attempts_left is not None:
        text += f" {exc.attempts_left} tries left before waits begin."
    if exc.retry_after is not None:
        text += f" Try again in {exc.retry_after:.0f} s."
    return text


def _digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


async def account(ctx: Context) -> None:
    args = ctx.args
    async with ctx.opened(connect=False, online=True) as client:
        phone = client.account.phone
        if args.account_command == "code":
            await client.request_account_deletion_code()
            ctx.print(f"A code for deleting the account was sent to {phone}.")
            return
        if not args.yes:
            ctx.print(f"This deletes the Parley account of {phone} for good: its contacts,")
            ctx.print("groups and waiting messages on the service, and this profile here.")
            try:
                typed = await asyncio.to_thread(input, "Type the phone number to confirm: ")
            except EOFError:
                typed = ""  # no terminal, no answer: not confirmed (--yes is for scripts)
            if _digits(typed) != _digits(phone):
                raise ParleyClientError("that is not this account's number: nothing was deleted")
        code = args.code
        if code is None:
            sms_url = ctx.endpoints().sms_url if args.code_from_local_sms else None
            if args.code_from_local_sms and not sms_url:
                raise ParleyClientError("--code-from-local-sms works only against the local stack")
            before = await sms_count(sms_url, phone) if sms_url else 0
            await client.request_account_deletion_code()
            ctx.print(f"A code for deleting the account was sent to {phone}.")
            if sms_url:
                code = await code_from_local_sms(sms_url, phone, after=before)
                ctx.print("Read the code from the local SMS sink.")
            else:
                code = (await asyncio.to_thread(input, "Code: ")).strip()
        user_id = client.account.user_id
        directory = profile_dir(ctx.profile)
        await client.delete_account(code)
        ctx.print(f"Deleted the account of {phone} (user {user_id}).")
        ctx.print(f"Profile {ctx.profile!r} was removed from {directory}.")
