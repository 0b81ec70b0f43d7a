"""Messaging end to end: real WebSocket clients against the local stack (gateway,
authorizer, the real handlers, moto). People sign up through the HTTP API and upload
keys, so their devices are visible to senders, as in the app."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection

from parley.protocol import IncomingMessage, Protocol, SyncComplete
from tests.e2e.conftest import LocalStack
from tests.e2e.support import (
    WAIT_S,
    b64,
    new_phone,
    next_event,
    online,
    send_message,
    sign_in,
    sync,
    sync_until_empty,
)


async def test_recipient_offline_then_syncs_everything_in_order_and_the_sender_sees_delivered(
    local_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        alice = await sign_in(local_stack, http)
        bob = await sign_in(local_stack, http)
    async with online(local_stack, alice) as alice_ws:
        sent = [
            await send_message(alice_ws, bob, {bob.device_id: f"secret {i}".encode()}, f"m{i}")
            for i in range(5)
        ]
        assert [s["id"] for s in sent] == [f"m{i}" for i in range(5)]

        async with online(local_stack, bob) as bob_ws:
            pending = await sync(bob_ws)
            assert [e["client_id"] for e in pending] == [f"m{i}" for i in range(5)]
            assert {(e["from"], e["from_device"]) for e in pending} == {
                (alice.user_id, alice.device_id)
            }
            assert base64.b64decode(pending[0]["body"]) == b"secret 0"
            ids = [e["id"] for e in pending]  # Bob knows Alice: every ack ticks
            await bob_ws.send(json.dumps({"action": "ack", "ids": ids, "delivered": ids}))

            receipt = await next_event(alice_ws, "receipt")
            assert receipt["status"] == "delivered"
            assert receipt["ids"] == [f"m{i}" for i in range(5)]
            assert receipt["from"] == bob.user_id

            await bob_ws.send(
                json.dumps(
                    {"action": "receipt", "to": alice.user_id, "status": "read", "ids": ["m4"]}
                )
            )
            read = await next_event(alice_ws, "receipt")
            assert (read["status"], read["ids"]) == ("read", ["m4"])
            await sync_until_empty(bob_ws)


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
        alice = await sign_in(local_stack, http)
        bob = await sign_in(local_stack, http)
    # one per device, across reconnects, like the app's; Bob knows Alice: acks tick
    bobs_app = Protocol(ticks=lambda _message: True, ack_delay=0.0)  # this driver keeps no clock

    async with online(local_stack, alice) as alice_ws:
        async with online(local_stack, bob) as bob_ws:
            bobs_app.connection_made()
            await _drive(
                bob_ws, bobs_app, lambda got: any(isinstance(e, SyncComplete) for e in got)
            )
            await send_message(alice_ws, bob, {bob.device_id: b"only once"}, "once")
            got = await _drive(
                bob_ws, bobs_app, lambda got: any(isinstance(e, IncomingMessage) for e in got)
            )
            (message,) = [e for e in got if isinstance(e, IncomingMessage)]
            bobs_app.message_stored(message)
            # the connection drops before the queued ack leaves
        bobs_app.connection_lost()

        async with online(local_stack, bob) as bob_ws:
            bobs_app.connection_made()
            again = await _drive(
                bob_ws, bobs_app, lambda got: any(isinstance(e, SyncComplete) for e in got)
            )
            # the server delivered it again; the app does not show it twice
            assert not any(isinstance(e, IncomingMessage) for e in again)
            await _drive(bob_ws, bobs_app, lambda got: True)  # the ack goes out

            receipt = await next_event(alice_ws, "receipt")
            assert (receipt["status"], receipt["ids"]) == ("delivered", ["once"])
            await sync_until_empty(bob_ws)


async def test_two_devices_of_one_recipient_each_get_their_own_ciphertext_live_or_on_sync(
    local_stack: LocalStack,
) -> None:
    async with aiohttp.ClientSession() as http:
        alice = await sign_in(local_stack, http)
        bob_phone_number = new_phone()
        bob_phone = await sign_in(local_stack, http, bob_phone_number)
        bob_laptop = await sign_in(local_stack, http, bob_phone_number)
    assert bob_laptop.user_id == bob_phone.user_id
    assert bob_laptop.device_id != bob_phone.device_id

    async with online(local_stack, alice) as alice_ws, online(local_stack, bob_phone) as on_phone:
        await sync(on_phone)
        # a sender who knows only one of Bob's devices is told which one is missing
        await alice_ws.send(
            json.dumps(
                {
                    "action": "send",
                    "id": "first",
                    "to": bob_phone.user_id,
                    "payloads": {bob_phone.device_id: b64(b"x")},
                }
            )
        )
        refused = await next_event(alice_ws, "error")
        assert (refused["ref"], refused["code"]) == ("first", "mismatched_devices")
        assert (refused["missing"], refused["extra"]) == ([bob_laptop.device_id], [])

        payloads = {bob_phone.device_id: b"for the phone", bob_laptop.device_id: b"for the laptop"}
        assert (await send_message(alice_ws, bob_phone, payloads, "first"))["id"] == "first"
        live = await next_event(on_phone, "message")
        assert base64.b64decode(live["body"]) == b"for the phone"
        await on_phone.send(
            json.dumps({"action": "ack", "ids": [live["id"]], "delivered": [live["id"]]})
        )
        assert (await next_event(alice_ws, "receipt"))["from_device"] == bob_phone.device_id

        async with online(local_stack, bob_laptop) as on_laptop:
            (later,) = await sync(on_laptop)
            assert base64.b64decode(later["body"]) == b"for the laptop"
            assert later["client_id"] == "first"
            await on_laptop.send(
                json.dumps({"action": "ack", "ids": [later["id"]], "delivered": [later["id"]]})
            )
            receipt = await next_event(alice_ws, "receipt")
            assert (receipt["from_device"], receipt["ids"]) == (bob_laptop.device_id, ["first"])


# -- call signalling: ephemeral and ringing sends -------------------------------------


async def _pushes(stack: LocalStack, http: aiohttp.ClientSession, token: str) -> list[Any]:
    """The push sink's records for `token`, oldest first."""
    async with http.get(stack.push_url) as r:
        return [p for p in await r.json() if p["token"] == token]


async def _until_pushed(
    stack: LocalStack, http: aiohttp.ClientSession, token: str, count: int
) -> list[Any]:
    async with asyncio.timeout(WAIT_S):
        while len(found := await _pushes(stack, http, token)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return found


async def _register_push(
    stack: LocalStack, http: aiohttp.ClientSession, device: Any, token: str
) -> None:
    """PUT /v1/push, the challenge read off the push sink (GroupFanout pushes it), sent back."""
    headers = {"Authorization": f"Bearer {device.token}"}
    async with http.put(
        stack.http_url + "/v1/push", json={"platform": "fcm", "token": token}, headers=headers
    ) as r:
        assert r.status == 202, await r.text()
    (challenge,) = await _until_pushed(stack, http, token, 1)
    assert challenge["type"] == "push_challenge"
    data = json.loads(json.loads(challenge["message"])["default"])
    async with http.post(
        stack.http_url + "/v1/push/verify", json={"challenge": data["challenge"]}, headers=headers
    ) as r:
        assert r.status == 204, await r.text()


async def test_an_offline_phone_gets_a_call_push_for_a_ringing_send_and_none_for_a_quiet_one(
    local_stack: LocalStack,
) -> None:
    token = f"bob-phone-{new_phone()[2:]}"
    async with aiohttp.ClientSession() as http:
        alice = await sign_in(local_stack, http)
        bob = await sign_in(local_stack, http)
        await _register_push(local_stack, http, bob, token)

        async with online(local_stack, alice) as alice_ws:
            for client_id, fields in (
                ("ice-1", {"ephemeral": True, "ttl": 30}),
                ("offer-1", {"ephemeral": True, "ring": True, "ttl": 45}),
                ("text-1", {}),
            ):
                frame = {
                    "action": "send",
                    "id": client_id,
                    "to": bob.user_id,
                    "payloads": {bob.device_id: b64(b"sealed")},
                    **fields,
                }
                await alice_ws.send(json.dumps(frame))
                assert (await next_event(alice_ws, "sent"))["id"] == client_id

        # the challenge, then one push per send that may wake a phone: the call, the text
        pushed = await _until_pushed(local_stack, http, token, 3)
        assert [p["type"] for p in pushed] == ["push_challenge", "call", "wake"]
        assert json.loads(json.loads(pushed[1]["message"])["GCM"]) == {
            "data": {"type": "call"},
            "priority": "high",
            "time_to_live": 45,
        }

        # the phone that answers syncs the offer (and the signalling before it)
        async with online(local_stack, bob) as bob_ws:
            pending = await sync(bob_ws)
        assert [e["client_id"] for e in pending] == ["ice-1", "offer-1", "text-1"]
