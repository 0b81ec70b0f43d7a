"""`make smoke`: prove a Parley stack works, end to end, through the SDK.

    python -m parley.smoke                              # cdk-outputs.json if there, else local
    python -m parley.smoke --outputs cdk-outputs.json   # the deployed stack
    python -m parley.smoke --local [--local-file FILE]  # the local stack (`make serve`)

Two throwaway accounts sign up with test numbers (no SMS: the codes are
derived from the stack's signing secret, see `parley.testnumbers`), exchange
messages and watch ✓, ✓✓ and read ✓✓ arrive, send an attachment and download
and decrypt it, talk in a group, and delete their accounts. Profiles live in a
temporary directory, removed afterwards. Each step prints its time; the first
failure stops the run, says which step, what was expected and what happened,
and exits with status 1 (after deleting the accounts it made).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from parley.client import Client, EventStream
from parley.content import Attachment
from parley.endpoints import Endpoints, local_file
from parley.errors import ApiError, ConfigurationError, NotFound, RateLimited
from parley.logs import quiet
from parley.models import Account, Message, MessageReceived, MessageState
from parley.profiles import profile_dir
from parley.signup import request_code, sign_up
from parley.testnumbers import (
    LOCAL_TEST_NUMBERS,
    code_for,
    deployed_stack,
    is_fictional,
    local_secret,
    stack_secret,
)

__all__ = ["Report", "SmokeFailed", "Target", "main", "run", "target_from"]

DEFAULT_TIMEOUT_S = 30.0
ATTACHMENT_BYTES = 300 * 1024  # five 64 KiB chunks and a bit: more than one of everything
# while a number's last code is unused and younger than the cool-down (30 s by default)
# no new one is given: a deletion code asked for then waits that out
COOL_DOWN_ALLOWANCE_S = 60.0
_WIDTH = 58


class Unexpected(Exception):
    """What a step saw instead of what it expected."""


class SmokeFailed(Exception):
    """A step failed: `step` (its number and name), `expected`, `got`."""

    def __init__(self, number: int, name: str, expected: str, got: str) -> None:
        super().__init__(f"step {number}, {name!r}: expected {expected}; got {got}")
        self.number = number
        self.name = name
        self.expected = expected
        self.got = got


class Report:
    """Numbered steps, each printed with its time; a failure becomes SmokeFailed."""

    def __init__(self, out: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.passed: list[tuple[str, float]] = []
        self.started = clock()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @contextlib.asynccontextmanager
    async def step(self, name: str, expected: str, wait_s: float) -> AsyncIterator[None]:
        number = len(self.passed) + 1
        label = f"{number:>3}. {name} "
        print(f"{label:.<{_WIDTH}} ", end="", file=self.out, flush=True)
        start = self.clock()
        try:
            async with asyncio.timeout(wait_s):
                yield
        except Exception as exc:
            print(f"FAILED {self.clock() - start:6.2f} s", file=self.out, flush=True)
            raise SmokeFailed(number, name, expected, _describe(exc, wait_s)) from exc
        took = self.clock() - start
        self.passed.append((name, took))
        print(f"ok     {took:6.2f} s", file=self.out, flush=True)


def _describe(exc: BaseException, wait_s: float) -> str:
    if isinstance(exc, Unexpected):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"nothing within {wait_s:.0f} s"
    if isinstance(exc, ApiError):
        return f"the service answered {exc.status} {exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


# --- where to run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A stack to check: where it is, its test numbers, and how to read its secret."""

    description: str
    endpoints: Endpoints
    numbers: tuple[str, ...]
    secret: Callable[[], bytes]


def target_from(outputs: Path | None, local: Path | None, numbers: Sequence[str] | None) -> Target:
    """The deployed stack of `outputs`, or the local stack of `local` (endpoints file)."""
    if outputs is not None:
        stack = deployed_stack(outputs)
        pool = tuple(numbers) if numbers else stack.test_numbers
        target = Target(
            f"deployed stack {stack.name} ({outputs})",
            stack.endpoints,
            pool,
            lambda: stack_secret(stack),
        )
        if not pool:
            raise ConfigurationError(
                f"{outputs} lists no TestNumbers: deploy with -c testNumbers='[...]' "
                "(two or more, see README: Test numbers) or pass --numbers"
            )
    else:
        endpoints = Endpoints.local(local)
        pool = tuple(numbers) if numbers else LOCAL_TEST_NUMBERS
        target = Target(
            f"local stack ({local or local_file()})",
            endpoints,
            pool,
            lambda: local_secret(endpoints),
        )
    wrong = [n for n in target.numbers if not is_fictional(n)]
    if wrong:
        raise ConfigurationError(f"{wrong} are not test numbers (+1 NPA 555-0100 to 555-0199)")
    if len(set(target.numbers)) < 2:
        raise ConfigurationError(f"two test numbers are needed, {list(target.numbers)} given")
    return target


# --- the run ---------------------------------------------------------------------------------


async def run(
    find_target: Callable[[], Target],
    report: Report,
    *,
    wait_s: float = DEFAULT_TIMEOUT_S,
    home: Path | None = None,
) -> None:
    """Every step, in order; SmokeFailed at the first that fails."""
    with contextlib.ExitStack() as cleanup:
        if home is None:
            home = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="parley-smoke-")))
        cleanup.enter_context(quiet())
        await _run(find_target, report, wait_s=wait_s, home=home)


async def _run(
    find_target: Callable[[], Target], report: Report, *, wait_s: float, home: Path
) -> None:
    def step(name: str, expected: str) -> contextlib.AbstractAsyncContextManager[None]:
        return report.step(name, expected, wait_s)

    async with step(
        "find the stack and its test numbers' codes",
        "the stack's endpoints, two or more test numbers and the signing secret",
    ):
        target = await asyncio.to_thread(find_target)
        secret = await asyncio.to_thread(target.secret)
    report.say(f"       {target.description}: {target.endpoints.http_url}")
    pool = list(target.numbers)
    random.shuffle(pool)  # runs close together start with different numbers
    accounts: dict[str, Account] = {}
    clients: dict[str, Client] = {}
    try:
        for name in ("a", "b"):
            async with step(
                f"{name.upper()} signs up with a test number (no SMS)",
                "a test number to sign up with the code derived from the stack's secret",
            ):
                accounts[name] = await _sign_up(name, pool, secret, target.endpoints, home)
            report.say(f"       {name.upper()} is {accounts[name].phone}")

        async with step("both connect and sync", "each client connected and synced"):
            for name in ("a", "b"):
                client = Client(name, endpoints=target.endpoints, home=home, keyring=None)
                clients[name] = client
                await client.open()
            await asyncio.gather(*(c.wait_synced() for c in clients.values()))
        a, b = clients["a"], clients["b"]
        a_events, b_events = a.events(), b.events()
        await _conversation(step, accounts, a, b, a_events, b_events, home)

        async with report.step(
            "A and B ask for account deletion codes (not texted)",
            "a deletion code for each test number",
            wait_s + COOL_DOWN_ALLOWANCE_S,
        ):
            waited = await asyncio.gather(*(_ask_deletion_code(c) for c in (a, b)))
        if max(waited):
            report.say(f"       (waited {max(waited):.0f} s: a number gets one code per cool-down)")
        async with step(
            "A deletes its account; B no longer finds it",
            "the deletion to succeed, and the directory to answer not_found for A's number",
        ):
            await a.delete_account(code_for(secret, accounts["a"].phone))
            gone = accounts.pop("a")
            try:
                found = await b.api.lookup(gone.phone)
            except NotFound:
                found = None
            _check(found is None, f"the directory still names user {found}")
            _check(not profile_dir("a", home).exists(), "A's profile is still on this machine")
        async with step("B deletes its account", "the deletion to succeed"):
            await b.delete_account(code_for(secret, accounts["b"].phone))
            accounts.pop("b")
            _check(not profile_dir("b", home).exists(), "B's profile is still on this machine")
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        if accounts:
            await _delete_leftovers(accounts, target.endpoints, secret, home, report)


async def _conversation(
    step: Callable[[str, str], contextlib.AbstractAsyncContextManager[None]],
    accounts: dict[str, Account],
    a: Client,
    b: Client,
    a_events: EventStream,
    b_events: EventStream,
    home: Path,
) -> None:
    async with step("A and B find each other in the directory", "each number's user id"):
        contact = await a.add_contact(accounts["b"].phone, "B")
        _check(contact.user_id == accounts["b"].user_id, f"B's user id is {contact.user_id}")
        await b.add_contact(accounts["a"].phone, "A")

    text = f"smoke {random.getrandbits(64):016x}: hello B"
    async with step("A sends a message: ✓ (stored)", "A's message to reach state sent"):
        sent = await a.send("B", text)
        await _reaches(a, a_events, sent, MessageState.SENT)
    async with step("B receives and decrypts it", f"B to read {text!r} from A"):
        got = await _received(b_events, lambda m: m.text == text)
        _check(got.contact.user_id == accounts["a"].user_id, f"it came from {got.contact}")
    async with step("A sees ✓✓ (delivered)", "A's message to reach state delivered"):
        await _reaches(a, a_events, sent, MessageState.DELIVERED)
    async with step("B reads it: A sees read ✓✓", "A's message to reach state read"):
        await b.mark_read("A")
        await _reaches(a, a_events, sent, MessageState.READ)
    reply_text = f"smoke {random.getrandbits(64):016x}: hello A"
    async with step("B replies; A receives it", f"A to read {reply_text!r} from B"):
        reply = await b.send("A", reply_text)
        await _received(a_events, lambda m: m.text == reply_text)
        await _reaches(b, b_events, reply, MessageState.DELIVERED)

    payload = os.urandom(ATTACHMENT_BYTES)
    upload = home / "smoke-attachment.bin"
    await asyncio.to_thread(upload.write_bytes, payload)
    async with step("A sends an attachment (encrypted upload)", "the upload and its message"):
        file_message = await a.send_file("B", upload, caption="smoke")
        await _reaches(a, a_events, file_message, MessageState.SENT)
    async with step(
        "B downloads and decrypts it: same bytes",
        f"the {ATTACHMENT_BYTES} bytes A sent (SHA-256 {_sha(payload)[:16]}…)",
    ):
        arrived = await _received(
            b_events, lambda m: isinstance(m.content, Attachment) and m.content.caption == "smoke"
        )
        path = await b.download(arrived.message)
        data = await asyncio.to_thread(path.read_bytes)
        _check(data == payload, f"{len(data)} bytes, SHA-256 {_sha(data)[:16]}…")

    group_name = f"smoke {random.getrandbits(32):08x}"
    async with step("A creates a group with B", "a group of two, A its admin"):
        group = await a.create_group(group_name, ["B"])
        members = set(group.members)
        _check(
            members == {accounts["a"].user_id, accounts["b"].user_id},
            f"members {sorted(members)}",
        )
    group_text = f"smoke {random.getrandbits(64):016x}: hello group"
    async with step("A sends in the group; B receives it", f"B to read {group_text!r}"):
        in_group = await a.send(group, group_text)
        got = await _received(b_events, lambda m: m.text == group_text)
        _check(got.group is not None and got.group.group_id == group.group_id, f"in {got.group}")
        await _reaches(a, a_events, in_group, MessageState.DELIVERED)
    answer_text = f"smoke {random.getrandbits(64):016x}: hello from B"
    async with step("B answers in the group; A receives it", f"A to read {answer_text!r}"):
        await b.wait_groups_read()
        await b.send(b.group(group.group_id), answer_text)
        got = await _received(a_events, lambda m: m.text == answer_text)
        _check(got.group is not None and got.group.group_id == group.group_id, f"in {got.group}")


async def _sign_up(
    profile: str, pool: list[str], secret: bytes, endpoints: Endpoints, home: Path
) -> Account:
    """Sign up with the next test number of `pool` (one another run used within the
    cool-down is skipped)."""
    cooling: list[str] = []
    wait = 0.0
    while pool:
        phone = pool.pop()
        try:
            await request_code(phone, endpoints=endpoints)
        except RateLimited as exc:
            cooling.append(phone)
            wait = max(wait, exc.retry_after)
            continue
        try:
            return await sign_up(
                profile,
                phone,
                code_for(secret, phone),
                endpoints=endpoints,
                home=home,
                keyring=None,
                allow_plaintext=True,
            )
        except ApiError as exc:
            raise Unexpected(
                f"{phone}'s derived code was refused ({exc.status} {exc.code}: {exc.message});"
                " is it one of the stack's test numbers, and is the secret the stack's?"
            ) from exc
    raise Unexpected(
        f"every test number left was asked for a code moments ago ({', '.join(cooling)}): "
        f"run again in {wait:.0f} s, or configure more test numbers"
    )


async def _ask_deletion_code(client: Client) -> float:
    """Ask for the account's deletion code; the seconds spent waiting out the
    cool-down (when an unused code was asked for moments ago)."""
    waited = 0.0
    while True:
        try:
            await client.request_account_deletion_code()
            return waited
        except RateLimited as exc:
            if waited:
                raise
            waited = max(exc.retry_after, 0.1)
            await asyncio.sleep(waited)  # the service's Retry-After: nothing to wait on


async def _delete_leftovers(
    accounts: dict[str, Account],
    endpoints: Endpoints,
    secret: bytes,
    home: Path,
    report: Report,
) -> None:
    """After a failure: delete the accounts the run made (best effort)."""
    report.say("       cleaning up: deleting the accounts this run made")
    for name, account in list(accounts.items()):
        try:
            async with asyncio.timeout(DEFAULT_TIMEOUT_S + COOL_DOWN_ALLOWANCE_S):
                client = Client(name, endpoints=endpoints, home=home, keyring=None, connect=False)
                await client.open()
                try:
                    await _ask_deletion_code(client)
                    await client.delete_account(code_for(secret, account.phone))
                finally:
                    await client.close()
            report.say(f"       deleted {account.phone}'s account")
        except Exception as exc:
            report.say(f"       could not delete {account.phone}'s account: {_describe(exc, 0)}")


def _check(ok: bool, got: str) -> None:
    if not ok:
        raise Unexpected(got)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _received(stream: EventStream, match: Callable[[Message], bool]) -> MessageReceived:
    async for event in stream:
        if isinstance(event, MessageReceived) and match(event.message):
            return event
    raise Unexpected("the client closed")


async def _reaches(
    client: Client, stream: EventStream, message: Message, state: MessageState
) -> None:
    """Until `message` is stored in `state` or later (checked after every event)."""
    while True:
        stored = client.store.messages.get(message.sender, message.client_id)
        if stored is not None and stored.state is MessageState.FAILED:
            raise Unexpected(f"the message failed: {stored}")
        if stored is not None and stored.state.rank >= state.rank:
            return
        if await anext(stream, None) is None:
            raise Unexpected(f"the client closed with the message {stored and stored.state}")


# --- the command -----------------------------------------------------------------------------


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m parley.smoke",
        description="Prove a Parley stack works: sign-up, messages and ticks, an "
        "attachment, a group, account deletion, all through the SDK.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--outputs", type=Path, help="the deployed stack's cdk-outputs.json (from make deploy)"
    )
    where.add_argument("--local", action="store_true", help="the local stack (make serve)")
    parser.add_argument(
        "--local-file", type=Path, help="the local stack's endpoints file (implies --local)"
    )
    parser.add_argument(
        "--numbers",
        help="comma-separated test numbers to use (default: the stack's TestNumbers output, "
        "or the local stack's +1 206 555-0100..0199)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds each step may take (default {DEFAULT_TIMEOUT_S:.0f})",
    )
    args = parser.parse_args(argv)
    if args.outputs is not None and args.local_file is not None:
        parser.error("--outputs and --local-file name different stacks: give one")
    outputs: Path | None = args.outputs
    if outputs is None and not args.local and args.local_file is None:
        default = Path("cdk-outputs.json")
        outputs = default if default.exists() else None
    numbers = [n.strip() for n in args.numbers.split(",") if n.strip()] if args.numbers else None

    report = Report(out)
    report.say("Parley smoke test: does this stack work end to end?")

    def find_target() -> Target:
        return target_from(outputs, args.local_file, numbers)

    try:
        asyncio.run(run(find_target, report, wait_s=args.timeout))
    except SmokeFailed as failed:
        report.say(f"\nsmoke FAILED at step {failed.number}, {failed.name!r}")
        report.say(f"  expected: {failed.expected}")
        report.say(f"  got:      {failed.got}")
        return 1
    except KeyboardInterrupt:
        return 130
    total = sum(took for _name, took in report.passed)
    report.say(f"\nsmoke passed: {len(report.passed)} steps in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
