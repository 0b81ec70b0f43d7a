"""What the end-to-end tests share: people signed up through the local stack's SMS
sink, raw WebSocket clients speaking the wire protocol, and SDK clients and the
`parley` CLI on throwaway profiles."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect

from parley import (
    Client,
    Endpoints,
    Event,
    EventStream,
    MessageState,
    link,
    relationships,
    request_code,
    sign_up,
)
from parley.local_sms import code_from_local_sms, sms_count
from parley.models import Account
from tests.device_lists import approval, device_signature, first_list
from tests.e2e.conftest import LocalStack

__all__ = [
    "WAIT_S",
    "Chat",
    "Cli",
    "Device",
    "b64",
    "client",
    "clients",
    "endpoints_of",
    "expect",
    "identity_of",
    "link_on",
    "new_device",
    "new_person",
    "new_phone",
    "next_event",
    "online",
    "send_message",
    "sign_in",
    "state_of",
    "sync",
    "sync_until_empty",
    "until_state",
    "wait_synced",
]

WAIT_S = 30.0  # a guard against hanging, not a measurement
E = TypeVar("E", bound=Event)
_numbers = itertools.count(random.randint(0, 5000))


def new_phone() -> str:
    """A phone number no other person of this session has (a valid format)."""
    return f"+1415556{next(_numbers) % 10000:04d}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the wire protocol, by hand -----------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A signed-in device, as the wire protocol knows it."""

    user_id: str
    device_id: str
    token: str


def _key_bundle(identity: SigningKey) -> dict[str, Any]:
    """What PUT /v1/keys takes for a new device (the server checks the signature)."""
    prekey = bytes(PrivateKey.generate().public_key)
    return {
        "identity_key": b64(bytes(identity.verify_key)),
        "signed_prekey": {
            "key_id": 1,
            "public_key": b64(prekey),
            "signature": b64(identity.sign(prekey).signature),
        },
        "one_time_prekeys": [],
    }


# each number's primary device and its identity key (it links the number's other devices)
_PRIMARIES: dict[tuple[str, str], tuple[Device, SigningKey]] = {}


async def _link(
    stack: LocalStack, http: aiohttp.ClientSession, primary: Device, identity: SigningKey
) -> Device:
    """A new device linked to the primary's account: pairing, approval, completion."""
    companion = SigningKey.generate()
    primary_auth = {"Authorization": f"Bearer {primary.token}"}
    pairings = stack.http_url + "/v1/devices/pairings"
    async with http.post(pairings, json={"identity_key": b64(bytes(companion.verify_key))}) as r:
        assert r.status == 201, await r.text()
        started = await r.json()
    async with http.get(stack.http_url + "/v1/devices", headers=primary_auth) as r:
        assert r.status == 200, await r.text()
        current = (await r.json())["device_list"]
    request, details, account_signature = approval(
        identity, primary.user_id, current, started["device_id"], companion
    )
    async with http.post(
        f"{pairings}/{started['ref']}/approve", json=request, headers=primary_auth
    ) as r:
        assert r.status == 204, await r.text()
    done = {
        "claim": started["claim"],
        "device_signature": device_signature(companion, details, account_signature, identity),
        "keys": _key_bundle(companion),
    }
    async with http.post(f"{pairings}/{started['ref']}/complete", json=done) as r:
        assert r.status == 200, await r.text()
        session = await r.json()
    return Device(session["user_id"], session["device_id"], session["access_token"])


async def sign_in(
    stack: LocalStack, http: aiohttp.ClientSession, phone: str | None = None, *, keys: bool = True
) -> Device:
    """Phone code sign-in (the code from the SMS sink), then, with `keys`, key upload:
    a device is visible to senders after it."""
    phone = phone or new_phone()
    primary = _PRIMARIES.get((stack.http_url, phone))
    if keys and primary is not None:
        # a number signs in once (its primary): further devices are linked to it
        return await _link(stack, http, *primary)
    before = await sms_count(stack.sms_url, phone)
    async with http.post(stack.http_url + "/v1/auth/otp", json={"phone": phone}) as r:
        assert r.status == 202, await r.text()
    code = await code_from_local_sms(stack.sms_url, phone, after=before)
    async with http.post(
        stack.http_url + "/v1/auth/verify", json={"phone": phone, "code": code}
    ) as r:
        assert r.status == 200, await r.text()
        session = await r.json()
    if keys:
        headers = {"Authorization": f"Bearer {session['access_token']}"}
        identity = SigningKey.generate()
        async with http.put(
            stack.http_url + "/v1/keys", json=_key_bundle(identity), headers=headers
        ) as r:
            assert r.status == 204, await r.text()
        # the primary's first device list: senders deliver to listed devices only
        listed = first_list(session["user_id"], session["device_id"], identity)
        async with http.put(stack.http_url + "/v1/devices/list", json=listed, headers=headers) as r:
            assert r.status == 204, await r.text()
        device = Device(session["user_id"], session["device_id"], session["access_token"])
        _PRIMARIES[(stack.http_url, phone)] = (device, identity)
        return device
    return Device(session["user_id"], session["device_id"], session["access_token"])


def identity_of(device: Device) -> SigningKey:
    """The identity key of a primary `sign_in` made (what it signs group changes with)."""
    for primary, identity in _PRIMARIES.values():
        if primary.device_id == device.device_id:
            return identity
    raise LookupError(f"device {device.device_id} is not a primary signed in here")


@asynccontextmanager
async def online(stack: LocalStack, device: Device) -> AsyncIterator[ClientConnection]:
    async with connect(f"{stack.ws_url}?token={device.token}", proxy=None) as ws:
        yield ws


async def next_event(ws: ClientConnection, event: str) -> dict[str, Any]:
    """The next event named `event` (others, e.g. typing, are skipped)."""
    while True:
        got = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        if got["event"] == event:
            return dict(got)


async def send_message(
    ws: ClientConnection, to: Device, payloads: dict[str, bytes], client_id: str
) -> dict[str, Any]:
    """A 1:1 send, one ciphertext per device of `to`'s; the `sent` answer."""
    frame = {
        "action": "send",
        "id": client_id,
        "to": to.user_id,
        "payloads": {d: b64(p) for d, p in payloads.items()},
    }
    await ws.send(json.dumps(frame))
    return await next_event(ws, "sent")


async def sync(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every pending event, following cursors until `synced` says no more."""
    got: list[dict[str, Any]] = []
    frame: dict[str, Any] = {"action": "sync"}
    while True:
        await ws.send(json.dumps(frame))
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
            if event["event"] == "synced":
                break
            got.append(event)
        if not event["more"]:
            return got
        frame = {"action": "sync", "after": event["cursor"]}


async def sync_until_empty(ws: ClientConnection) -> None:
    """Sync until the mailbox is empty. An ack has no answer: it tells the senders
    `delivered` before it deletes, so a sync right after the receipt may still
    meet the envelopes it is deleting; they must be gone soon after."""
    deadline = time.monotonic() + WAIT_S
    while pending := await sync(ws):
        if time.monotonic() > deadline:
            raise AssertionError(f"still pending after {WAIT_S:.0f} s: {pending}")
        await asyncio.sleep(0.05)


# -- the SDK ------------------------------------------------------------------------------


def endpoints_of(stack: LocalStack) -> Endpoints:
    return Endpoints.local(stack.local_file)


async def new_person(stack: LocalStack, home: Path, profile: str) -> Account:
    """Sign-up through the SDK into `profile` under `home` (the code from the SMS sink)."""
    phone = new_phone()
    endpoints = endpoints_of(stack)
    before = await sms_count(stack.sms_url, phone)
    await request_code(phone, endpoints=endpoints)
    code = await code_from_local_sms(stack.sms_url, phone, after=before)
    return await sign_up(profile, phone, code, endpoints=endpoints, home=home, allow_plaintext=True)


async def link_on(
    stack: LocalStack, home: Path, profile: str, on_code: Callable[[str], object], **kwargs: Any
) -> Account:
    """`parley.link` into `profile` (a new plaintext profile) on the local stack;
    `kwargs` as `link` takes them (e.g. poll_interval, timeout)."""
    return await link(
        profile,
        endpoints=endpoints_of(stack),
        home=home,
        allow_plaintext=True,
        on_code=on_code,
        **kwargs,
    )


async def new_device(
    stack: LocalStack, home: Path, person: Account, profile: str, *, primary: str | None = None
) -> Account:
    """Link a new companion device to `person`'s account into `profile`: the new
    device shows its link code, the primary (profile `primary`, by default the part
    of `profile` before its first "-", e.g. "alice" for "alice-laptop") approves it."""
    codes: asyncio.Queue[str] = asyncio.Queue()
    linking = asyncio.create_task(
        link_on(stack, home, profile, codes.put_nowait, poll_interval=0.2)
    )
    try:
        code = await asyncio.wait_for(codes.get(), WAIT_S)
        async with client(stack, home, primary or profile.split("-")[0], connect=False) as phone:
            await phone.link_device(code)
        device = await asyncio.wait_for(linking, WAIT_S)
    finally:
        linking.cancel()
    assert (device.user_id, device.device_id != person.device_id) == (person.user_id, True)
    return device


async def acquainted(stack: LocalStack, home: Path, people: dict[str, Account]) -> None:
    """Each profile (name -> account) has the others' numbers saved, as people who
    talk usually do: what they send each other ticks both ways (a stranger's
    messages are requests: parley.relationships). The service hears of it when
    each next connects."""
    for profile, me in people.items():
        async with client(stack, home, profile, connect=False) as app:
            for other in people.values():
                if other.user_id != me.user_id:
                    app.store.contacts.add(other.user_id, None, other.phone)
                    relationships.accept(app.store, other.user_id)


def client(stack: LocalStack, home: Path, profile: str, **kwargs: object) -> Client:
    return Client(profile, endpoints=endpoints_of(stack), home=home, keyring=None, **kwargs)  # type: ignore[arg-type]


async def wait_synced(*devices: Client) -> None:
    """Each client's first sync done (in turn)."""
    for device in devices:
        await asyncio.wait_for(device.wait_synced(), WAIT_S)


@asynccontextmanager
async def clients(stack: LocalStack, home: Path, *profiles: str) -> AsyncIterator[list[Client]]:
    """A client open on each profile, in order (closed in reverse order on exit)."""
    async with AsyncExitStack() as opened:
        yield [await opened.enter_async_context(client(stack, home, p)) for p in profiles]


async def expect(
    stream: EventStream, kind: type[E], match: Callable[[E], bool] = lambda _e: True
) -> E:
    async with asyncio.timeout(WAIT_S):
        async for event in stream:
            if isinstance(event, kind) and match(event):
                return event
    raise AssertionError("the stream ended")


def state_of(client: Client, sender: str, client_id: str) -> MessageState:
    message = client.store.messages.get(sender, client_id)
    assert message is not None
    return message.state


def spy(owner: object, method: str) -> list[Any]:
    """From now on, the argument of every call of `owner.method` (a method of one
    argument, which still runs): what a client's engine is handed, say."""
    seen: list[Any] = []
    real = getattr(owner, method)

    def spying(argument: Any) -> Any:
        seen.append(argument)
        return real(argument)

    setattr(owner, method, spying)
    return seen


async def until_state(
    client: Client, stream: EventStream, client_id: str, state: MessageState
) -> None:
    """Until our message `client_id` reaches `state`. The store changes before the
    event is emitted, so: check, and recheck after each event."""
    sender = client.account.user_id
    async with asyncio.timeout(WAIT_S):
        while state_of(client, sender, client_id).rank < state.rank:
            await anext(stream)


# -- the CLI ------------------------------------------------------------------------------


class Cli:
    """`python -m parley.cli` as people run it: one profile each, all under `home`."""

    def __init__(self, stack: LocalStack, home: Path) -> None:
        self.home = home
        self.env = dict(
            os.environ,
            PARLEY_HOME=str(home),
            PARLEY_LOCAL_FILE=str(stack.local_file),
            NO_COLOR="1",
        )
        self.env.pop("PARLEY_PASSPHRASE", None)

    def command(self, profile: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "parley.cli", "--profile", profile, *args]

    def call(self, profile: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """One command; with `ok`, it must succeed."""
        done = subprocess.run(
            self.command(profile, *args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WAIT_S * 2,
            check=False,
        )
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def run(self, profile: str, *args: str, ok: bool = True) -> str:
        """One command's output (stdout, then stderr)."""
        done = self.call(profile, *args, ok=ok)
        return done.stdout + done.stderr

    def signup(self, profile: str) -> str:
        """A new person in `profile`; their phone number."""
        phone = new_phone()
        out = self.run(profile, "signup", phone, "--code-from-local-sms", "--insecure-dev-store")
        assert "Signed up as" in out
        return phone

    @contextmanager
    def chat(self, profile: str, conversation: str) -> Iterator[Chat]:
        """`parley chat` running in `profile`; killed on exit if it has not quit."""
        process = subprocess.Popen(
            self.command(profile, "chat", conversation),
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        chat = Chat(process)
        try:
            yield chat
        finally:
            if process.poll() is None:
                process.kill()
            chat.reader.join(timeout=5)


class Chat:
    """A running `parley chat`: what it prints, line by line, and what is typed into it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        assert process.stdin is not None
        self.process = process
        self._lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(process.stdout,))
        self.reader.start()

    def _read(self, stdout: Any) -> None:
        for line in stdout:
            self._lines.put(line)

    def wait_for(self, pattern: str) -> str:
        """The next line printed that matches `pattern` (earlier ones are passed over)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if re.search(pattern, line):
                return line
        raise AssertionError(f"chat never printed {pattern!r}")

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait(self) -> int:
        """Its exit code, once it has exited."""
        return self.process.wait(timeout=WAIT_S)
