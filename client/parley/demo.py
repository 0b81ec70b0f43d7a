"""`make demo`: a scripted conversation between two people on the local stack.

    python -m parley.demo

Uses the running local stack (~/.parley/local.json, or PARLEY_LOCAL_FILE) or,
when none answers, starts one (`python -m local --port 0`) for the length of
the demo. Alice and Bob get throwaway profiles in a temporary directory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from parley.cli.app import run_app
from parley.client import Client, EventStream
from parley.endpoints import Endpoints
from parley.errors import ConfigurationError, ParleyClientError
from parley.local_sms import code_from_local_sms, sms_count
from parley.logs import quiet
from parley.models import (
    Account,
    Event,
    Message,
    MessageReceived,
    MessageSent,
    MessageState,
    ReceiptUpdate,
)
from parley.signup import request_code, sign_up

__all__ = ["main"]

E = TypeVar("E", bound=Event)
WAIT_S = 15.0
STACK_START_S = 60.0


class Story:
    """Prints the narrative: numbered chapters, who sees what, and asides."""

    def __init__(self) -> None:
        self.color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.chapter = 0

    def _c(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def title(self, text: str) -> None:
        print(self._c("1", text), flush=True)

    def section(self, text: str) -> None:
        self.chapter += 1
        print(f"\n{self._c('1;36', f'{self.chapter}. {text}')}", flush=True)

    def say(self, text: str) -> None:
        print(f"   {text}", flush=True)

    def aside(self, text: str) -> None:
        print(f"   {self._c('2', '· ' + text)}", flush=True)

    def screen(self, who: str, text: str) -> None:
        print(f"   {self._c('1', f'[{who}]'):<8} {text}", flush=True)

    def ticks(self, state: MessageState) -> str:
        if state is MessageState.READ:
            return self._c("34", "✓✓") + " (read)"
        if state is MessageState.DELIVERED:
            return "✓✓ (delivered)"
        if state is MessageState.SENT:
            return "✓ (on the server)"
        return state.ticks


# --- the local stack ------------------------------------------------------------------------


async def _answers(endpoints: Endpoints) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                endpoints.http_url + "/v1/openapi.json", timeout=aiohttp.ClientTimeout(total=3)
            ) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


@contextlib.asynccontextmanager
async def local_stack(story: Story) -> AsyncIterator[Endpoints]:
    """The running local stack, or one started for the demo (and stopped after it)."""
    with contextlib.suppress(ConfigurationError):
        endpoints = Endpoints.local()
        if await _answers(endpoints):
            story.say(f"Using the local stack already running at {endpoints.http_url}.")
            yield endpoints
            return
    with tempfile.TemporaryDirectory(prefix="parley-demo-stack-") as folder:
        file = Path(folder) / "local.json"
        # a state of its own, gone with the folder: the demo's people are not kept
        env = dict(
            os.environ,
            PARLEY_LOCAL_FILE=str(file),
            PARLEY_LOCAL_STATE=str(Path(folder) / "local-state"),
        )
        story.say("No local stack answers: starting one for this demo (python -m local).")
        log_path = Path(folder) / "local.log"
        with log_path.open("w") as log_file:
            process = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited on)
                [sys.executable, "-m", "local", "--port", "0"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                endpoints = await _wait_for_stack(file, process, log_path)
                story.say(f"Local stack up at {endpoints.http_url}.")
                yield endpoints
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


async def _wait_for_stack(file: Path, process: subprocess.Popen[bytes], log: Path) -> Endpoints:
    deadline = time.monotonic() + STACK_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = await asyncio.to_thread(log.read_text)
            raise ConfigurationError(
                f"the local stack exited ({process.returncode}):\n{output[-2000:]}"
            )
        if await asyncio.to_thread(file.exists):
            with contextlib.suppress(ConfigurationError):
                endpoints = Endpoints.local(file)
                if await _answers(endpoints):
                    return endpoints
        await asyncio.sleep(0.2)
    output = await asyncio.to_thread(log.read_text)
    raise ConfigurationError(
        f"the local stack did not start in {STACK_START_S:.0f} s:\n{output[-2000:]}"
    )


# --- helpers ----------------------------------------------------------------------------------


async def expect(
    stream: EventStream, kind: type[E], match: Callable[[E], bool] = lambda _e: True
) -> E:
    """The next event of `kind` that matches (others are skipped)."""
    async with asyncio.timeout(WAIT_S):
        async for event in stream:
            if isinstance(event, kind) and match(event):
                return event
    raise ParleyClientError("the client closed while the demo waited")


def _phone() -> str:
    return f"+1415555{random.randint(1000, 9999)}"  # 555 numbers: fictional, valid format


async def _sign_up(story: Story, name: str, home: Path, endpoints: Endpoints) -> Account:
    phone = _phone()
    assert endpoints.sms_url is not None
    before = await sms_count(endpoints.sms_url, phone)
    await request_code(phone, endpoints=endpoints)
    code = await code_from_local_sms(endpoints.sms_url, phone, after=before)
    story.say(
        f"{name} asks for a code for {phone}; the SMS (caught by the local sink) says {code}."
    )
    account = await sign_up(
        name.lower(), phone, code, endpoints=endpoints, home=home, allow_plaintext=True
    )
    story.aside(
        f"{name}'s device {account.device_id} made an Ed25519 identity key, a signed prekey"
        " and 100 one-time prekeys, and published only their public halves."
    )
    return account


def _server_copy(endpoints: Endpoints, recipient: Account) -> dict[str, Any] | None:
    """What the mailbox table holds for `recipient`'s device (read straight from
    the local AWS emulator, the way an operator with database access would)."""
    if not endpoints.aws_endpoint_url:
        return None
    try:
        import boto3  # the local stack's dependency; present wherever it runs
    except ImportError:
        return None
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=endpoints.aws_endpoint_url,
        region_name=endpoints.region or "us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 (the emulator takes any)
    )
    tables = [t for t in ddb.list_tables()["TableNames"] if t.endswith("-mailbox")]
    if not tables:
        return None
    items = ddb.query(
        TableName=tables[0],
        KeyConditionExpression="device = :d",
        ExpressionAttributeValues={":d": {"S": f"{recipient.user_id}#{recipient.device_id}"}},
    )["Items"]
    messages = [i for i in items if i["sk"]["S"].startswith("m#")]
    return messages[0] if messages else None


def _show_item(story: Story, item: dict[str, Any]) -> None:
    for name in sorted(item):
        ((kind, value),) = item[name].items()
        if kind == "B":
            raw = bytes(value)
            shown = base64.b64encode(raw[:24]).decode() + f"…  ({len(raw)} bytes of ciphertext)"
        else:
            shown = str(value)
        story.say(f"     {name:<11} {shown}")


# --- the story ----------------------------------------------------------------------------------


async def run(story: Story) -> None:
    story.title("Parley demo: two people, one machine, end-to-end encrypted")
    async with local_stack(story) as endpoints:
        with tempfile.TemporaryDirectory(prefix="parley-demo-") as folder, quiet():
            await _conversation(story, endpoints, Path(folder))
    story.title("\nThat's the whole loop: X3DH once, the Double Ratchet for every message,")
    story.title("ticks from receipts, and a server that only ever held ciphertext.")


async def _conversation(story: Story, endpoints: Endpoints, home: Path) -> None:
    story.section("Two people sign up")
    story.aside(f"throwaway profiles in {home} (stored unencrypted: demo only)")
    alice_account = await _sign_up(story, "Alice", home, endpoints)
    bob_account = await _sign_up(story, "Bob", home, endpoints)

    def client(name: str) -> Client:
        return Client(name, endpoints=endpoints, home=home, keyring=None)

    async with client("alice") as alice, contextlib.AsyncExitStack() as cleanup:
        alice_events = alice.events()
        bob = client("bob")
        cleanup.push_async_callback(lambda: bob.close())
        await bob.open()
        bob_events = bob.events()
        await asyncio.wait_for(alice.wait_synced(), WAIT_S)
        await asyncio.wait_for(bob.wait_synced(), WAIT_S)

        story.section("First contact (X3DH)")
        contact = await alice.add_contact(bob_account.phone, "Bob")
        story.say(f"Alice adds {contact.phone} as 'Bob' (the directory gives his user id).")
        first = await alice.send("Bob", "Hi Bob! It's Alice.")
        story.aside(
            "Alice's client fetched Bob's prekey bundle, checked the signed prekey's"
            " signature, ran X3DH with one of his one-time prekeys (the server handed"
            " it out once and deleted it) and encrypted with a new Double Ratchet session."
        )
        await _ticks_to(story, alice, alice_events, first, MessageState.SENT)
        got = await expect(bob_events, MessageReceived)
        story.screen("Bob", f"{got.contact.display_name}: {got.message.text}")
        story.aside(
            "Bob's device opened it with a session built from the X3DH header; Alice is not"
            " in his contacts yet, so he sees her user id, and her message is a message"
            " request: his device stored and acked it without a delivered tick, so Alice"
            " cannot tell that Bob is online (she still sees ✓)."
        )
        bob.store.contacts.add(got.contact.user_id, "Alice", alice_account.phone)
        await bob.accept("Alice")
        await bob.mark_read("Alice")
        story.say("Bob saves her as 'Alice', accepts the request and opens the chat.")
        await _ticks_to(story, alice, alice_events, first, MessageState.READ)

        story.section("Messages both ways")
        reply = await bob.send("Alice", "Hey Alice! Got it, loud and clear.")
        answer = await expect(alice_events, MessageReceived)
        story.screen("Alice", f"Bob: {answer.message.text}")
        await _ticks_to(story, bob, bob_events, reply, MessageState.DELIVERED, who="Bob")
        story.aside("Bob's reply needed no bundle: it rides the session Alice started.")

        story.section("Bob goes offline")
        await bob.close()
        story.say("Bob closes the app. Alice writes twice more:")
        later = [
            await alice.send("Bob", "Are you there?"),
            await alice.send("Bob", "Lunch tomorrow?"),
        ]
        for message in later:
            await _ticks_to(story, alice, alice_events, message, MessageState.SENT)
        item = await asyncio.to_thread(_server_copy, endpoints, bob_account)
        if item is not None:
            story.say("What the server stores for Bob right now (one mailbox item):")
            _show_item(story, item)
            story.aside(
                "It knows who wrote to whom and when; the text is ciphertext it has no key for."
            )
        else:
            story.aside("(the stored item cannot be shown: no access to the AWS emulator)")

        story.section("Bob comes back")
        bob = client("bob")
        bob_events = bob.events()
        await bob.open()  # closed by `cleanup`, like the first one
        for _ in later:
            back = await expect(bob_events, MessageReceived)
            story.screen("Bob", f"Alice: {back.message.text}   (waited on the server, synced now)")
        for message in later:
            await _ticks_to(story, alice, alice_events, message, MessageState.DELIVERED)
        await bob.mark_read("Alice")
        story.say("Bob reads them.")
        for message in later:
            await _ticks_to(story, alice, alice_events, message, MessageState.READ)

        story.section("Are they really talking to each other? Safety numbers")
        ours = await alice.safety_number("Bob")
        theirs = await bob.safety_number("Alice")
        story.screen("Alice", " ".join(ours[i : i + 5] for i in range(0, 60, 5)))
        story.screen("Bob", " ".join(theirs[i : i + 5] for i in range(0, 60, 5)))
        story.say(
            "Same 60 digits on both phones: no one in the middle."
            if ours == theirs
            else "The numbers DIFFER: someone is in the middle!"
        )


async def _ticks_to(
    story: Story,
    sender: Client,
    stream: EventStream,
    message: Message,
    state: MessageState,
    *,
    who: str = "Alice",
) -> None:
    """Wait until `message` reaches `state` and show the sender's screen then.
    (One receipt may tick several messages, so the store is checked first.)"""
    stored = sender.store.messages.get(message.sender, message.client_id)
    if stored is not None and stored.state.rank >= state.rank:
        story.screen(who, f"you: {message.text}   {story.ticks(state)}")
        return

    def moved(event: MessageSent | ReceiptUpdate) -> bool:
        messages = event.messages if isinstance(event, ReceiptUpdate) else (event.message,)
        return any(
            m.client_id == message.client_id and m.state.rank >= state.rank for m in messages
        )

    kind: type[MessageSent] | type[ReceiptUpdate] = (
        MessageSent if state is MessageState.SENT else ReceiptUpdate
    )
    await expect(stream, kind, moved)
    story.screen(who, f"you: {message.text}   {story.ticks(state)}")


def main() -> int:
    story = Story()
    return run_app(
        run(story),
        [((ParleyClientError, TimeoutError), 1)],
        lambda exc: f"\ndemo stopped: {type(exc).__name__}: {exc}",
    )


if __name__ == "__main__":
    sys.exit(main())
