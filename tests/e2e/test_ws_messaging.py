"""Messaging end to end: real WebSocket clients against the local stack (gateway,
authorizer, the real handlers, moto). People sign up through the HTTP API and upload
keys, so their devices are visible to senders, as in the app."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect

from parley.protocol import IncomingMessage, Protocol, SyncComplete
from tests.e2e.conftest import LocalStack

WAIT_S = 10.0  # a guard against hanging, not a measurement


@dataclass(frozen=True)
class Device:
    user_id: str
    device_id: str
    token: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _sign_in(stack: LocalStack, http: aiohttp.ClientSession, phone: str) -> Device:
    """Phone code sign-in, then key upload (a device is visible to senders after it)."""
    async with http.post(stack.http_url + "/v1/auth/otp", json={"phone": phone}) as r:
        assert r.status == 202, await r.text()
    async with http.get(stack.sms_url) as r:
        texts = [m["message"] for m in await r.json() if m["phone"] == phone]
    code = re.search(r"\b(\d{6})\b", texts[-1])
    assert code is not None
    async with http.post(
        stack.http_url + "/v1/auth/verify", json={"phone": phone, "code": code[1]}
    ) as r:
        assert r.status == 200, await r.text()
        session = await r.json()
    identity = SigningKey.generate()
    prekey = bytes(PrivateKey.generate().public_key)
    keys = {
        "identity_key": _b64(bytes(identity.verify_key)),
        "signed_prekey": {
            "key_id": 1,
            "public_key": _b64(prekey),
            "signature": _b64(identity.sign(prekey).signature),
        },
        "one_time_prekeys": [],
    }
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    async with http.put(stack.http_url + "/v1/keys", json=keys, headers=headers) as r:
        assert r.status == 204, await r.text()
    return Device(session["user_id"], session["device_id"], session["access_token"])


def _phone() -> str:
    return f"+4479112{secrets.randbelow(10**5):05d}"


@asynccontextmanager
async def _online(stack: LocalStack, device: Device) -> AsyncIterator[ClientConnection]:
    async with connect(f"{stack.ws_url}?token={device.token}", proxy=None) as ws:
        yield ws


async def _next(ws: ClientConnection, event: str) -> dict[str, Any]:
    """The next event named `event` (others, e.g. typing, are skipped)."""
    while True:
        got = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        if got["event"] == event:
            return dict(got)


async def _send(
    ws: ClientConnection, to: Device, payloads: dict[str, bytes], client_id: str
) -> dict[str, Any]:
    frame = {
        "action": "send",
        "id": client_id,
        "to": to.user_id,
        "payloads": {d: _b64(p) for d, p in payloads.items()},
    }
    await ws.send(json.dumps(frame))
    return await _next(ws, "sent")


async def _sync(ws: ClientConnection) -> list[dict[str, Any]]:
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


async def test_recipient_offline_then_syncs_everything_in_order_and_the_sender_sees_delivered(
    local_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        alice = await _sign_in(local_stack, http, _phone())
        bob = await _sign_in(local_stack, http, _phone())
    async with _online(local_stack, alice) as alice_ws:
        sent = [
            await _send(alice_ws, bob, {bob.device_id: f"secret {i}".encode()}, f"m{i}")
            for i in range(5)
        ]
        assert [s["id"] for s in sent] == [f"m{i}" for i in range(5)]

        async with _online(local_stack, bob) as bob_ws:
            pending = await _sync(bob_ws)
            assert [e["client_id"] for e in pending] == [f"m{i}" for i in range(5)]
            assert {(e["from"], e["from_device"]) for e in pending} == {
                (alice.user_id, alice.device_id)
            }
            assert base64.b64decode(pending[0]["body"]) == b"secret 0"
            await bob_ws.send(json.dumps({"action": "ack", "ids": [e["id"] for e in pending]}))

            receipt = await _next(alice_ws, "receipt")
            assert receipt["status"] == "delivered"
            assert receipt["ids"] == [f"m{i}" for i in range(5)]
            assert receipt["from"] == bob.user_id

            await bob_ws.send(
                json.dumps(
                    {"action": "receipt", "to": alice.user_id, "status": "read", "ids": ["m4"]}
                )
            )
            read = await _next(alice_ws, "receipt")
            assert (read["status"], read["ids"]) == ("read", ["m4"])
            assert await _sync(bob_ws) == []


async def _drive(
    ws: ClientConnection, proto: Protocol, until: Callable[[list[Any]], bool]
) -> list[Any]:
    """Run the client's protocol over `ws` until `until(events so far)`."""
    events: list[Any] = []
    while True:
        for frame in proto.data_to_send():
            await ws.send(frame if len(frame) > 1 else frame[0])
        if until(events):
            return events
        proto.receive_data(await asyncio.wait_for(ws.recv(), WAIT_S))
        events.extend(proto.events_received())


async def test_connection_dropped_after_storing_but_before_ack_is_redelivered_then_deduped(
    local_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        alice = await _sign_in(local_stack, http, _phone())
        bob = await _sign_in(local_stack, http, _phone())
    bobs_app = Protocol()  # one per device, across reconnects, like the app's

    async with _online(local_stack, alice) as alice_ws:
        async with _online(local_stack, bob) as bob_ws:
            bobs_app.connection_made()
            await _drive(
                bob_ws, bobs_app, lambda got: any(isinstance(e, SyncComplete) for e in got)
            )
            await _send(alice_ws, bob, {bob.device_id: b"only once"}, "once")
            got = await _drive(
                bob_ws, bobs_app, lambda got: any(isinstance(e, IncomingMessage) for e in got)
            )
            (message,) = [e for e in got if isinstance(e, IncomingMessage)]
            bobs_app.message_stored(message)
            # the connection drops before the queued ack leaves
        bobs_app.connection_lost()

        async with _online(local_stack, bob) as bob_ws:
            bobs_app.connection_made()
            again = await _drive(
                bob_ws, bobs_app, lambda got: any(isinstance(e, SyncComplete) for e in got)
            )
            # the server delivered it again; the app does not show it twice
            assert not any(isinstance(e, IncomingMessage) for e in again)
            await _drive(bob_ws, bobs_app, lambda got: True)  # the ack goes out

            receipt = await _next(alice_ws, "receipt")
            assert (receipt["status"], receipt["ids"]) == ("delivered", ["once"])
            assert await _sync(bob_ws) == []


async def test_two_devices_of_one_recipient_each_get_their_own_ciphertext_live_or_on_sync(
    local_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        alice = await _sign_in(local_stack, http, _phone())
        bob_phone_number = _phone()
        bob_phone = await _sign_in(local_stack, http, bob_phone_number)
        bob_laptop = await _sign_in(local_stack, http, bob_phone_number)
    assert bob_laptop.user_id == bob_phone.user_id
    assert bob_laptop.device_id != bob_phone.device_id

    async with _online(local_stack, alice) as alice_ws, _online(local_stack, bob_phone) as on_phone:
        await _sync(on_phone)
        # a sender who knows only one of Bob's devices is told which one is missing
        await alice_ws.send(
            json.dumps(
                {
                    "action": "send",
                    "id": "first",
                    "to": bob_phone.user_id,
                    "payloads": {bob_phone.device_id: _b64(b"x")},
                }
            )
        )
        refused = await _next(alice_ws, "error")
        assert (refused["ref"], refused["code"]) == ("first", "mismatched_devices")
        assert (refused["missing"], refused["extra"]) == ([bob_laptop.device_id], [])

        payloads = {bob_phone.device_id: b"for the phone", bob_laptop.device_id: b"for the laptop"}
        assert (await _send(alice_ws, bob_phone, payloads, "first"))["id"] == "first"
        live = await _next(on_phone, "message")
        assert base64.b64decode(live["body"]) == b"for the phone"
        await on_phone.send(json.dumps({"action": "ack", "ids": [live["id"]]}))
        assert (await _next(alice_ws, "receipt"))["from_device"] == bob_phone.device_id

        async with _online(local_stack, bob_laptop) as on_laptop:
            (later,) = await _sync(on_laptop)
            assert base64.b64decode(later["body"]) == b"for the laptop"
            assert later["client_id"] == "first"
            await on_laptop.send(json.dumps({"action": "ack", "ids": [later["id"]]}))
            receipt = await _next(alice_ws, "receipt")
            assert (receipt["from_device"], receipt["ids"]) == (bob_laptop.device_id, ["first"])
